"""Delivery shared by several `gridbot run` processes of one bot: who is sending, and whose chats.

A platform's limits are per bot, not per process (Telegram's ~30/s overall, a chat's 1/s, a
group's 20/min). Each running delivery worker keeps a row in `delivery_sender`, refreshed every
HEARTBEAT seconds; a row not refreshed for TTL seconds is a process that died. With n live
senders ordered by id, the k-th one sends only to the chats whose shard (a hash of the chat id)
mod n is k, and takes 1/n of each overall window. So a chat is sent to by one process at a time
and its own windows can stay in that process's memory; when the membership changes, a process
reads a chat's recent sends from the outbox (sent_at) before its first send to it (Delivery).

Liveness uses the machine's wall clock, not the office's clock (tests move that one), so the
processes of one bot need synchronised clocks (NTP), as any two servers do.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.models import DeliverySender

HEARTBEAT = 2.0  # seconds between a sender's refreshes
TTL = 6.0  # a sender not seen for this long has stopped: its chats go to the others
FORGET = timedelta(hours=1)  # rows of senders gone this long are deleted


@dataclass(frozen=True)
class Share:
    """This process's part: chats with shard mod count == index, 1/count of the overall windows."""

    index: int = 0
    count: int = 1


def shard(dialect: str, chat_id: ColumnElement) -> ColumnElement:
    """A stable non-negative hash of a chat id, computed by the database (PostgreSQL's hashtext;
    on SQLite the function bot/db.py registers on every connection)."""
    if dialect == "postgresql":
        return func.hashtext(chat_id).op("&")(0x7FFFFFFF)
    return func.gridbot_shard(chat_id)


class Senders:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker
        self.sender_id = uuid.uuid4().hex
        self.host = f"{socket.gethostname()}:{os.getpid()}"[:200]
        self.share = Share()
        self._beaten = 0.0

    def due(self) -> bool:
        return time.monotonic() - self._beaten >= HEARTBEAT

    async def beat(self) -> Share:
        """Refresh this sender's row and read who else is live; returns this process's share."""
        now = datetime.now(UTC)
        async with self.sessionmaker() as session, session.begin():
            found = await session.execute(update(DeliverySender).where(
                DeliverySender.sender_id == self.sender_id).values(seen_at=now))
            if found.rowcount == 0:
                session.add(DeliverySender(sender_id=self.sender_id, host=self.host, started_at=now, seen_at=now))
                await session.flush()
            await session.execute(delete(DeliverySender).where(DeliverySender.seen_at < now - FORGET))
        # read in a transaction of its own, after our row is committed: two senders starting at
        # once cannot both miss each other (the later reader sees the earlier one's row)
        async with self.sessionmaker() as session:
            live = list((await session.execute(
                select(DeliverySender.sender_id).where(DeliverySender.seen_at >= now - timedelta(seconds=TTL))
                .order_by(DeliverySender.sender_id))).scalars())
        if self.sender_id not in live:  # our own clock stepped back: count ourselves anyway
            live = sorted([*live, self.sender_id])
        self._beaten = time.monotonic()
        self.share = Share(live.index(self.sender_id), len(live))
        return self.share

    async def leave(self) -> None:
        """A clean stop hands this sender's chats over at the others' next heartbeat."""
        async with self.sessionmaker() as session, session.begin():
            await session.execute(delete(DeliverySender).where(DeliverySender.sender_id == self.sender_id))


async def live_senders(session: AsyncSession) -> list[DeliverySender]:
    """The senders seen within TTL (for `gridbot outbox`)."""
    since = datetime.now(UTC) - timedelta(seconds=TTL)
    return list((await session.execute(select(DeliverySender).where(DeliverySender.seen_at >= since)
                                       .order_by(DeliverySender.started_at))).scalars())
