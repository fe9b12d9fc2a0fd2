"""Business logic takes "now" from a clock it is given, so tests set the time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock the caller moves by hand."""

    def __init__(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")
        self._at = at.astimezone(UTC)

    def now(self) -> datetime:
        return self._at

    def set(self, at: datetime) -> None:
        self._at = at.astimezone(UTC)

    def advance(self, **delta: float) -> None:
        self._at += timedelta(**delta)


class SettableClock:
    """Real time, or real time shifted: `set()` jumps to a moment and the clock runs on from there.

    The terminal's trial uses it (`:time 2026-11-24 08:50`) so patrol reminders and deadline
    cards can be seen without waiting for them."""

    def __init__(self, base: Clock | None = None) -> None:
        self._base = base or SystemClock()
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return self._base.now() + self._offset

    def set(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("SettableClock needs an aware datetime")
        self._offset = at.astimezone(UTC) - self._base.now()

    @property
    def shifted(self) -> bool:
        return self._offset != timedelta(0)
