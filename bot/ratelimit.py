"""Send limits kept with a margin: each send reserves a time slot in every window it counts against.

A platform counts messages in sliding windows (Telegram ~1/s per chat, 20/min per group, ~30/s
overall; WeChat Work 30/min and 1,000/h per member). Reserving a slot, instead of sending and
counting, lets the delivery worker plan: it knows when a chat may send next and how many sends
the overall window takes in the next second, so it claims only what can go now and no chat waits
for another. Windows are widened by a margin (and, per chat and group, a fixed jitter allowance)
so that HTTP jitter does not put two sends inside one platform window; the overall window is
paced evenly instead of in one burst per second.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable

from .channels.base import Window

MARGIN = 0.02  # windows 2 % longer than the platform's
JITTER = 0.1  # seconds added to per-chat and per-group windows: HTTP jitter is not proportional


class Limiter:
    def __init__(self, windows: tuple[Window, ...], now: Callable[[], float] = time.monotonic,
                 margin: float = MARGIN, jitter: float = JITTER) -> None:
        self.windows = windows
        self._now = now
        self.margin = margin
        self.jitter = jitter
        # reserved send times per (scope key, window), ascending (a key is never overtaken)
        self._slots: dict[tuple, deque[float]] = defaultdict(deque)
        self.senders = 1  # processes sharing the overall windows (bot/senders.py)

    def span(self, w: Window) -> float:
        if w.scope == "global":  # this process's 1/n of the bot's overall rate
            return w.seconds * (1 + self.margin) * self.senders
        return w.seconds * (1 + self.margin) + self.jitter

    def share(self, senders: int) -> None:
        """Take 1/senders of each overall window and forget every chat's sends: the chats are
        dealt out afresh, and `seed` brings back the sends of the chats this process now has."""
        self.senders = max(1, senders)
        for key in [k for k in self._slots if k[0] != "global"]:
            del self._slots[key]

    def longest_chat_span(self) -> float:
        return max((self.span(w) for w in self.windows if w.scope != "global"), default=0.0)

    def seed(self, chat_id: str, is_group: bool, ages: list[float]) -> None:
        """Count sends made `ages` seconds ago (by another process, or before a restart) in this
        chat's own windows."""
        now = self._now()
        for w, key in self._keys(chat_id, is_group):
            if w.scope == "global":
                continue
            span = self.span(w)
            past = [now - a for a in ages if a < span]
            if past:
                self._slots[key] = deque(sorted([*self._slots.get(key, ()), *past]))

    def _keys(self, chat_id: str, is_group: bool) -> list[tuple[Window, tuple]]:
        out = []
        for w in self.windows:
            if w.scope == "global":
                out.append((w, ("global", w)))
            elif w.scope == "chat" or (w.scope == "group" and is_group) or (w.scope == "private" and not is_group):
                out.append((w, (chat_id, w)))
        return out

    def _earliest(self, keys: list[tuple[Window, tuple]], now: float) -> float:
        t = now
        for w, key in keys:
            q = self._slots.get(key)
            if not q:
                continue
            span = self.span(w)
            while q and q[0] <= now - span:
                q.popleft()
            if not q:
                self._slots.pop(key, None)
                continue
            t = max(t, q[-1])  # never before a slot already reserved in this window
            if len(q) >= w.count:
                t = max(t, q[-w.count] + span)
            if w.scope == "global":
                t = max(t, q[-1] + span / w.count)  # evenly paced, not one burst per window
        return t

    def next_at(self, chat_id: str, is_group: bool) -> float:
        """When a send to this chat could start (monotonic seconds)."""
        return self._earliest(self._keys(chat_id, is_group), self._now())

    def chat_ready_at(self, chat_id: str, is_group: bool) -> float:
        """Like next_at, counting only this chat's own windows (not the overall one)."""
        keys = [(w, k) for w, k in self._keys(chat_id, is_group) if w.scope != "global"]
        return self._earliest(keys, self._now())

    def reserve(self, chat_id: str, is_group: bool) -> float:
        """Take the earliest slot for one platform call to this chat; returns its time."""
        keys = self._keys(chat_id, is_group)
        t = self._earliest(keys, self._now())
        for _w, key in keys:
            self._slots[key].append(t)
        return t

    def free_slots(self, horizon: float, cap: int) -> int:
        """How many sends the overall windows let start within `horizon` seconds (at most cap)."""
        now = self._now()
        free = cap
        for w in self.windows:
            if w.scope != "global":
                continue
            key = ("global", w)
            start = self._earliest([(w, key)], now)
            step = self.span(w) / w.count
            free = min(free, max(0, math.floor((now + horizon - start) / step) + 1))
        return free

    def delay(self, chat_id: str, is_group: bool) -> float:
        return max(0.0, self.next_at(chat_id, is_group) - self._now())

    async def acquire(self, chat_id: str, is_group: bool) -> None:
        """Reserve a slot and wait for it."""
        wait = self.reserve(chat_id, is_group) - self._now()
        if wait > 0:
            await asyncio.sleep(wait)
