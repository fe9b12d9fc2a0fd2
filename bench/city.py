"""The city benchmark of issue 15 (not a test): `python -m bench.city [--scale S] [--sqlite]`.

Builds a city — city → 10 districts → 100 streets → 1,000 communities → 10,000 grids, 100 cases
per grid a year over 12 months with ~7.7 events each, a patrol check-in on ~74 % of grid-days —
with bulk inserts (tests/history.py) on a throwaway PostgreSQL server (tests/pg.py), or the
1,000-grid version on SQLite (--sqlite), rebuilds the rollup, then prints each figure of the
issue's table next to its target, and the rollup-vs-raw check.

--scale S builds S × the city: fewer districts first (0.1 = one district of 1,000 grids), then
fewer streets (0.01 = 100 grids). --sqlite defaults to --scale 0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import datetime, timedelta

from sqlalchemy import String, cast, event, func, select, text, update

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bot.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from tests.history import SH, Shape, build  # noqa: E402
from tests.pg import PostgresServer  # noqa: E402
from workflows import rollup, tree  # noqa: E402
from workflows.clock import FixedClock  # noqa: E402
from workflows.context import Ctx  # noqa: E402
from workflows.i18n import T  # noqa: E402
from workflows.media_models import MediaFile  # noqa: E402
from workflows.media_store import DirectoryStore, use_store  # noqa: E402
from workflows.models import Case, CaseDeadline, Node, Outbox  # noqa: E402
from workflows.routines import reports  # noqa: E402
from workflows.routines.stats import Stats, raw_figures  # noqa: E402
from workflows.routines.sweeps import run_sweep  # noqa: E402

NOW = datetime(2026, 11, 27, 17, 0, tzinfo=SH)  # a Friday: the weekly report is due
CH = frozenset({"test"})
rows_out: list[tuple[str, str, str]] = []


def row(what: str, measured: str, target: str) -> None:
    rows_out.append((what, measured, target))
    print(f"  {what}: {measured}   (target {target})", flush=True)


def shape_for(scale: float, months: int) -> Shape:
    districts = max(1, min(10, round(10 * scale)))
    streets = 10 if scale >= 0.1 else max(1, round(100 * scale))
    grids = districts * streets * 100
    return Shape(fanout=(districts, streets, 10, 10), cases=int(grids * 100 * months / 12), days=30 * months + 5,
                 workers=5, boundaries=True)


class Statements:
    def __init__(self, engine) -> None:
        self.n = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, *_a, **_k) -> None:
        self.n += 1


def p95(samples: list[float]) -> float:
    return sorted(samples)[max(0, math.ceil(0.95 * len(samples)) - 1)]


async def timed_sweep(sm, name: str, at: datetime, stmts: Statements) -> tuple[float, dict, int]:
    before = stmts.n
    t = time.perf_counter()
    result = await run_sweep(sm, name, clock=FixedClock(at), channels=CH)
    return time.perf_counter() - t, result.counts, stmts.n - before


async def stats_p95(sm, node_id: int, runs: int, with_charts: bool) -> tuple[float, float]:
    samples = []
    t_ = T("zh_CN")
    for _ in range(runs):
        async with sm() as s:
            ctx = Ctx(session=s, clock=FixedClock(NOW), channels=CH)
            node = await s.get(Node, node_id)
            t = time.perf_counter()
            if with_charts:
                await reports.on_demand(ctx, t_, node)
            else:  # the figures /stats shows: a city or a district ranks its children
                await reports.week_so_far(ctx, node, by_child=node.level in reports.RANKS_CHILDREN)
            samples.append(time.perf_counter() - t)
    return p95(samples), statistics.median(samples)


async def check(sm, built, start: datetime, end: datetime, label: str) -> bool:
    ok = True
    async with sm() as s:
        for level in ("city", "district", "street", "grid"):
            node = await s.get(Node, built.nodes[level][0])
            t = time.perf_counter()
            fig = await rollup.figures(s, node, start, end)
            t_roll = time.perf_counter() - t
            grids = list((await s.execute(await rollup.subtree_grids(s, node.id))).scalars())
            t = time.perf_counter()
            raw = (await raw_figures(s, grids, start, end, by_grid=False)).get(0) or Stats()
            t_raw = time.perf_counter() - t
            same = asdict(fig) == asdict(raw)
            ok &= same
            print(f"  {label} {level} {node.code}: rollup {t_roll * 1000:.1f} ms, raw {t_raw * 1000:.0f} ms, "
                  f"{'equal' if same else 'DIFFERENT'} (reported {fig.reported}, closed {fig.closed}, "
                  f"yellow {fig.yellow}, patrols {fig.patrols_done})", flush=True)
            if not same:
                print(f"    rollup {asdict(fig)}\n    raw    {asdict(raw)}")
    return ok


async def run(url: str, shape: Shape, args) -> None:
    upgrade(url)
    engine = make_engine(url)
    sm = make_sessionmaker(engine)
    stmts = Statements(engine)
    t = time.perf_counter()
    async with engine.begin() as c:
        built = await build(c, shape, NOW)
    print(f"built {shape.grids:,} grids, {built.counts['cases']:,} cases, {built.counts['events']:,} events, "
          f"{built.counts['checkins']:,} check-ins, {built.counts['missed']:,} missed marks "
          f"in {time.perf_counter() - t:.0f} s", flush=True)
    t = time.perf_counter()
    async with sm() as s, s.begin():
        await rollup.rebuild(s)
    if engine.dialect.name == "postgresql":
        async with engine.connect() as c:
            await c.execute(text("COMMIT"))
            await c.execute(text("VACUUM ANALYZE"))
    row("`gridbot stats rebuild`", f"{time.perf_counter() - t:.0f} s", "-")

    print("rollup vs raw", flush=True)
    ok = await check(sm, built, datetime(2026, 10, 1, tzinfo=SH), datetime(2026, 11, 1, tzinfo=SH), "October")
    ok &= await check(sm, built, datetime(2026, 11, 23, tzinfo=SH), NOW, "this week so far")
    row("rollup equals the raw reference (city, district, street, grid; a month and a partial week)",
        "yes" if ok else "NO", "yes")

    n_grids = shape.grids
    for level, size, target in (("street", n_grids // len(built.nodes["street"]), "< 100 ms"),
                                ("district", n_grids // len(built.nodes["district"]), "< 100 ms"),
                                ("city", n_grids, "< 300 ms")):
        nid = built.nodes[level][0]
        figs, figs_mid = await stats_p95(sm, nid, args.runs, with_charts=False)
        full, full_mid = await stats_p95(sm, nid, args.runs, with_charts=True)
        ranks = ", ranking its children" if level in reports.RANKS_CHILDREN else ""
        row(f"`/stats` for a {level} ({size:,} grids{ranks}), p95", f"{figs * 1000:.0f} ms figures (median "
            f"{figs_mid * 1000:.0f}), {full * 1000:.0f} ms with the two charts (median {full_mid * 1000:.0f})",
            target)

    async with sm() as s:
        ctx = Ctx(session=s, clock=FixedClock(NOW))
        await tree.grid_index(ctx)
        rnd = random.Random(1)
        pts = [(29.5 + rnd.random() * 0.9, 121.0 + rnd.random() * 0.9) for _ in range(2000)]
        t = time.perf_counter()
        for lat, lon in pts:
            await tree.locate(ctx, lat, lon)
        row(f"finding the grid of a point, {n_grids:,} grids", f"{(time.perf_counter() - t) / len(pts) * 1000:.3f} ms "
            "(with the node load)", "< 1 ms")

    async def stored() -> tuple[int, int]:
        async with sm() as s:
            return tuple((await s.execute(select(func.count(), func.coalesce(func.sum(MediaFile.size), 0)))).one())

    files0, size0 = await stored()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    secs, counts, n = await timed_sweep(sm, "weekly_reports", NOW, stmts)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    files, size = await stored()
    async with sm() as s:
        inline = (await s.execute(select(func.coalesce(func.sum(func.length(cast(Outbox.payload, String))), 0))
                                  .where(Outbox.dedupe_key.like("weekly_report:%")))).scalar_one()
    counts = {**counts, "charts stored": files - files0, "chart KiB": round((size - size0) / 1024), "outbox payload KiB": round(inline / 1024)}
    row(f"weekly report sweep, {n_grids:,} grids", f"{secs:.1f} s, {n:,} statements, peak RSS {rss / 1024:.0f} MiB "
        f"(+{(rss - rss0) / 1024:.0f}) {counts}", "10,000 grids < 60 s, memory bounded")
    secs, counts, n = await timed_sweep(sm, "monthly_ranking", datetime(2026, 12, 1, 9, 0, tzinfo=SH), stmts)
    row(f"monthly ranking sweep, {n_grids:,} grids ({len(built.nodes['street'])} streets)",
        f"{secs:.1f} s, {n} statements {counts}", "< 10 s, statements not growing with grids")

    secs, counts, n = await timed_sweep(sm, "patrol_reminders", NOW.replace(hour=14, minute=45), stmts)
    row(f"patrol reminder sweep, {n_grids:,} grids x 5 workers all due", f"{secs:.1f} s {counts}", "< 10 s")
    await timed_sweep(sm, "patrol_missed", NOW.replace(hour=16, minute=0), stmts)
    samples = []
    for m in range(1, 6):
        secs, _c, n = await timed_sweep(sm, "patrol_missed", NOW.replace(hour=16, minute=m), stmts)
        samples.append(secs)
    row("missed-patrol sweep with nothing new", f"{statistics.median(samples) * 1000:.0f} ms median, {n} statements",
        "< 50 ms")

    # the burst: `due` registered cases (open ones first, then reopened closed ones) reach their deadline now
    async with sm() as s, s.begin():
        ids = list((await s.execute(select(Case.id).where(Case.registered_at.is_not(None), Case.status.in_(
            ["in_progress", "closed"])).order_by(Case.status.desc(), Case.id).limit(args.due))).scalars())
        for i in range(0, len(ids), 10_000):
            await s.execute(update(Case).where(Case.id.in_(ids[i:i + 10_000])).values(
                status="in_progress", closed_at=None, rating=None, deadline_at=NOW - timedelta(minutes=5)))
            await s.execute(update(CaseDeadline).where(CaseDeadline.case_id.in_(ids[i:i + 10_000])).values(
                stage=2, next_check_at=NOW - timedelta(minutes=5)))
        await rollup.apply_cases(s, ids)  # the rollup follows the changed cases
    if engine.dialect.name == "postgresql":
        # fresh statistics, as autovacuum gathers them after 200,000 changed rows: with them the
        # due query once walked case_file in grid order (24–32 s instead of 3 s; deadlines._due)
        async with engine.begin() as c:
            await c.execute(text("ANALYZE case_deadline, case_file"))
    n_due = len(ids)
    t = time.perf_counter()
    total: dict = {}
    runs = 0
    while True:  # the scheduler repeats the sweep while it is full
        secs, counts, _n = await timed_sweep(sm, "deadlines", NOW, stmts)
        runs += 1
        for k, v in counts.items():
            total[k] = total.get(k, 0) + v
        if counts.get("due", 0) < 50_000 or runs > 10:
            break
    row(f"deadline sweep, {n_due:,} due at once (yellow cards: the rollup follows)",
        f"{time.perf_counter() - t:.1f} s in {runs} runs {total}", "< 10 s for 200,000")
    ok = await check(sm, built, datetime(2026, 11, 1, tzinfo=SH), NOW + timedelta(days=1), "after the burst")
    row("rollup equals the raw reference after the deadline burst", "yes" if ok else "NO", "yes")
    await engine.dispose()


async def main(args) -> None:
    scale = args.scale if args.scale is not None else (0.1 if args.sqlite else 1.0)
    shape = shape_for(scale, args.months)
    print(f"scale {scale}: {shape.grids:,} grids, {shape.cases:,} cases over {args.months} months "
          f"on {'SQLite' if args.sqlite else 'PostgreSQL'}, {os.cpu_count()} cores", flush=True)
    with tempfile.TemporaryDirectory() as media_dir:  # the charts of /stats and the reports go to a media store
        use_store(DirectoryStore(media_dir))
        if args.sqlite:
            with tempfile.TemporaryDirectory() as d:
                await run(f"sqlite+aiosqlite:///{d}/city.db", shape, args)
        else:
            server = PostgresServer().start()
            try:
                from bench.sweeps import psql

                psql(server, "CREATE DATABASE city")
                await run(server.url("city"), shape, args)
            finally:
                server.stop()
    print("\n| what | measured | target |\n|---|---|---|")
    for what, measured, target in rows_out:
        print(f"| {what} | {measured} | {target} |")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stopped: still stop the server (finally)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, help="fraction of the 10,000-grid city (default 1; 0.1 with --sqlite)")
    p.add_argument("--months", type=int, default=12)
    p.add_argument("--sqlite", action="store_true", help="SQLite instead of a throwaway PostgreSQL")
    p.add_argument("--runs", type=int, default=20, help="calls per /stats figure")
    p.add_argument("--due", type=int, default=200_000, help="cases made due at once for the deadline sweep")
    asyncio.run(main(p.parse_args()))
