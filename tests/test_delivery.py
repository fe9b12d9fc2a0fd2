"""The delivery worker against the fake Bot API over real HTTP: per-chat fairness, priorities,
the wake-up that lands during a round, a database lock during sends, SIGTERM in the middle of a
burst. Figures (rates, spacing) are in bench/delivery.py, not asserted here."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.channels.telegram_send import TelegramAdapter
from bot.delivery import Delivery
from bot.outbox_cli import render, summary
from handlers.events import Inbound
from handlers.office import Office
from workflows.inbox_models import InboxUpdate
from workflows.models import Outbox
from workflows.outbox import BULK, CARD, REPLY, Msg, outbox_values

from .fakes.telegram_api import FakeTelegram
from .support import MovingClock, free_port, until

ROOT = Path(__file__).resolve().parent.parent
GROUP = "-100500"


@pytest.fixture
async def tg():
    server = await FakeTelegram().start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(tg):
    b = Bot(tg.token, base_url=tg.base_url, request=HTTPXRequest(connection_pool_size=64))
    await b.initialize()
    yield b
    await b.shutdown()


@pytest.fixture
async def worker(sessionmaker, bot):
    clock = MovingClock()
    d = Delivery(sessionmaker, {"telegram": TelegramAdapter(bot)}, clock=clock, poll_seconds=30)
    task: list[asyncio.Task] = []

    def start() -> Delivery:
        task.append(asyncio.create_task(d.run()))
        return d

    d.start = start  # type: ignore[attr-defined]
    yield d
    d.stop()
    if task:
        await asyncio.wait_for(task[0], 20)


async def add(sm, clock, rows: list[tuple[str, str, int]], *, is_group: bool = False) -> None:
    """rows: (chat id, text, priority)"""
    now = clock.now()
    async with sm() as s, s.begin():
        for chat, body, prio in rows:
            s.add(Outbox(**outbox_values(now, "telegram", chat, Msg(body), is_group=is_group or chat.startswith("-"),
                                         priority=prio, card_key=f"card:{body}" if prio == CARD else None)))


def texts(tg: FakeTelegram, chat: str | None = None) -> list[str]:
    return [c.params["text"] for c in tg.calls_of("sendMessage", chat=chat) if c.status == 200]


async def count(sm, *where) -> int:
    async with sm() as s:
        return (await s.execute(select(func.count()).select_from(Outbox).where(*where))).scalar_one()


async def test_a_busy_group_and_a_busy_person_do_not_delay_another_reply(sessionmaker, tg, worker):
    d = worker
    await add(sessionmaker, d.clock, [(GROUP, f"notice {n}", BULK) for n in range(30)])
    await add(sessionmaker, d.clock, [("1001", f"answer {n}", REPLY) for n in range(30)])
    d.start()
    await until(lambda: len(texts(tg, GROUP)) >= 1 and len(texts(tg, "1001")) >= 1, what="both queues started")
    await add(sessionmaker, d.clock, [("2002", "your case is 0001", REPLY)])
    d.wake()
    await until(lambda: texts(tg, "2002"), timeout=5, what="the other person's reply")
    # the group (1/s, 20/min) and the first person (1/s) have most of theirs still waiting
    assert len(texts(tg, GROUP)) < 10 and len(texts(tg, "1001")) < 10
    # each chat keeps its order
    await until(lambda: len(texts(tg, "1001")) >= 3, timeout=10)
    got = texts(tg, "1001")
    assert got == [f"answer {n}" for n in range(len(got))]


async def test_replies_go_before_cards_and_cards_before_bulk(sessionmaker, tg, worker):
    d = worker
    await add(sessionmaker, d.clock, [(str(3000 + n), f"reminder {n}", BULK) for n in range(60)])
    await add(sessionmaker, d.clock, [("4001", "case card", CARD)])
    await add(sessionmaker, d.clock, [("4002", "reply", REPLY)])
    d.start()
    await until(lambda: len(texts(tg)) >= 40, timeout=10)
    order = texts(tg)
    # sends start 34 ms apart (30/s), so HTTP jitter may swap neighbours at the server (by a few
    # slots on a loaded machine): the reply and the card are in the first slots of 62, the
    # reminders follow in their own order
    assert {"reply", "case card"} <= set(order[:5]), order[:10]
    assert set(order[:40]) <= {"reply", "case card", *(f"reminder {n}" for n in range(40))}


async def test_a_wake_up_during_a_round_is_not_lost(sessionmaker, tg, bot):
    """A commit that lands while a round runs (after its query saw nothing) must start the next
    round at once, not after poll_seconds (30 s here)."""
    clock = MovingClock()
    landed: list[bool] = []

    class CommitDuringRound(Delivery):
        async def _claim(self, channel, blocked, limit):
            rows = await super()._claim(channel, blocked, limit)
            if not rows and not landed:  # the round found nothing; now a reply is committed
                landed.append(True)
                await add(sessionmaker, clock, [("5001", "you are registered", REPLY)])
                self.wake()
            return rows

    d = CommitDuringRound(sessionmaker, {"telegram": TelegramAdapter(bot)}, clock=clock, poll_seconds=30)
    task = asyncio.create_task(d.run())
    try:
        await until(lambda: texts(tg, "5001"), timeout=5, what="the reply committed during the round")
    finally:
        d.stop()
        await asyncio.wait_for(task, 10)
    assert landed


async def test_a_database_lock_during_sends_neither_repeats_nor_loses(sessionmaker, tg, worker, db_url):
    d = worker
    tg.send_delay = 0.3  # sends are in flight when the lock is taken
    await add(sessionmaker, d.clock, [(str(6000 + n), f"reply {n}", REPLY) for n in range(40)])
    d.start()
    await until(lambda: len(tg.calls_of("sendMessage")) >= 5, what="sends in flight")
    hold = 6.0 if db_url.startswith("sqlite") else 2.0  # longer than SQLite's busy timeout (5 s)
    office = Office(sessionmaker, clock=d.clock, channels=frozenset({"telegram"}), on_commit=d.wake)
    async with sessionmaker() as s, s.begin():
        if db_url.startswith("sqlite"):
            await s.execute(text("UPDATE outbox SET error = error WHERE id < 0"))  # holds the write lock
        else:
            await s.execute(text("LOCK TABLE outbox IN EXCLUSIVE MODE"))
        # a person writes while the lock is held: handled when it is released, no apology
        during = asyncio.create_task(office.handle(Inbound(channel="telegram", chat_id="6999", user_id="6999",
                                                           user_name="王五", event_id="u1", text="/start")))
        await asyncio.sleep(hold)
    reply = await asyncio.wait_for(during, 30)
    assert reply.alert is None and reply.handled
    await until(lambda: _all_sent(sessionmaker), timeout=30, what="every row marked sent")
    got = Counter(texts(tg))
    assert sorted(t for t in got if t.startswith("reply ")) == sorted(f"reply {n}" for n in range(40))
    assert max(got.values()) == 1, [t for t, n in got.items() if n > 1]
    async with sessionmaker() as s:
        rows = list((await s.execute(select(Outbox))).scalars())
    assert all(r.message_id for r in rows)  # the platform's message id is kept per row
    assert not any("系统出了点问题" in t for t in got)
    assert any("请选择要办理的事项" in t for t in texts(tg, "6999"))


async def _all_sent(sm) -> bool:
    return await count(sm, Outbox.status != "sent") == 0


async def test_sigterm_in_the_middle_of_a_burst_repeats_nothing(sessionmaker, tg, db_url, tmp_path):
    """The real `gridbot run`: SIGTERM while sends are in flight; the restarted process sends
    the rest. Every message reaches the fake Bot API exactly once."""
    clock = MovingClock()
    await add(sessionmaker, clock, [(str(7000 + n % 60), f"burst {n}", REPLY) for n in range(150)])
    tg.send_delay = 0.2
    env = {**os.environ, "DATABASE_URL": db_url, "TELEGRAM_BOT_TOKEN": tg.token,
           "TELEGRAM_API_BASE_URL": tg.base_url, "SCHEDULER_ENABLED": "false", "HTTP_PORT": str(free_port()),
           "HTTP_HOST": "127.0.0.1", "DELIVERY_POLL_SECONDS": "0.2", "LOG_LEVEL": "WARNING"}

    async def run_until(n_sends: int | None):
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot.cli", "run", cwd=ROOT, env=env,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        if n_sends is not None:
            await until(lambda: len(tg.calls_of("sendMessage")) >= n_sends, timeout=30, what="sends under way")
        else:
            await until(lambda: _all_sent(sessionmaker), timeout=60, what="the rest sent")
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()[-2000:]

    await run_until(40)
    assert await count(sessionmaker, Outbox.status == "sending") == 0  # nothing left claimed
    await run_until(None)
    got = Counter(texts(tg))
    assert sorted(got) == sorted(f"burst {n}" for n in range(150))
    assert max(got.values()) == 1, [t for t, n in got.items() if n > 1]


async def test_the_outbox_command_shows_waiting_age_and_failures(sessionmaker):
    clock = MovingClock()
    await add(sessionmaker, clock, [("8001", "waiting", REPLY), ("8002", "bulk", BULK)])
    async with sessionmaker() as s, s.begin():
        now = clock.now()
        s.add(Outbox(**outbox_values(now, "telegram", "8003", Msg("x"), status="failed",
                                     error="forbidden: bot was blocked by the user")))
        s.add(Outbox(**outbox_values(now, "telegram", "8004", Msg("y"), status="failed",
                                     error="forbidden: bot was blocked by the user")))
        s.add(InboxUpdate(channel="telegram", update_id=77, payload={"update_id": 77}, status="pending",
                          received_at=now))  # stored, not handled: no process holds the inbox
    clock.advance(600)
    from datetime import timedelta

    async with sessionmaker() as s:
        shown = render(await summary(s, clock.now(), timedelta(hours=24)), clock.now(), timedelta(hours=24))
    line = next(x for x in shown.splitlines() if x.startswith("telegram"))
    assert line.split()[1:5] == ["2", "2", "0", "10m"]
    assert "bulk 1" in line and "replies 1" in line
    assert "2  failed: forbidden: bot was blocked by the user" in shown
    assert "inbound telegram: 1 stored, not yet handled (oldest 10m)" in shown


async def test_wecom_counts_every_call_against_the_members_window(sessionmaker):
    """One row with 9 photos is 10 message/send calls: each takes a slot in the member's window
    (narrowed here to 3 per second so the test is short), and another member is not held up."""
    from bot.channels.base import Window
    from bot.channels.wecom_api import WeComAPI
    from bot.channels.wecom_send import WeComAdapter

    from .fakes.wecom_api import CORP_ID, SECRET, FakeWeCom

    fake = await FakeWeCom().start()
    try:
        adapter = WeComAdapter(WeComAPI(CORP_ID, SECRET, "1000002", fake.base_url), sessionmaker)
        adapter.windows = (Window("private", 3, 1.0), Window("global", 30, 1.0))
        clock = MovingClock()
        photos = [{"kind": "photo", "ref": f"media-{n}", "channel": "wecom"} for n in range(9)]
        async with sessionmaker() as s, s.begin():
            s.add(Outbox(**outbox_values(clock.now(), "wecom", "zhangsan", Msg("现场照片", media=photos),
                                         priority=CARD)))
        d = Delivery(sessionmaker, {"wecom": adapter}, clock=clock, poll_seconds=30)
        task = asyncio.create_task(d.run())
        try:
            await until(lambda: len(fake.sent_to_user("zhangsan")) >= 2, what="the photos started")
            async with sessionmaker() as s, s.begin():
                s.add(Outbox(**outbox_values(clock.now(), "wecom", "lisi", Msg("已收到"), priority=REPLY)))
            d.wake()
            await until(lambda: fake.sent_to_user("lisi"), what="the other member's reply")
            assert len(fake.sent_to_user("zhangsan")) < 10  # lisi did not wait for zhangsan's photos
            await until(lambda: len(fake.sent_to_user("zhangsan")) == 10, timeout=15, what="all ten calls")
        finally:
            d.stop()
            await asyncio.wait_for(task, 10)
        at = sorted(c.at for c in fake.sent_to_user("zhangsan"))
        assert all(at[i + 3] - at[i] >= 1.0 for i in range(len(at) - 3))  # never 4 within a second
    finally:
        await fake.stop()
