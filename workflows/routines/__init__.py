"""Routines (日常工作): patrols, leave and A/B cover, deadline sweeps, reports, screening, notices.

Each periodic job is a *sweep*: `async def sweep(ctx) -> SweepResult` asks the database what is
due at `ctx.now()`, acts, and records what it did so that running it again does nothing twice.
"""
