"""Scale-out: two `gridbot run` processes on one PostgreSQL deliver one burst — every row sent by
exactly one of them (`python -m bench.crash_delivery --two-processes --db postgresql` at size) —
and the live senders of one bot split its chats and its overall rate (bot/senders.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

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
    async with sessionmaker() as s, s.begin():  # what the previous process sent this minute
        for i in range(20):
            s.add(Outbox(**outbox_values(clock.now(), "telegram", "-100777", Msg(f"群消息{i}"), is_group=True,
                                         status="sent", priority=BULK), sent_at=clock.now()))
    d2, task2, b2 = await _start(sessionmaker, tg, clock)
    try:
        await _add(sessionmaker, clock, [("-100777", "第21条"), ("600001", "私聊回复")])
        await until(lambda: ("600001", "私聊回复") in _accepted(tg), 20)
        await asyncio.sleep(1.5)  # rounds enough for the 21st to have gone had it been let through
        assert ("-100777", "第21条") not in _accepted(tg)
        assert "-100777" in d2._held("telegram")
    finally:
        await _stop(d2, task2, b2)


async def test_two_processes_share_inbound_one_polls_the_other_takes_over(sessionmaker, db_url, tmp_path):
    """Two `gridbot run` of one bot on one PostgreSQL: the lease holder alone polls and handles
    (the fake answers a second concurrent getUpdates with 409, as Telegram does: none happen);
    every update is answered once; after a kill -9 of the holder the other takes over."""
    import signal

    from workflows.models import InboundSeen

    from .fakes.telegram_api import Person

    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out is for PostgreSQL (SQLite is one writer on one machine)")
    server = await FakeTelegram().start()
    procs = _two_runs(db_url, server, tmp_path)

    async def holder() -> str | None:
        return await _holder(sessionmaker)

    async def senders() -> int:
        async with sessionmaker() as s:
            return (await s.execute(select(func.count()).select_from(DeliverySender))).scalar_one()

    async def handled(ids: list[int]) -> int:
        async with sessionmaker() as s:
            return (await s.execute(select(func.count()).select_from(InboundSeen).where(
                InboundSeen.event_id.in_([str(i) for i in ids])))).scalar_one()

    def answered_once(people: list[Person]) -> bool:
        return all(len(server.sent_to(p.id)) == 1 for p in people)

    try:
        async def both_up() -> bool:
            return await senders() == 2 and await holder() is not None

        await until(both_up, 90)
        first = [Person(610_000 + i, f"居民{i}") for i in range(30)]
        ids = [server.say(p, "/start") for p in first]
        await until(lambda: answered_once(first), 60)
        assert await handled(ids) == len(ids)
        assert server.conflicts == 0, "two processes polled at once"
        host = await holder()
        async with sessionmaker() as s:  # what an operator sees in `gridbot outbox`
            now = datetime.now(UTC)
            shown = render(await summary(s, now, timedelta(hours=1)), now, timedelta(hours=1))
        assert f"polled and handled by {host}" in shown and "delivery workers running: 2" in shown
        lead = next(p for p in procs if host.endswith(f":{p.proc.pid}"))
        other = procs[1 - procs.index(lead)]
        lead.signal(signal.SIGKILL)
        await lead.wait()
        later = [Person(620_000 + i, f"居民{i}") for i in range(10)]
        ids = [server.say(p, "/start") for p in later]
        await until(lambda: answered_once(later), 60)  # the holder's process is gone: taken at once
        assert (await holder()).endswith(f":{other.proc.pid}")
        assert answered_once(first)  # nothing of the first burst handled again
        # the killed process's last getUpdates, still waiting on the server, ended by the new poller
        assert server.conflicts <= 1
    finally:
        await _stop_all(procs)
        await server.stop()


async def test_two_processes_behind_one_webhook_address_each_update_handled_once(sessionmaker, db_url, tmp_path):
    """With the webhook, whichever process an update reaches stores it (200 after the commit);
    the lease holder handles it — also what reached the other one — once."""
    import itertools

    import aiohttp

    from bench.crash import Process

    from .fakes.telegram_api import Person

    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out is for PostgreSQL (SQLite is one writer on one machine)")
    server = await FakeTelegram().start()
    procs = _two_runs(db_url, server, tmp_path, TELEGRAM_WEBHOOK_URL="https://bot.example.org/tg/hook",
                      TELEGRAM_WEBHOOK_SECRET="s3cret")

    async def holder() -> str | None:
        return await _holder(sessionmaker)

    ids = itertools.count(5000)
    people = [Person(630_000 + i, f"居民{i}") for i in range(20)]
    try:
        async with aiohttp.ClientSession() as http:
            async def post(proc: Process, update: dict) -> int:
                url = f"http://127.0.0.1:{proc.env['HTTP_PORT']}/tg/hook"
                async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret"}) as r:
                    return r.status

            async def both_up() -> bool:
                if await holder() is None:
                    return False
                try:
                    return all([await post(p, {"update_id": next(ids)}) == 200 for p in procs])
                except aiohttp.ClientError:
                    return False

            await until(both_up, 90)
            host = await holder()
            other = next(p for p in procs if not host.endswith(f":{p.proc.pid}"))
            for n, person in enumerate(people):  # alternately to each process, as a balancer would
                update = {"update_id": next(ids), **server.message_update(person, text="/start")}
                assert await post(procs[n % 2], update) == 200
            assert await post(other, update) == 200  # Telegram sending one again: no second answer
            await until(lambda: all(server.sent_to(p.id) for p in people), 30)
            await asyncio.sleep(1.5)  # a second answer, were there one, would be out by now
            assert all(len(server.sent_to(p.id)) == 1 for p in people)
    finally:
        await _stop_all(procs)
        await server.stop()


def _two_runs(db_url: str, server: FakeTelegram, tmp_path, **env: str) -> list:
    """Two `gridbot run` of one bot on one database, each with its own log directory."""
    import os

    from bench.crash import Process

    procs = [Process(db_url, server, "ptb", str(tmp_path)) for _ in range(2)]
    for i, p in enumerate(procs):
        p.env.update(env)
        p.log_dir = str(tmp_path / f"p{i}")
        os.makedirs(p.log_dir)
        p.start()
    return procs


async def _stop_all(procs: list) -> None:
    import signal

    for p in procs:
        if p.proc is not None and p.proc.poll() is None:
            p.signal(signal.SIGTERM)
    for p in procs:
        if p.proc is not None:
            await p.wait()


async def _holder(sessionmaker) -> str | None:
    """The host:pid holding the inbox lease."""
    from workflows.models import Lease

    async with sessionmaker() as s:
        row = (await s.execute(select(Lease))).scalar_one_or_none()
        return row.host if row is not None else None
