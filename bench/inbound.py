"""Inbound throughput (not a test): `python -m bench.inbound [--updates 2000] [--users 200]
[--db sqlite|postgresql] [--framework ptb|aiogram]`.

In one run, against the same fake Bot API (tests/fakes/telegram_api.py, served from this
process):
- the full stack: a real `gridbot run` (subprocess, long polling through the inbox). Every user
  first says /start (not measured: it registers them); then `--updates` private `/my` ("my cases",
  a command that reads the database) from `--users` users are queued at once, and the time from
  the first fetch to the last one handled (its update id in `inbound_seen`) gives updates/s;
- a bare python-telegram-bot echo bot (its own Updater, one update at a time, answering each
  with send_message) on the same queue size: updates/s until the server has every echo;
- idle latency: with nothing else queued, one `/my` at a time (20 of them), from the push to the
  server receiving gridbot's answer (fetch, handling, the outbox commit, delivery's wake-up and
  the send; the server's clock, not the bench's polling): p50 and p99;
- time inside our handling: Office.handle of the same `/my` in this process (up to 1,000), p50
  and p99.
BENCH_PYSPY=FILE attaches py-spy (from PyPI, not a dependency) to `gridbot run` and writes its raw
samples there.
Prints the ratio of the two rates (the target is ≥ 0.8) and the load average beside each figure.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import func, select  # noqa: E402

from bench.crash import Process, _until  # noqa: E402


async def _seen(sm, ids: list[str]) -> int:
    from workflows.models import InboundSeen

    async with sm() as s:
        return (await s.execute(select(func.count()).select_from(InboundSeen).where(
            InboundSeen.channel == "telegram", InboundSeen.event_id.in_(ids)))).scalar_one()


async def full_stack(sm, url: str, tg, framework: str, n: int, users: int, log_dir: str) -> dict:
    from tests.fakes.telegram_api import Person

    people = [Person(600_000 + i, f"居民{i}") for i in range(users)]
    proc = Process(url, tg, framework, log_dir)
    proc.start()
    try:
        polls = len(tg.calls_of("getUpdates"))
        await _until(lambda: len(tg.calls_of("getUpdates")) > polls, 180, "first getUpdates", proc)
        warm = [str(tg.say(p, "/start")) for p in people]
        deadline = time.monotonic() + 300

        async def warmed() -> bool:
            return await _seen(sm, warm) == len(warm)

        await _until(warmed, deadline - time.monotonic(), "the /start of every user", proc)
        fetched = len(tg.calls_of("getUpdates"))
        ids = [str(tg.say(people[i % users], "/my")) for i in range(n)]
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]

        async def done() -> bool:
            return await _seen(sm, ids) == n

        await _until(lambda: len(tg.calls_of("getUpdates")) > fetched, 30, "the burst fetched", proc)
        await _until(done, 600, "the burst handled", proc)
        rate = n / (time.perf_counter() - t0)
        # idle latency: once every answer of the burst is out (delivery paces them at 30/s), one
        # message at a time, push → the server has the answer
        chats = {str(p.id) for p in people}
        await _until(lambda: len([c for c in tg.calls_of("sendMessage") if c.chat_id in chats and c.status == 200])
                     >= users + n, 600, "the burst's answers sent", proc)
        await asyncio.sleep(1.0)
        lat = []
        for i in range(20):
            p = people[i]
            before = len(tg.sent_to(p.id))
            t = time.monotonic()
            tg.say(p, "/my")
            await _until(lambda p=p, before=before: len(tg.sent_to(p.id)) > before, 30, "an idle answer", proc)
            lat.append(tg.sent_to(p.id)[before].at - t)  # when the answer reached the server
            await asyncio.sleep(0.3)
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.signal(signal.SIGTERM)
            await proc.wait()
    lat.sort()
    return {"rate": rate, "load": load0, "p50": lat[len(lat) // 2], "p99": lat[-1]}


async def echo_bot(tg, n: int, users: int) -> dict:
    """A bare python-telegram-bot Application: its Updater, one update at a time, each echoed."""
    from telegram import Update
    from telegram.ext import ApplicationBuilder, MessageHandler, filters

    from tests.fakes.telegram_api import Person

    async def echo(update: Update, _context) -> None:
        await update.get_bot().send_message(update.effective_chat.id, update.effective_message.text or "-")

    app = ApplicationBuilder().token(tg.token).base_url(tg.base_url).concurrent_updates(False).build()
    app.add_handler(MessageHandler(filters.ALL, echo))
    people = [Person(500_000 + i, f"回声{i}") for i in range(users)]
    start_calls = len(tg.calls_of("sendMessage"))
    async with app:
        await app.start()
        await app.updater.start_polling(timeout=10)
        await asyncio.sleep(0.5)
        for i in range(n):
            tg.say(people[i % users], "/my")
        t0 = time.perf_counter()
        load0 = os.getloadavg()[0]
        while len(tg.calls_of("sendMessage")) - start_calls < n:
            await asyncio.sleep(0.02)
        rate = n / (time.perf_counter() - t0)
        await app.updater.stop()
        await app.stop()
    tg.updates.clear()  # whatever the Updater left unconfirmed is not gridbot's
    return {"rate": rate, "load": load0}


async def handling(sm, n: int, users: int) -> dict:
    """Time inside our handling: Office.handle of the same `/my` in this process, on the same
    database once `gridbot run` has stopped (identify, access, the query, the reply's outbox row,
    the commit), one at a time."""
    from handlers.events import Inbound
    from handlers.office import Office

    office = Office(sm, channels=frozenset({"telegram"}))
    took = []
    for i in range(n):
        chat = str(600_000 + i % users)
        t = time.perf_counter()
        await office.handle(Inbound(channel="telegram", chat_id=chat, user_id=chat, is_group=False,
                                    event_id=f"bench-handling-{i}", kind="message", text="/my"))
        took.append(time.perf_counter() - t)
    took.sort()
    return {"p50": took[len(took) // 2], "p99": took[int(len(took) * 0.99)], "load": os.getloadavg()[0]}


async def _main(args) -> int:
    from bot.db import make_engine, make_sessionmaker, upgrade
    from tests.fakes.telegram_api import FakeTelegram
    from tests.pg import PostgresServer

    from .sweeps import fresh_database

    pg = PostgresServer().start() if args.db == "postgresql" else None
    tmp = tempfile.mkdtemp(prefix="gridbot-inbound-")
    try:
        url = fresh_database(pg, tmp, "inbound")
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        # the bench's own progress reads: on SQLite a plain engine, whose reads do not take the
        # write lock up front as gridbot's transactions do (bot/db.py) and so do not hold
        # `gridbot run` back while it counts
        from sqlalchemy.ext.asyncio import create_async_engine

        watch = create_async_engine(url) if url.startswith("sqlite") else engine
        tg = await FakeTelegram().start()
        try:
            echo = await echo_bot(tg, args.updates, args.users)
            full = await full_stack(make_sessionmaker(watch), url, tg, args.framework, args.updates, args.users, tmp)
            inside = await handling(make_sessionmaker(engine), min(args.updates, 1000), args.users)
        finally:
            await tg.stop()
            await engine.dispose()
            await watch.dispose()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"bench.inbound {args.db} {args.framework}: {args.updates} /my from {args.users} users")
    print(f"  bare PTB echo bot       {echo['rate']:7.1f} updates/s (load {echo['load']:.1f})")
    print(f"  gridbot run             {full['rate']:7.1f} updates/s (load {full['load']:.1f})")
    print(f"  ratio                   {full['rate'] / echo['rate']:7.2f} (target >= 0.8)")
    print(f"  inside our handling     p50 {inside['p50'] * 1000:.1f} ms, p99 {inside['p99'] * 1000:.1f} ms "
          f"(target p99 < 30 ms; load {inside['load']:.1f})")
    print(f"  idle answer, end to end p50 {full['p50'] * 1000:.0f} ms, p99 (max of 20) {full['p99'] * 1000:.0f} ms "
          f"(load {os.getloadavg()[0]:.1f})")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=2000)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--framework", choices=["ptb", "aiogram"], default="ptb")
    return asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
