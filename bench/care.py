"""Benchmark of the care-visit sweeps (not a test): `python -m bench.care`.

Starts a throwaway PostgreSQL server, loads --grids grids with 5 workers each (bench.sweeps.load)
and --per-worker people needing care per worker, their due dates spread over two weeks, and
times one run of the morning list (care_due: every worker with a visit due today gets this week's
list, each listed person an access-log row), the run after it (nothing new), and the overdue sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.sweeps import SH, bench_database, load, timed  # noqa: E402

MORNING = datetime(2026, 11, 23, 8, 0, tzinfo=SH).astimezone(UTC)  # a Monday


async def load_register(engine, per_worker: int) -> int:
    t = time.perf_counter()
    async with engine.begin() as c:
        await c.execute(text("""INSERT INTO care_household (code, node_id, building, door)
            SELECT 'H' || a.id || '-' || k, a.node_id, k || '幢', '101' FROM assignment a
            CROSS JOIN generate_series(1, :k) k WHERE a.role = 'worker'"""), {"k": per_worker})
        await c.execute(text("""INSERT INTO care_person (code, household_id, name, care_type, frequency_days,
                worker_id, next_due, active)
            SELECT h.code || '-1', h.id, '关爱对象' || h.id, '独居老人', 7, a.person_id,
                   DATE '2026-11-16' + (h.id % 21)::int, true
            FROM care_household h JOIN assignment a ON a.id = split_part(substr(h.code, 2), '-', 1)::bigint"""))
        n = (await c.execute(text("SELECT count(*) FROM care_person"))).scalar_one()
    async with engine.connect() as c:
        await c.execute(text("COMMIT"))
        await c.execute(text("VACUUM ANALYZE care_person"))
        await c.execute(text("VACUUM ANALYZE care_household"))
    print(f"  {n:,} people needing care loaded in {time.perf_counter() - t:.1f} s")
    return n


async def main(args) -> None:
    async with bench_database() as (engine, sm):
        await load(engine, args.grids, 5, 0, 0)
        n = await load_register(engine, args.per_worker)
        secs, counts = await timed(sm, "care_due", MORNING)
        print(f"care_due: {n:,} people, {args.grids * 5:,} workers: {secs:.2f} s  {counts}")
        secs, counts = await timed(sm, "care_due", MORNING + timedelta(minutes=5))
        print(f"care_due again (nothing new): {secs:.2f} s  {counts}")
        secs, counts = await timed(sm, "care_overdue", MORNING)
        print(f"care_overdue: {secs:.2f} s  {counts}")
        secs, counts = await timed(sm, "care_overdue", MORNING + timedelta(minutes=5))
        print(f"care_overdue again (nothing new): {secs:.2f} s  {counts}")
        async with engine.connect() as c:
            rows = (await c.execute(text("SELECT count(*) FROM care_access"))).scalar_one()
        print(f"access-log rows written: {rows:,}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--grids", type=int, default=2_000)
    p.add_argument("--per-worker", type=int, default=4)
    asyncio.run(main(p.parse_args()))
