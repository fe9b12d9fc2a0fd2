"""Benchmark of `/tasks`, each person's inbox (workflows.cases.inbox), not a test: `python -m bench.inbox`.

Starts a throwaway PostgreSQL server, bulk-loads a street of 10,000 grids (100 communities), a
leader per grid, a street centre and 1,000,000 open cases (one in seven waiting for dispatch at its
grid, one in a hundred waiting for verification), plus --held cases escalated to the street, then
times the inbox of one grid leader and of the street's centre staff.

Options: --grids, --cases, --held, --keep (leave the server running).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime

from sqlalchemy import text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.sweeps import bench_database  # noqa: E402
from workflows import cases  # noqa: E402
from workflows.clock import FixedClock  # noqa: E402
from workflows.context import Ctx  # noqa: E402

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


async def load(engine, grids: int, n_cases: int, held: int) -> None:
    t = time.perf_counter()
    async with engine.begin() as c:
        await c.execute(text("INSERT INTO node (code, name, level) VALUES ('ST', 'street', 'street')"))
        await c.execute(text("""INSERT INTO node (code, name, level, parent_id)
            SELECT 'C' || i, 'community ' || i, 'community', (SELECT id FROM node WHERE code = 'ST')
            FROM generate_series(1, :n) i"""), {"n": max(1, grids // 100)})
        await c.execute(text("""INSERT INTO node (code, name, level, parent_id)
            SELECT 'G' || i, '网格 ' || i, 'grid', (SELECT id FROM node WHERE code = 'C' || ((i - 1) / 100 + 1))
            FROM generate_series(1, :n) i"""), {"n": grids})
        await c.execute(text("""INSERT INTO person (code, name, created_at)
            SELECT 'L' || i, '网格长' || i, now() FROM generate_series(1, :n) i"""), {"n": grids})
        await c.execute(text("""INSERT INTO assignment (person_id, node_id, role)
            SELECT p.id, n.id, 'leader' FROM person p JOIN node n ON n.code = 'G' || substr(p.code, 2)"""))
        await c.execute(text("INSERT INTO person (code, name, created_at) VALUES ('ST-ZX', '街道中心', now())"))
        await c.execute(text("""INSERT INTO assignment (person_id, node_id, role)
            SELECT (SELECT id FROM person WHERE code = 'ST-ZX'), id, 'centre_staff' FROM node WHERE code = 'ST'"""))
        await c.execute(text("""INSERT INTO category (code, name, time_limit_hours, split, urgency, sort)
            VALUES ('MUNI', '市政设施', 72, 'public', 'normal', 0)"""))
        await c.execute(text("""
            INSERT INTO case_file (number, grid_id, level_node_id, category_id, description, status, urgency,
                source, anonymous, attachments, created_at, registered_at, deadline_at,
                rework_count, reopen_count, card_nodes, version)
            SELECT 'B-' || i, g.first + i % :grids,
                   CASE WHEN i <= :held THEN (SELECT id FROM node WHERE code = 'ST') ELSE g.first + i % :grids END,
                   (SELECT id FROM category LIMIT 1), 'bench',
                   CASE WHEN i <= :held OR i % 7 = 0 THEN 'registered' WHEN i % 101 = 1 THEN 'resolved'
                        ELSE 'in_progress' END,
                   'normal', 'resident', false, '[]', CAST(:now AS timestamptz) - interval '1 minute' * (i % 5000),
                   CAST(:now AS timestamptz) - interval '1 minute' * (i % 5000),
                   CAST(:now AS timestamptz) + interval '72 hours' - interval '1 minute' * (i % 5000),
                   0, 0, '[]', 1
            FROM generate_series(1, :cases) i
            CROSS JOIN (SELECT min(id) AS first FROM node WHERE level = 'grid') g
        """), {"grids": grids, "cases": n_cases, "held": held, "now": NOW})
    async with engine.connect() as c:
        await c.execute(text("COMMIT"))
        await c.execute(text("VACUUM ANALYZE"))
    print(f"  {grids:,} grids, {n_cases:,} open cases ({held:,} at the street) loaded in "
          f"{time.perf_counter() - t:.1f} s")


async def timed_inbox(sm, code: str, repeat: int = 5) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeat):
        async with sm() as s:
            ctx = Ctx(session=s, clock=FixedClock(NOW), channels=frozenset({"test"}))
            pid = (await s.execute(text("SELECT id FROM person WHERE code = :c"), {"c": code})).scalar_one()
            t = time.perf_counter()
            n = len(await cases.inbox(ctx, pid))
            best = min(best, time.perf_counter() - t)
    return best, n


async def main(args) -> None:
    async with bench_database(args.keep) as (engine, sm):
        await load(engine, args.grids, args.cases, args.held)
        secs, n = await timed_inbox(sm, "L7")
        print(f"inbox of a grid leader: {n} cases waiting, {secs * 1000:.1f} ms (best of 5)")
        secs, n = await timed_inbox(sm, "ST-ZX")
        print(f"inbox of the street centre: {n:,} cases waiting, {secs * 1000:.1f} ms (best of 5)")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grids", type=int, default=10_000)
    p.add_argument("--cases", type=int, default=1_000_000)
    p.add_argument("--held", type=int, default=2_000, help="cases escalated to the street")
    p.add_argument("--keep", action="store_true")
    asyncio.run(main(p.parse_args()))
