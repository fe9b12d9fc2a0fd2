"""Scale-out: two `gridbot run` processes on one PostgreSQL deliver one burst — every row sent by
exactly one of them (`python -m bench.crash_delivery --two-processes --db postgresql` at size) —
and the live senders of one bot split its chats and its overall rate (bot/senders.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from telegram import Bot
from telegram.request import HTTPXRequest

from bench.crash_delivery import two_senders
from bot.delivery import Delivery
from bot.outbox_cli import render, summary
from workflows.models import DeliverySender, Outbox
from workflows.outbox import BULK, Msg, outbox_values

from .fakes.telegram_api import FakeTelegram
from .support import MovingClock, until


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


async def _start(sessionmaker, server: FakeTelegram, clock) -> tuple[Delivery, asyncio.Task, Bot]:
    from bot.channels.telegram_send import TelegramAdapter

    b = Bot(server.token, base_url=server.base_url, request=HTTPXRequest(connection_pool_size=32))
    await b.initialize()
    d = Delivery(sessionmaker, {"telegram": TelegramAdapter(b)}, clock=clock, poll_seconds=1)
    return d, asyncio.create_task(d.run()), b


async def _stop(d: Delivery, task: asyncio.Task, b: Bot) -> None:
    d.stop()
    await asyncio.wait_for(task, 20)
    await b.shutdown()


async def _add(sessionmaker, clock, rows: list[tuple[str, str]]) -> None:
    async with sessionmaker() as s, s.begin():
        for chat, body in rows:
            s.add(Outbox(**outbox_values(clock.now(), "telegram", chat, Msg(body), is_group=chat.startswith("-"),
                                         priority=BULK)))


def _accepted(server: FakeTelegram) -> list[tuple[str, str]]:
    return [(str(c.params["chat_id"]), c.params["text"]) for c in server.calls_of("sendMessage") if c.status == 200]


async def test_two_senders_deal_out_the_chats_and_halve_the_overall_rate(sessionmaker):
    """Two delivery workers of one bot (each sending through its own copy of the fake Bot API, so
    the test sees who sent what): each chat goes to one of them, each takes half the bot's rate."""
    clock = MovingClock()
    servers = [await FakeTelegram().start() for _ in range(2)]
    started = [await _start(sessionmaker, s, clock) for s in servers]
    try:
        await until(lambda: all(d.share.count == 2 for d, _t, _b in started), 20)
        assert sorted(d.share.index for d, _t, _b in started) == [0, 1]
        assert all(d.limiters["telegram"].senders == 2 for d, _t, _b in started)
        async with sessionmaker() as s:  # what an operator sees in `gridbot outbox`
            shown = render(await summary(s, clock.now(), timedelta(hours=1)), clock.now(), timedelta(hours=1))
        assert "delivery workers running: 2" in shown
        rows = [(str(500_000 + i % 40), f"第{i}条") for i in range(120)]
        await _add(sessionmaker, clock, rows)
        await until(lambda: sum(len(_accepted(s)) for s in servers) >= len(rows), 60)
        got = [_accepted(s) for s in servers]
        chats = [{chat for chat, _ in g} for g in got]
        assert chats[0] and chats[1] and not chats[0] & chats[1], "a chat was sent to by both"
        assert sorted(t for g in got for _, t in g) == sorted(t for _, t in rows)  # once each
        for g in got:  # each chat's messages in the order they were written
            for chat in {c for c, _ in g}:
                mine = [t for c, t in g if c == chat]
                assert mine == [t for c, t in rows if c == chat]
    finally:
        for d, t, b in started:
            await _stop(d, t, b)
        for s in servers:
            await s.stop()
    async with sessionmaker() as s:  # a clean stop leaves no sender behind
        assert (await s.execute(select(func.count()).select_from(DeliverySender))).scalar_one() == 0


async def test_a_restarted_sender_counts_the_groups_recent_sends(sessionmaker, tg):
    """A group had its 20 messages of the minute from the previous process: the new one holds the
    21st back instead of drawing a 429 (Telegram counts per bot, not per process)."""
    clock = MovingClock()
    d, task, b = await _start(sessionmaker, tg, clock)
    try:
        await _add(sessionmaker, clock, [("-100777", f"群消息{i}") for i in range(20)])
        await until(lambda: len(_accepted(tg)) == 20, 60)
    finally:
        await _stop(d, task, b)
    d2, task2, b2 = await _start(sessionmaker, tg, clock)
    try:
        await _add(sessionmaker, clock, [("-100777", "第21条"), ("600001", "私聊回复")])
        await until(lambda: ("600001", "私聊回复") in _accepted(tg), 20)
        await asyncio.sleep(1.5)  # rounds enough for the 21st to have gone had it been let through
        assert ("-100777", "第21条") not in _accepted(tg)
        assert "-100777" in d2._held("telegram")
    finally:
        await _stop(d2, task2, b2)
