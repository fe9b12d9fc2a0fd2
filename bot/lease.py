"""A job one process of a bot does at a time: a named lease in the database.

Telegram gives a bot's updates to one getUpdates caller at a time (a second one gets 409
Conflict), and the inbox is handled in update order. So of several `gridbot run` processes of
one bot, the holder of the lease polls and handles the inbox; the others deliver, serve the web
server (a webhook stored by any of them is handled by the holder) and stand by. The holder renews
every RENEW seconds; a lease not renewed for TTL seconds belonged to a process that died, and
another takes it at its next try. A holder on this machine whose process is gone (kill -9, then a
restart) is taken over at once rather than after TTL.

Liveness uses the machine's wall clock, as bot/senders.py does: the processes need synchronised
clocks (NTP).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.models import Lease as LeaseRow
from workflows.routines.common import dialect_insert

RENEW = 2.0  # seconds between the holder's renewals (and a stand-by's tries)
TTL = 6.0  # a lease not renewed for this long is free


def _host() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def _gone(host: str) -> bool:
    """The holder ran on this machine and its process no longer exists."""
    name, _, pid = host.rpartition(":")
    if name != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


class Lease:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], name: str) -> None:
        self.sessionmaker = sessionmaker
        self.name = name[:60]
        self.holder_id = uuid.uuid4().hex
        self.host = _host()
        self.held = False
        self.other: str | None = None  # who holds it when we do not (for the log)

    async def acquire(self) -> bool:
        """Take the lease or renew it; True while this process holds it."""
        now = datetime.now(UTC)
        until = now + timedelta(seconds=TTL)
        async with self.sessionmaker() as session, session.begin():
            row = await session.get(LeaseRow, self.name, with_for_update=True)
            if row is None:
                # two first takers at once: the key lets one in
                added = await session.execute(dialect_insert(session)(LeaseRow).values(
                    name=self.name, holder=self.holder_id, host=self.host, until=until)
                    .on_conflict_do_nothing(index_elements=["name"]))
                self.held, self.other = added.rowcount == 1, None
            elif row.holder == self.holder_id or row.until < now or _gone(row.host):
                row.holder, row.host, row.until = self.holder_id, self.host, until
                self.held, self.other = True, None
            else:
                self.held, self.other = False, row.host
        return self.held

    async def release(self) -> None:
        """A clean stop frees the lease for the others' next try."""
        if not self.held:
            return
        self.held = False
        async with self.sessionmaker() as session, session.begin():
            await session.execute(update(LeaseRow).where(
                LeaseRow.name == self.name, LeaseRow.holder == self.holder_id)
                .values(until=datetime.now(UTC) - timedelta(seconds=1)))
