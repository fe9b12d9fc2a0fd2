"""Dialogue modules added by later features register here (patrols, leave, statistics …)."""
