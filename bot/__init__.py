"""Runtime: settings, database, channels, delivery, scheduler, the `gridbot` command."""
