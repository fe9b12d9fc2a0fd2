"""kill -9 of a real `gridbot run` while it is sending a burst of replies and cards to many chats:
no message lost; the only repeats are rows the dead process had in flight (at most one per
chat); a SIGTERM repeats nothing. A few trials here; `python -m bench.crash_delivery` runs 20
per transport and database."""

from __future__ import annotations

import random
import signal

import pytest

from bench.crash_delivery import trial, unreachable_stop

from .fakes.telegram_api import FakeTelegram


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    server.send_delay = 0.05  # a real server's round trip: sends are in flight when the kill lands
    yield server
    await server.stop()


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_kill_9_during_delivery_loses_nothing_and_repeats_only_what_was_in_flight(
        sessionmaker, db_url, tg, framework, tmp_path):
    rng = random.Random(16)
    for n in range(2 if framework == "ptb" else 1):
        t = await trial(sessionmaker, db_url, tg, framework, rng, trial_no=n, burst=60, chats=20,
                        sig=signal.SIGKILL, log_dir=str(tmp_path))
        assert 0 < t.accepted_at_signal < t.burst  # the kill landed in the middle of the burst
        assert t.lost == 0, t
        assert t.duplicated <= t.in_flight <= 20, t  # one claimed row per chat at most


async def test_sigterm_during_delivery_loses_and_repeats_nothing(sessionmaker, db_url, tg, tmp_path):
    t = await trial(sessionmaker, db_url, tg, "ptb", random.Random(7), trial_no=0, burst=60, chats=20,
                    sig=signal.SIGTERM, log_dir=str(tmp_path))
    assert 0 < t.accepted_at_signal < t.burst
    assert (t.lost, t.duplicated, t.in_flight) == (0, 0, 0), t


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_sigterm_with_the_bot_api_unreachable_exits_in_bounded_time_and_loses_nothing(
        sessionmaker, db_url, tg, framework, tmp_path):
    """aiogram waits 60 s for an answer: the stop took 64 s before delivery gave up after STOP_GRACE."""
    u = await unreachable_stop(sessionmaker, db_url, tg, framework, trial_no=0, burst=60, chats=20,
                               log_dir=str(tmp_path))
    assert u.exit_code == 0 and u.exit_seconds < 30, u  # not a speed figure: hanging vs not
    assert (u.lost, u.duplicated) == (0, 0), u
