"""A year of a district's cases as an Excel ledger: `python -m bench.ledger [--cases 100000]`.

Builds the demo street in a fresh SQLite file, bulk-inserts N closed cases (with their
registered/dispatched/accepted/resolved/verified events) spread over a year, then writes the
事件台账 in a child process and reports its time and peak memory (ru_maxrss of that process,
so loading the data does not count), then the 考核表 of the same year (its rows per worker, team
and department are counted from the raw rows).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from workflows import importer  # noqa: E402
from workflows.models import Category, Node, Person  # noqa: E402

YEAR = date(2025, 12, 1)
STEPS = ("reported", "registered", "dispatched", "accepted", "resolved", "verified")


async def build(url: str, n: int) -> None:
    upgrade(url)
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        await importer.load_demo(s)
    async with sm() as s:
        grids = list((await s.execute(select(Node.id).where(Node.level == "grid"))).scalars())
        cat = (await s.execute(select(Category.id))).scalars().first()
        people = list((await s.execute(select(Person.id))).scalars())
    start = datetime.combine(YEAR, datetime.min.time(), ZoneInfo("Asia/Shanghai"))
    t = time.perf_counter()
    async with engine.begin() as c:
        for first in range(0, n, 10_000):
            rows, events = [], []
            for i in range(first, min(n, first + 10_000)):
                at = start + timedelta(minutes=i * 525_000 // n)  # the office's year, local days
                rows.append({"id": i + 1, "number": f"B-{i + 1:06d}", "grid": grids[i % len(grids)], "cat": cat,
                             "who": people[i % len(people)], "at": at, "dl": at + timedelta(hours=72),
                             "closed": at + timedelta(hours=24 + i % 72)})
                for k, action in enumerate(STEPS):
                    events.append({"case": i + 1, "at": at + timedelta(hours=4 * k), "actor": people[(i + k) % len(people)],
                                   "action": action})
            await c.execute(text("""INSERT INTO case_file (id, number, grid_id, level_node_id, category_id,
                description, status, urgency, source, anonymous, attachments, assignee_id, created_at, registered_at,
                dispatched_at, resolved_at, closed_at, deadline_at, rework_count, reopen_count,
                rating, card_nodes, version)
                VALUES (:id, :number, :grid, :grid, :cat, '路灯不亮了，已经三天', 'closed', 'normal', 'resident', 0, '[]',
                :who, :at, :at, :at, :closed, :closed, :dl, 0, 0, 'satisfied', '[]', 1)"""), rows)
            await c.execute(text("""INSERT INTO case_event (case_id, at, actor_id, action, attachments, data)
                VALUES (:case, :at, :actor, :action, '[]', '{}')"""), events)
    async with sm() as s, s.begin():
        from workflows import rollup

        await rollup.rebuild(s)  # the 考核表's grid rows read the rollup
    await engine.dispose()
    print(f"  {n:,} cases and {n * len(STEPS):,} events loaded in {time.perf_counter() - t:.1f} s")


async def write(url: str, out: str) -> None:
    from workflows.context import Ctx
    from workflows.i18n import T
    from workflows.ledger_xlsx import write_xlsx
    from workflows.ledgers import ledger

    engine = make_engine(url)
    t0 = time.perf_counter()
    async with make_sessionmaker(engine)() as s:
        ctx, tr = Ctx(session=s), T()
        node = (await s.execute(select(Node).where(Node.code == "SFQ"))).scalar_one()
        n = await write_xlsx(tr, await ledger(ctx, tr, "cases", node, YEAR, YEAR + timedelta(days=364)), out)
    await engine.dispose()
    took = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  事件台账: {n:,} rows in {took:.1f} s ({n / took:,.0f} rows/s), "
          f"{os.path.getsize(out) / 2**20:.1f} MiB file, peak memory {peak:.0f} MiB")
    # the 考核表 of the same year: grids from the rollup, workers/teams/departments from the raw rows
    engine = make_engine(url)
    t0 = time.perf_counter()
    async with make_sessionmaker(engine)() as s:
        ctx = Ctx(session=s)
        node = (await s.execute(select(Node).where(Node.code == "SFQ"))).scalar_one()
        rows = await write_xlsx(tr, await ledger(ctx, tr, "assessment", node, YEAR, YEAR + timedelta(days=364)),
                                out + ".assessment.xlsx")
    await engine.dispose()
    print(f"  考核表 over the same year: {rows} rows (grids, workers, teams, departments) in "
          f"{time.perf_counter() - t0:.1f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--write", metavar="DB_URL", help=argparse.SUPPRESS)  # the child process
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.write:
        asyncio.run(write(args.write, args.out))
        return
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite+aiosqlite:///{d}/bench.db"
        asyncio.run(build(url, args.cases))
        subprocess.run([sys.executable, "-m", "bench.ledger", "--write", url, "--out", f"{d}/cases.xlsx"], check=True)


if __name__ == "__main__":
    main()
