"""The web console's page times for a district with 100,000 cases (not a test):
`python -m bench.console [--cases 100000] [--sqlite] [--repeat 5]`.

Builds one district — 10 streets → 100 communities → 1,000 grids — with the generated history
of tests/history.py (bulk inserts; ~7.7 events a case) on a throwaway PostgreSQL (or SQLite with
--sqlite), signs a district centre staff member in, and times real HTTP requests to the console
on the one web server: the case list (first page, a deep page, filtered by state/overdue, by
text), the Excel export of a filtered list, one case's page, the map's page and GeoJSON, a grid's card,
the dashboard and the tree/people page (every case given a point, every grid a box). Prints the median and the worst
of --repeat runs of each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta

import aiohttp
from sqlalchemy import func, select, text

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.sweeps import bench_database  # noqa: E402
from bot.console import Console  # noqa: E402
from bot.db import make_engine, make_sessionmaker, upgrade  # noqa: E402
from bot.web import WebServer  # noqa: E402
from handlers.office import Office  # noqa: E402
from tests.history import SH, Shape, build  # noqa: E402
from workflows import console_access  # noqa: E402
from workflows.clock import FixedClock  # noqa: E402
from workflows.models import Assignment, Case, Person  # noqa: E402

NOW = datetime(2026, 11, 27, 17, 0, tzinfo=SH)


async def load(engine, cases: int) -> int:
    """The district and its history; returns the id of a district centre staff member."""
    shape = Shape(fanout=(1, 10, 10, 10), cases=cases, days=365, workers=1, boundaries=True)
    t = time.perf_counter()
    async with engine.begin() as c:
        await build(c, shape, NOW)
    sm = make_sessionmaker(engine)
    async with sm() as s, s.begin():
        district = (await s.execute(text("SELECT id FROM node WHERE level = 'district'"))).scalar_one()
        staff = Person(code="SFQ-ZX", name="区指挥中心", created_at=NOW)
        s.add(staff)
        await s.flush()
        s.add(Assignment(person_id=staff.id, node_id=district, role="centre_staff"))
        n = (await s.execute(select(func.count()).select_from(Case))).scalar_one()
        # every case located (somewhere in the lattice of grid boxes), for the map's points
        await s.execute(text("UPDATE case_file SET latitude = 29.5 + (id % 317) * 0.001, "
                             "longitude = 121.0 + (id % 313) * 0.001"))
    if engine.dialect.name == "postgresql":
        async with engine.connect() as c:
            await c.execution_options(isolation_level="AUTOCOMMIT")
            await c.execute(text("VACUUM ANALYZE"))
    print(f"  {n:,} cases in 1,000 grids loaded in {time.perf_counter() - t:.0f} s", flush=True)
    return staff.id


async def measure(sm, staff_id: int, repeat: int) -> None:
    clock = FixedClock(NOW)
    office = Office(sm, clock=clock, channels=frozenset({"test"}))
    server = WebServer("127.0.0.1", 0, sm, clock)
    console = Console(office, url="http://127.0.0.1")
    console.routes(server)
    await server.start()
    console.set_url(server.base_url)
    async with sm() as s, s.begin():
        ctx = office.ctx(s)
        token = await console_access.issue_link_token(ctx, staff_id, timedelta(minutes=10))
        raw, _sess = await console_access.sign_in(ctx, token, "127.0.0.1", 12)
        case_id = (await s.execute(select(Case.id).order_by(Case.id.desc()).limit(1))).scalar_one()
    pages = [
        ("case list, first page (all cases, newest first)", "/console/cases"),
        ("case list, page 1,000 (offset 49,950)", "/console/cases?page=1000"),
        ("case list, open and overdue", "/console/cases?status=open&overdue=1"),
        ("case list, sorted by deadline", "/console/cases?sort=deadline&dir=asc"),
        ("case list, text search", "/console/cases?q=generated-none"),
        ("case list, one street", None),
        ("one case's page", f"/console/cases/{case_id}"),
        ("Excel export, open cases", "/console/cases.xlsx?status=open"),
        ("map page", "/console/map"),
        ("map: 1,000 grid boundaries (GeoJSON)", "/console/map/grids.geojson"),
        ("map: open case points (GeoJSON, newest 5,000)", "/console/map/cases.geojson"),
        ("map: overdue points of the last 30 days", "/console/map/cases.geojson?overdue=1&days=30"),
        ("map: a grid's card and figures", None),
        ("dashboard of the district", "/console/dashboard"),
        ("dashboard figures block (the 5 s poll)", "/console/dashboard/figures"),
        ("tree and people, the whole district", "/console/people"),
    ]
    async with sm() as s:
        street = (await s.execute(text("SELECT id FROM node WHERE level = 'street' ORDER BY id LIMIT 1"))).scalar_one()
        grid = (await s.execute(text("SELECT id FROM node WHERE level = 'grid' ORDER BY id LIMIT 1"))).scalar_one()
    pages[5] = (pages[5][0], f"/console/cases?node={street}")
    pages[12] = (pages[12][0], f"/console/map/grids/{grid}")
    async with aiohttp.ClientSession(server.base_url, cookies={"gridbot_console": raw}) as http:
        for what, path in pages:
            times = []
            size = 0
            for _ in range(repeat):
                t = time.perf_counter()
                async with http.get(path) as r:
                    body = await r.read()
                    assert r.status == 200, (path, r.status, body[:300])
                times.append(time.perf_counter() - t)
                size = len(body)
            print(f"  {what}: median {statistics.median(times) * 1000:.0f} ms, worst {max(times) * 1000:.0f} ms"
                  f" ({size / 1024:.0f} kB)", flush=True)
    await server.stop()


async def main(args) -> None:
    if args.sqlite:
        with tempfile.TemporaryDirectory() as d:
            url = f"sqlite+aiosqlite:///{d}/bench.db"
            upgrade(url)
            engine = make_engine(url)
            print("SQLite")
            staff = await load(engine, args.cases)
            await measure(make_sessionmaker(engine), staff, args.repeat)
            await engine.dispose()
        return
    async with bench_database(keep=args.keep) as (engine, sm):
        staff = await load(engine, args.cases)
        await measure(sm, staff, args.repeat)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=100_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--sqlite", action="store_true")
    p.add_argument("--keep", action="store_true", help="leave the PostgreSQL server running (its URL is printed)")
    asyncio.run(main(p.parse_args()))
