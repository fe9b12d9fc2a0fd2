"""bot/lease.py: one holder at a time; a clean stop, an expired lease and a dead process on this
machine each free it; the others stand by."""

from __future__ import annotations

import socket
import subprocess
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from bot.lease import Lease
from workflows.models import Lease as LeaseRow


async def test_one_holder_and_a_clean_handover(sessionmaker):
    a, b = Lease(sessionmaker, "telegram:1"), Lease(sessionmaker, "telegram:1")
    assert await a.acquire() is True
    assert await b.acquire() is False and b.other == a.host
    assert await a.acquire() is True  # renewed
    assert await Lease(sessionmaker, "telegram:2").acquire() is True  # another bot, its own lease
    await a.release()
    assert await b.acquire() is True
    assert await a.acquire() is False


async def test_an_expired_lease_is_taken_and_its_old_holder_stands_by(sessionmaker):
    a, b = Lease(sessionmaker, "telegram:1"), Lease(sessionmaker, "telegram:1")
    assert await a.acquire()
    async with sessionmaker() as s, s.begin():  # a stopped renewing (a hung process, a lost host)
        await s.execute(update(LeaseRow).values(until=datetime.now(UTC) - timedelta(seconds=1),
                                                host="elsewhere:1"))
    assert await b.acquire() is True
    assert await a.acquire() is False and a.other == b.host


async def test_a_dead_process_on_this_machine_is_taken_over_at_once(sessionmaker):
    a, b = Lease(sessionmaker, "telegram:1"), Lease(sessionmaker, "telegram:1")
    assert await a.acquire()
    gone = subprocess.Popen(["true"])
    gone.wait()
    async with sessionmaker() as s, s.begin():  # as if a had been that process, killed with -9
        await s.execute(update(LeaseRow).values(host=f"{socket.gethostname()}:{gone.pid}"))
    assert await b.acquire() is True
    async with sessionmaker() as s, s.begin():  # a live process on this machine keeps it
        await s.execute(update(LeaseRow).values(host=f"{socket.gethostname()}:1"))
    assert await a.acquire() is False
