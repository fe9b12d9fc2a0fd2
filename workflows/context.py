"""What every action is given: the open transaction, the clock and the office's defaults."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from .clock import Clock, SystemClock


@dataclass
class Ctx:
    session: AsyncSession
    clock: Clock = field(default_factory=SystemClock)
    # channels messages may be addressed to; a binding on another channel is skipped
    channels: frozenset[str] = frozenset({"terminal"})
    language: str = "zh_CN"
    timezone: str = "Asia/Shanghai"
    # the channel/chat an inbound event came from, recorded on case events
    via_channel: str | None = None
    via_chat: str | None = None

    def now(self):
        return self.clock.now()


async def core_rows(session: AsyncSession, query):
    """The rows of a query of columns as Core rows, in the session's transaction (pending changes
    flushed first, as the ORM's autoflush would): for queries returning many thousand rows (a
    city's figures, a deadline burst), where the ORM's result machinery cost as much as the
    database."""
    await session.flush()
    return await (await session.connection()).execute(query)
