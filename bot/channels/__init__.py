"""Chat channels: each turns platform updates into Inbound events and sends outbox rows."""
