"""kill -9 of a real `gridbot run` in the middle of an inbound burst: no update lost, none handled
twice, on both transports (a few trials here; `python -m bench.crash` runs 20 per transport)."""

from __future__ import annotations

import random
import signal

import pytest

from bench.crash import trial

from .fakes.telegram_api import FakeTelegram


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.mark.parametrize("framework", ["ptb", "aiogram"])
async def test_kill_9_during_an_inbound_burst_loses_and_repeats_nothing(sessionmaker, db_url, tg, framework,
                                                                       tmp_path):
    """With python-telegram-bot's Updater this lost 60 of 60 and 51 of 60 in two trials."""
    rng = random.Random(14)
    for n in range(2 if framework == "ptb" else 1):
        t = await trial(sessionmaker, db_url, tg, framework, rng, burst=40, first_person=900_000 + n * 1000,
                        sig=signal.SIGKILL, log_dir=str(tmp_path), kill_window=0.3)
        assert t.killed_after < t.burst  # the kill landed before the burst was through
        assert (t.lost, t.twice) == (0, 0), t


async def test_sigterm_during_a_burst_loses_and_repeats_nothing(sessionmaker, db_url, tg, tmp_path):
    t = await trial(sessionmaker, db_url, tg, "ptb", random.Random(7), burst=40, first_person=950_000,
                    sig=signal.SIGTERM, log_dir=str(tmp_path))
    assert (t.lost, t.twice) == (0, 0), t
