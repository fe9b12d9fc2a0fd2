"""Fuzz the Telegram channel (not a test): `python -m bench.fuzz [--updates 3000] [--seed 14]
[--framework ptb|aiogram|both] [--db sqlite|postgresql] [--channel telegram|wecom]`.

`--channel wecom` fuzzes WeChat Work's self-built app callbacks and 微信客服's sync_msg pages
instead (bench/fuzz_wecom.py).

Runs the real channel (polling through the inbox) against the fake Bot API with a seeded mix of
Bot-API-shaped updates (commands, free text, buttons with forged tokens, locations, photos) and
malformed ones (a field replaced by a number, a list, a lone surrogate, NUL, a huge number; a
field removed), then reports:
- tracebacks: log records carrying an exception (each one is an event handled by accident);
- unanswered: chats that sent a well-formed private message and got nothing back, plus updates
  still pending in the inbox once everything is quiet;
- state changes: staff accounts, group bindings, nodes or assignments that changed (the fuzz
  plays residents and strangers: none of these may change).
The suite runs the same at a small size (tests/test_telegram_inbox.py).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

TEXTS = ["/start", "/report", "/help", "/cases", "/link 12345678", "/bindaccount", "/bind ABCDEFGH", "/cancel",
         "路灯坏了", "小区门口垃圾没人清理", "你好", "x" * 5000, "", " ", "/case XH-20261123-001", "🙂" * 10,
         "\u202e反向文字", "/stats", "/diary"]
ODD = [12345, -1, 2**70, 1.5, True, None, [], ["a"], {}, {"x": 1}, "\ud800", "a\x00b", "\udfff\ud800", "𝕏" * 3]


@dataclass
class Report:
    updates: int = 0
    malformed: int = 0
    tracebacks: int = 0
    unanswered_chats: int = 0
    left_pending: int = 0
    state_changes: int = 0
    unreadable_kept: int = 0
    seconds: float = 0.0
    samples: list[str] = field(default_factory=list)


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def mutate_update(rng: random.Random, update: dict) -> dict:
    """The update with one to three fields replaced by an odd value or removed (never update_id)."""
    out = copy.deepcopy(update)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(out) if p != ("update_id",)]
        if not paths:
            break
        path = rng.choice(paths)
        parent = out
        for step in path[:-1]:
            parent = parent[step]
        if rng.random() < 0.2 and isinstance(parent, dict):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(rng.choice(ODD))
    return out


def well_formed(rng: random.Random, tg, person, group: int) -> dict:
    from tests.fakes.telegram_api import FakeTelegram

    roll = rng.random()
    if roll < 0.55:
        return tg.message_update(person, text=rng.choice(TEXTS) or "…")
    if roll < 0.7:
        msg = {"message_id": 1, "date": int(time.time()), "chat": FakeTelegram.chat(person.id, person=person)}
        data = rng.choice(["", "forged", "x" * 64, "r:1:abc", "0123456789abcdef"])
        return {"callback_query": {"id": str(rng.randint(1, 10**9)), "from": person.as_user(), "message": msg,
                                   "chat_instance": "ci", "data": data}}
    if roll < 0.8:
        return tg.message_update(person, location={"latitude": rng.uniform(-90, 90),
                                                   "longitude": rng.uniform(-180, 180)})
    if roll < 0.9:
        return tg.message_update(person, photo=[{"file_id": f"f{rng.randint(1, 999)}", "file_unique_id": "u",
                                                 "width": 1, "height": 1}], caption=rng.choice(TEXTS))
    return tg.message_update(person, group=group, text=rng.choice(TEXTS) or "x")


async def fuzz(sm, tg, framework: str, n: int, seed: int, timeout: float = 120.0) -> Report:
    """Runs the channel over `sm` (a migrated, empty database) and the fake server `tg`."""
    from tests.fakes.telegram_api import Person
    from tests.test_telegram import GROUP, Grid
    from workflows.inbox_models import InboxUpdate
    from workflows.models import Account, Assignment, GroupBinding, Node
    from workflows.models import Person as DbPerson

    rng = random.Random(seed)
    report = Report()
    grid = await Grid(sm, tg, framework).build_tree()
    await grid.link_staff_and_bind()

    async def state() -> tuple:
        async with sm() as s:
            staff = (await s.execute(select(Account.channel, Account.external_id, Account.person_id)
                                     .join(DbPerson, DbPerson.id == Account.person_id)
                                     .where(DbPerson.code.is_not(None)).order_by(Account.id))).all()
            rest = [(await s.execute(select(func.count()).select_from(m))).scalar_one()
                    for m in (Node, Assignment)]
            bindings = (await s.execute(select(GroupBinding.chat_id, GroupBinding.node_id,
                                               GroupBinding.status))).all()
        return tuple(staff), tuple(rest), tuple(sorted(map(tuple, bindings)))

    before = await state()
    caught: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # the fake server logs a long poll our poller cancelled on stop: the fake's, not ours
            if record.exc_info and not (record.name == "aiohttp.server"
                                        and isinstance(record.exc_info[1], ConnectionResetError)):
                caught.append(record)

    handler = Catch(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    people = [Person(800_000 + i, f"居民{i}") for i in range(30)]
    private_chats: set[int] = set()
    t0 = time.perf_counter()
    try:
        await grid.start()
        for _ in range(n):
            person = rng.choice(people)
            u = well_formed(rng, tg, person, GROUP)
            if rng.random() < 0.4:
                u = mutate_update(rng, u)
                report.malformed += 1
            elif "message" in u and u["message"]["chat"]["id"] > 0:
                private_chats.add(person.id)
            last = tg.push(u)
            report.updates += 1
            if rng.random() < 0.05:
                await asyncio.sleep(0)  # let the poller take a batch now and then

        async def quiet() -> bool:
            polls = tg.calls_of("getUpdates")
            if not polls or int(polls[-1].params.get("offset") or 0) <= last:
                return False  # not everything pushed is stored and confirmed yet
            try:
                async with sm() as s:
                    pending = (await s.execute(select(func.count()).select_from(InboxUpdate)
                                               .where(InboxUpdate.status == "pending"))).scalar_one()
                return pending == 0 and await grid.quiet()
            except OperationalError:  # SQLite busy under load: look again
                return False

        deadline = time.monotonic() + timeout
        while not await quiet() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        report.seconds = time.perf_counter() - t0
    finally:
        await grid.stop()
        logging.getLogger().removeHandler(handler)
    async with sm() as s:
        report.left_pending = (await s.execute(select(func.count()).select_from(InboxUpdate)
                                               .where(InboxUpdate.status == "pending"))).scalar_one()
        report.unreadable_kept = (await s.execute(select(func.count()).select_from(InboxUpdate)
                                                  .where(InboxUpdate.status == "unreadable"))).scalar_one()
    report.unanswered_chats = len([c for c in private_chats if not tg.sent_to(c)])
    report.tracebacks = len(caught)
    report.samples = [f"{r.name}: {r.getMessage()[:200]}" for r in caught[:5]]
    after = await state()
    report.state_changes = sum(a != b for a, b in zip(before, after, strict=True))
    return report


async def _main(args) -> int:
    from bot.db import make_engine, make_sessionmaker, upgrade
    from tests.fakes.telegram_api import FakeTelegram
    from tests.pg import PostgresServer

    from .sweeps import fresh_database

    logging.basicConfig(level=logging.ERROR)
    if args.channel == "wecom":
        return await _main_wecom(args)
    frameworks = ["ptb", "aiogram"] if args.framework == "both" else [args.framework]
    pg = PostgresServer().start() if args.db == "postgresql" else None
    tmp = tempfile.mkdtemp(prefix="gridbot-fuzz-")
    bad = 0
    try:
        for i, framework in enumerate(frameworks):
            url = fresh_database(pg, tmp, f"fuzz{i}")
            await asyncio.to_thread(upgrade, url)
            engine = make_engine(url)
            tg = await FakeTelegram().start()
            try:
                r = await fuzz(make_sessionmaker(engine), tg, framework, args.updates, args.seed)
            finally:
                await tg.stop()
                await engine.dispose()
            print(f"{framework:8} {args.db:10} updates={r.updates} malformed={r.malformed} "
                  f"tracebacks={r.tracebacks} unanswered_chats={r.unanswered_chats} left_pending={r.left_pending} "
                  f"state_changes={r.state_changes} unreadable_kept={r.unreadable_kept} in {r.seconds:.1f} s")
            for line in r.samples:
                print("   ", line)
            bad += r.tracebacks + r.unanswered_chats + r.left_pending + r.state_changes
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


async def _main_wecom(args) -> int:
    from bot.db import make_engine, make_sessionmaker, upgrade
    from tests.pg import PostgresServer

    from .fuzz_wecom import fuzz_app, fuzz_kf
    from .sweeps import fresh_database

    pg = PostgresServer().start() if args.db == "postgresql" else None
    tmp = tempfile.mkdtemp(prefix="gridbot-fuzz-")
    bad = 0
    try:
        for i, run in enumerate((fuzz_app, fuzz_kf)):
            url = fresh_database(pg, tmp, f"fuzzwecom{i}")
            await asyncio.to_thread(upgrade, url)
            engine = make_engine(url)
            try:
                r = await run(make_sessionmaker(engine), args.updates, args.seed)
            finally:
                await engine.dispose()
            print(f"{args.db:10} {r.line()} (load {os.getloadavg()[0]:.1f})")
            for line in r.samples:
                print("   ", line)
            bad += r.bad()
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--updates", type=int, default=3000)
    p.add_argument("--seed", type=int, default=14)
    p.add_argument("--framework", choices=["ptb", "aiogram", "both"], default="both")
    p.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    p.add_argument("--channel", choices=["telegram", "wecom"], default="telegram")
    return asyncio.run(_main(p.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
