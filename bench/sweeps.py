"""Benchmarks of the two sweeps that must scale (not a test): `python -m bench.sweeps`.

Starts a throwaway PostgreSQL server (tests/pg.py), bulk-loads with INSERT … SELECT
generate_series, and times one run of:
1. the patrol-reminder sweep over 10,000 grids with 5 workers each, at 08:45 when every grid's
   09:00 patrol is due: 50,000 reminders in one sweep;
2. the deadline sweep over 1,000,000 open cases, with a realistic due fraction (1% crossing a
   checkpoint in that minute — generous: with 72 h limits and 4 checkpoints a million cases cross
   about 500 a minute) and a worst case (--worst N cases due at once, default 200,000, past their
   deadline: yellow cards, digested per group and person above DEADLINE_DIGEST_OVER; the sweep
   works in batches of 50,000 cases per transaction, repeated while full).

Options: --grids, --cases, --due-percent, --worst, --worst-stage, --keep (leave the server running).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402
from workflows import rollup  # noqa: E402
from workflows.clock import FixedClock  # noqa: E402
from workflows.routines.sweeps import run_sweep  # noqa: E402

SH = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 8, 45, tzinfo=SH).astimezone(UTC)


def psql(server: PostgresServer, sql: str) -> None:
    subprocess.run([str(server.bindir / "psql"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres",
                    "-d", "postgres", "-q", "-c", sql], check=True, stdout=subprocess.DEVNULL)



def fresh_database(pg: PostgresServer | None, tmp: str, name: str) -> str:
    """The URL of a new empty database called `name`: on the server when there is one, else a
    SQLite file in `tmp`."""
    if pg is None:
        return f"sqlite+aiosqlite:///{tmp}/{name}.db"
    psql(pg, f"CREATE DATABASE {name}")
    return pg.url(name)

@contextlib.asynccontextmanager
async def bench_database(keep: bool = False):
    """A throwaway PostgreSQL with the schema, as (engine, sessionmaker); `keep` leaves it running."""
    server = PostgresServer().start()
    try:
        psql(server, "CREATE DATABASE bench")
        url = server.url("bench")
        upgrade(url)
        engine = make_engine(url)
        print(f"PostgreSQL {server.bindir.parent.name} on {os.cpu_count()} cores")
        yield engine, make_sessionmaker(engine)
        await engine.dispose()
        if keep:
            print(f"server kept: {url}")
    finally:
        if not keep:
            server.stop()


async def load(engine, grids: int, workers: int, cases: int, due_percent: float) -> None:
    t = time.perf_counter()
    async with engine.begin() as c:
        await c.execute(text("INSERT INTO node (code, name, level) VALUES ('ST', 'street', 'street')"))
        await c.execute(text("""INSERT INTO node (code, name, level, parent_id)
            SELECT 'C' || i, 'community ' || i, 'community', (SELECT id FROM node WHERE code = 'ST')
            FROM generate_series(1, :n) i"""), {"n": max(1, grids // 100)})
        await c.execute(text("""INSERT INTO node (code, name, level, parent_id, patrol_times)
            SELECT 'G' || i, '网格 ' || i, 'grid', (SELECT id FROM node WHERE code = 'C' || ((i - 1) / 100 + 1)),
                   '["09:00", "15:00"]'::jsonb
            FROM generate_series(1, :n) i"""), {"n": grids})
        await c.execute(text("""INSERT INTO person (code, name, created_at)
            SELECT 'P' || i, '网格员' || i, now() FROM generate_series(1, :n) i"""), {"n": grids * workers})
        await c.execute(text("""INSERT INTO assignment (person_id, node_id, role)
            SELECT p.id, n.id, 'worker' FROM person p
            JOIN node n ON n.code = 'G' || ((substr(p.code, 2)::int - 1) / :w + 1)"""), {"w": workers})
        await c.execute(text("""INSERT INTO account (channel, external_id, chat_id, person_id, created_at)
            SELECT 'test', code, 'p:' || code, id, now() FROM person"""))
        await c.execute(text("""INSERT INTO group_binding (node_id, channel, chat_id, status, bound_at)
            SELECT id, 'test', 'g:' || code, 'active', now() FROM node"""))
        await c.execute(text("""INSERT INTO category (code, name, time_limit_hours, split, urgency, sort)
            VALUES ('MUNI', '市政设施', 72, 'public', 'normal', 0)"""))
    print(f"  tree, {grids * workers:,} workers, accounts, groups loaded in {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    every = max(1, round(100 / due_percent)) if due_percent else 0
    async with engine.begin() as c:
        await c.execute(text("""
            INSERT INTO case_file (number, grid_id, level_node_id, category_id, description, status, urgency,
                source, anonymous, attachments, assignee_id, created_at, registered_at, deadline_at,
                rework_count, reopen_count, card_nodes, version)
            SELECT 'B-' || i, g.first + i % :grids, g.first + i % :grids, (SELECT id FROM category LIMIT 1),
                   'bench', 'in_progress', 'normal', 'resident', false, '[]', p.first + i % :people,
                   r.reg, r.reg, r.reg + interval '72 hours', 0, 0, '[]', 1
            FROM generate_series(1, :cases) i
            CROSS JOIN (SELECT min(id) AS first FROM node WHERE level = 'grid') g
            CROSS JOIN (SELECT min(id) AS first FROM person) p
            CROSS JOIN LATERAL (SELECT CASE WHEN :every > 0 AND i % :every = 0
                                            THEN CAST(:now AS timestamptz) - interval '36 hours 30 seconds'
                                            ELSE CAST(:now AS timestamptz) - interval '1 hour' * (i % 35) END AS reg) r
        """), {"grids": grids, "people": grids * workers, "cases": cases, "every": every, "now": NOW})
        await c.execute(text("""INSERT INTO case_deadline (case_id, stage, next_check_at)
            SELECT id, 0, registered_at + interval '36 hours' FROM case_file"""))
    t2 = time.perf_counter()
    async with make_sessionmaker(engine)() as s, s.begin():
        await rollup.rebuild(s)  # every case has its rollup contribution, as cases.report makes it
    async with engine.connect() as c:
        await c.execute(text("COMMIT"))
        await c.execute(text("VACUUM ANALYZE case_file"))
        await c.execute(text("VACUUM ANALYZE case_contribution"))
    print(f"  {cases:,} open cases loaded in {time.perf_counter() - t:.1f} s (rollup {time.perf_counter() - t2:.1f} s)")


async def make_due(engine, n: int, stage: str = "yellow") -> None:
    """n cases due at once: past their deadline (yellow cards, the burst of issue 15) or at 50 %
    (reminders, one per case and assignee)."""
    if stage == "yellow":
        times = ("interval '73 hours'", "interval '-1 hour'", 2)
    else:
        times = ("interval '37 hours'", "interval '35 hours'", 0)
    async with engine.begin() as c:
        await c.execute(text(f"""UPDATE case_deadline SET next_check_at = CAST(:now AS timestamptz) - interval '1 hour',
            stage = {times[2]}
            WHERE case_id IN (SELECT case_id FROM case_deadline WHERE stage = 0 ORDER BY case_id LIMIT :n)"""),
                        {"now": NOW, "n": n})
        await c.execute(text(f"""UPDATE case_file SET registered_at = CAST(:now AS timestamptz) - {times[0]},
            deadline_at = CAST(:now AS timestamptz) + {times[1]}
            WHERE id IN (SELECT case_id FROM case_deadline WHERE next_check_at = CAST(:now AS timestamptz) - interval '1 hour')"""),
                        {"now": NOW})
    async with engine.connect() as c:
        await c.execute(text("COMMIT"))
        await c.execute(text("VACUUM ANALYZE case_file"))


async def timed(sm, name: str, at: datetime) -> tuple[float, dict]:
    t = time.perf_counter()
    result = await run_sweep(sm, name, clock=FixedClock(at), channels=frozenset({"test"}))
    return time.perf_counter() - t, result.counts


async def main(args) -> None:
    async with bench_database(args.keep) as (engine, sm):
        await load(engine, args.grids, 5, args.cases, args.due_percent)

        secs, counts = await timed(sm, "patrol_reminders", NOW)
        print(f"patrol_reminders: {args.grids:,} grids x 5 workers, all due: {secs:.2f} s  {counts}")
        secs, counts = await timed(sm, "patrol_reminders", NOW + timedelta(minutes=1))
        print(f"patrol_reminders again the next minute (nothing new): {secs:.2f} s  {counts}")

        secs, counts = await timed(sm, "deadlines", NOW)
        print(f"deadlines: {args.cases:,} open cases, {args.due_percent}% due: {secs:.2f} s  {counts}")
        secs, counts = await timed(sm, "deadlines", NOW + timedelta(seconds=30))
        print(f"deadlines again (nothing due): {secs:.3f} s  {counts}")
        if args.worst:
            await make_due(engine, args.worst, args.worst_stage)
            async with engine.connect() as c:
                before = (await c.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
            secs, counts = await timed(sm, "deadlines", NOW)
            async with engine.connect() as c:
                rows = (await c.execute(text("SELECT count(*) FROM outbox"))).scalar_one() - before
            print(f"deadlines worst case: {args.worst:,} due at once ({args.worst_stage}): {secs:.2f} s "
                  f"({args.worst / secs:,.0f} cases/s), {rows:,} outbox rows, load average "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}  {counts}")
        async with engine.connect() as c:
            n = (await c.execute(text("SELECT count(*) FROM outbox"))).scalar_one()
        print(f"outbox rows written in all: {n:,}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grids", type=int, default=10_000)
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--due-percent", type=float, default=1.0)
    p.add_argument("--worst", type=int, default=200_000)
    p.add_argument("--worst-stage", choices=("yellow", "remind"), default="yellow",
                   help="the burst: past the deadline (yellow cards) or at 50 %% (reminders)")
    p.add_argument("--keep", action="store_true")
    asyncio.run(main(p.parse_args()))
