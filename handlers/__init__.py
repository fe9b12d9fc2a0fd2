"""Platform-neutral dialogues: an inbound event in, workflow calls, outbox messages out."""
