"""Contract tests: one scenario suite, run against every channel through a driver per channel."""
