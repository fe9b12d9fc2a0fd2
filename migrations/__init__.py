"""Alembic migrations (run with `gridbot db upgrade`)."""
