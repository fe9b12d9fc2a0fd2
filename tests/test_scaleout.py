"""Scale-out: two `gridbot run` processes on one PostgreSQL deliver one burst — every row sent by
exactly one of them (`python -m bench.crash_delivery --two-processes --db postgresql` at size)."""

from __future__ import annotations

import pytest

from bench.crash_delivery import two_senders

from .fakes.telegram_api import FakeTelegram


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    server.send_delay = 0.05
    yield server
    await server.stop()


async def test_two_processes_share_delivery_without_a_duplicate(sessionmaker, db_url, tg, tmp_path):
    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out is for PostgreSQL (SQLite is one writer on one machine)")
    t = await two_senders(sessionmaker, db_url, tg, "ptb", trial_no=0, burst=120, chats=40, log_dir=str(tmp_path))
    assert (t.lost, t.duplicated) == (0, 0), t
