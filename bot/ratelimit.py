"""Sliding-window send limits, so a platform's limits are kept rather than discovered."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque

from .channels.base import Window


class Limiter:
    def __init__(self, windows: tuple[Window, ...], now=time.monotonic) -> None:
        self.windows = windows
        self._now = now
        self._sent: dict[tuple, deque[float]] = defaultdict(deque)
        self._lock = asyncio.Lock()

    def _keys(self, chat_id: str, is_group: bool) -> list[tuple[Window, tuple]]:
        out = []
        for w in self.windows:
            if w.scope == "global":
                out.append((w, ("global", w)))
            elif w.scope == "chat" or (w.scope == "group" and is_group) or (w.scope == "private" and not is_group):
                out.append((w, (chat_id, w)))
        return out

    def delay(self, chat_id: str, is_group: bool) -> float:
        now = self._now()
        wait = 0.0
        for w, key in self._keys(chat_id, is_group):
            q = self._sent[key]
            while q and q[0] <= now - w.seconds:
                q.popleft()
            if len(q) >= w.count:
                wait = max(wait, q[0] + w.seconds - now)
        return wait

    async def acquire(self, chat_id: str, is_group: bool) -> None:
        # wait outside the lock, so one busy chat does not hold up the others
        while True:
            async with self._lock:
                wait = self.delay(chat_id, is_group)
                if wait <= 0:
                    now = self._now()
                    for _w, key in self._keys(chat_id, is_group):
                        self._sent[key].append(now)
                    return
            await asyncio.sleep(wait)
