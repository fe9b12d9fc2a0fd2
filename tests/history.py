"""A generated history for a city: tree, workers, cases with their events, check-ins and missed
patrols — bulk inserted (not through the chat loop), for tests/test_rollup.py and bench.city.

Rows are made in Python from a seeded random generator; PostgreSQL takes them by COPY, SQLite by
executemany. Ids are given explicitly (sequences are moved past them afterwards), so the node
paths are known while generating.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

SH = ZoneInfo("Asia/Shanghai")
LEVELS = ("city", "district", "street", "community", "grid")
CHUNK = 20_000


@dataclass
class Shape:
    fanout: tuple[int, int, int, int] = (10, 10, 10, 10)  # districts, streets/district, communities/street, grids/…
    cases: int = 1_000_000
    days: int = 365
    events_per_case: float = 7.7  # on average, cards included
    checkin_share: float = 0.74  # of grid-days with the patrol done (2.7 M for 10,000 grids a year)
    missed_share: float = 0.05  # of grid-days with a missed patrol mark
    workers: int = 1  # per grid, each with an account and every node a bound group (channel "test")
    boundaries: bool = False  # grids as boxes on a lattice, for the grid lookup
    seed: int = 15

    @property
    def grids(self) -> int:
        a, b, c, d = self.fanout
        return a * b * c * d


@dataclass
class Built:
    nodes: dict[str, list[int]] = field(default_factory=dict)  # level -> ids
    counts: dict[str, int] = field(default_factory=dict)


async def _copy(conn: AsyncConnection, table: str, columns: list[str], rows: Iterator[tuple]) -> int:
    n = 0
    batch: list[tuple] = []
    pg = conn.dialect.name == "postgresql"
    raw = (await conn.get_raw_connection()).driver_connection if pg else None

    async def flush() -> None:
        if not batch:
            return
        if pg:
            await raw.copy_records_to_table(table, records=batch, columns=columns)
        else:
            marks = ", ".join(f":{c}" for c in columns)
            await conn.execute(text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"),
                               [dict(zip(columns, r, strict=True)) for r in batch])
        batch.clear()

    for r in rows:
        batch.append(r)
        n += 1
        if len(batch) >= CHUNK:
            await flush()
    await flush()
    return n


def _ts(conn: AsyncConnection, at: datetime):
    """Timestamps as each driver stores them: aware for asyncpg, naive UTC text for SQLite."""
    if conn.dialect.name == "postgresql":
        return at
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def build(conn: AsyncConnection, shape: Shape, now: datetime) -> Built:
    """Load the city into an empty migrated database; the history ends at `now`."""
    rnd = random.Random(shape.seed)
    out = Built()
    ts = lambda at: _ts(conn, at)  # noqa: E731

    # the tree, level by level, with its materialized paths
    nodes: list[tuple] = []
    next_id = 1
    level_rows: list[tuple[int, str]] = [(next_id, "/1/")]
    nodes.append((1, "CITY", "city", "city", None, "/1/", "CT"))
    out.nodes["city"] = [1]
    next_id = 2
    for depth, level in enumerate(LEVELS[1:]):
        fan = shape.fanout[depth]
        below = []
        for parent_id, parent_path in level_rows:
            for k in range(fan):
                nid = next_id
                next_id += 1
                code = f"{level[0].upper()}{nid}"
                path = f"{parent_path}{nid}/"
                prefix = f"S{nid}" if level == "street" else None
                nodes.append((nid, code, f"{level} {k + 1}", level, parent_id, path, prefix))
                below.append((nid, path))
        out.nodes[level] = [nid for nid, _ in below]
        level_rows = below
    grids = out.nodes["grid"]
    if shape.boundaries:
        side = max(1, int(len(grids) ** 0.5 + 0.999))
        box = {g: _box(i % side, i // side) for i, g in enumerate(grids)}
        nodes = [(*n, box.get(n[0])) for n in nodes]
    else:
        nodes = [(*n, None) for n in nodes]
    out.counts["nodes"] = await _copy(conn, "node", ["id", "code", "name", "level", "parent_id", "path",
                                                     "case_prefix", "boundary"], iter(nodes))
    await conn.execute(text("INSERT INTO category (id, code, name, time_limit_hours, split, urgency, sort) "
                            "VALUES (1, 'MUNI', '市政设施', 72, 'public', 'normal', 0)"))
    k = shape.workers
    people = [(i + 1, f"W{i + 1}", f"网格员{i + 1}", ts(now)) for i in range(len(grids) * k)]
    await _copy(conn, "person", ["id", "code", "name", "created_at"], iter(people))
    await _copy(conn, "assignment", ["id", "person_id", "node_id", "role"],
                iter((i + 1, i + 1, grids[i // k], "worker") for i in range(len(grids) * k)))
    await _copy(conn, "account", ["id", "channel", "external_id", "chat_id", "person_id", "created_at"],
                iter((i + 1, "test", f"W{i + 1}", f"p:W{i + 1}", i + 1, ts(now)) for i in range(len(grids) * k)))
    await _copy(conn, "group_binding", ["id", "node_id", "channel", "chat_id", "status", "bound_at"],
                iter((n[0], n[0], "test", f"g:{n[1]}", "active", ts(now)) for n in nodes))

    first = now - timedelta(days=shape.days)
    span = (now - first).total_seconds()
    case_rows: list[tuple] = []
    deadline_rows: list[tuple] = []  # (case id, stage): the card each registered case holds
    event_rows: list[tuple] = []
    eid = 0
    filler = max(0.0, shape.events_per_case - 5.2)  # besides report, register, dispatch, resolve, close

    def event(case_id: int, at: datetime, action: str) -> None:
        nonlocal eid
        eid += 1
        event_rows.append((eid, case_id, ts(at), action, "[]", "{}"))

    async def flush_cases() -> None:
        await _copy(conn, "case_file", CASE_COLUMNS, iter(case_rows))
        await _copy(conn, "case_deadline", ["case_id", "stage"], iter(deadline_rows))
        await _copy(conn, "case_event", ["id", "case_id", "at", "action", "attachments", "data"], iter(event_rows))
        out.counts["events"] = out.counts.get("events", 0) + len(event_rows)
        case_rows.clear()
        deadline_rows.clear()
        event_rows.clear()

    for cid in range(1, shape.cases + 1):
        g = grids[rnd.randrange(len(grids))]
        created = first + timedelta(seconds=rnd.random() * span)
        registered = deadline = closed = None
        status, rework, rating = "reported", 0, None
        event(cid, created, "report")
        if rnd.random() < 0.92:
            registered = min(now - timedelta(seconds=1), created + timedelta(hours=rnd.random() * 4))
            deadline = registered + timedelta(hours=72)
            status = "in_progress"
            event(cid, registered, "register")
            event(cid, registered, "dispatch")
            done = registered + timedelta(hours=rnd.expovariate(1 / 40))
            if done < now and rnd.random() < 0.95:
                closed = done
                status = "closed"
                rework = 1 if rnd.random() < 0.08 else 0
                rating = rnd.choice(["satisfied", "satisfied", "basic", "unsatisfied", None])
                event(cid, closed - timedelta(hours=1), "resolve")
                event(cid, closed, "close")
            end = closed or now
            stage = 0
            if end > deadline:
                event(cid, deadline, "yellow_card")
                stage = 3
                if end > deadline + timedelta(hours=24):
                    event(cid, deadline + timedelta(hours=24), "red_card")
                    stage = 4
            deadline_rows.append((cid, stage))
        elif rnd.random() < 0.5:
            status = "declined"
        more = filler
        while more > 0 and (more >= 1 or rnd.random() < more):
            event(cid, created + timedelta(minutes=rnd.random() * 600), "note")
            more -= 1
        case_rows.append((cid, f"S{g}-{cid}", g, g, 1, "generated", status, "normal", "resident", False, "[]",
                          ts(created), ts(registered) if registered else None, ts(deadline) if deadline else None,
                          ts(closed) if closed else None, rework, 0, rating, "[]", 1))
        if len(case_rows) >= CHUNK:
            await flush_cases()
    await flush_cases()
    out.counts["cases"] = shape.cases

    def checkins() -> Iterator[tuple]:
        n = 0
        for i, g in enumerate(grids):
            for d in range(shape.days):
                day = (first + timedelta(days=d)).astimezone(SH).date()
                if rnd.random() < shape.checkin_share:
                    n += 1
                    at = datetime.combine(day, datetime.min.time(), tzinfo=SH) + timedelta(
                        hours=9, minutes=rnd.randrange(50))
                    if at < now:
                        yield (n, i * k + 1, i * k + 1, g, day.isoformat(), "09:00", ts(at), "[]", "[]", "[]")

    out.counts["checkins"] = await _copy(conn, "patrol_checkin", ["id", "person_id", "for_person_id", "node_id",
                                                                  "day", "slot", "at", "answers", "photos",
                                                                  "case_ids"], checkins())

    def missed() -> Iterator[tuple]:
        n = 0
        for i, g in enumerate(grids):
            for d in range(shape.days):
                if rnd.random() < shape.missed_share:
                    day = (first + timedelta(days=d)).astimezone(SH).date()
                    at = datetime.combine(day, datetime.min.time(), tzinfo=SH) + timedelta(hours=15, minutes=1)
                    if at < now:
                        n += 1
                        yield (n, "patrol_missed_60", i * k + 1, f"{day.isoformat()} 14:00", g, i * k + 1, ts(at))

    out.counts["missed"] = await _copy(conn, "routine_mark", ["id", "kind", "subject_id", "slot", "node_id",
                                                              "person_id", "at"], missed())
    if conn.dialect.name == "postgresql":
        for table in ("node", "person", "assignment", "account", "group_binding", "category", "case_file", "case_event", "patrol_checkin",
                      "routine_mark"):
            await conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                    f"(SELECT coalesce(max(id), 1) FROM {table}))"))
        await conn.execute(text("ANALYZE"))
    return out


def _box(x: int, y: int) -> str:
    """A 0.01° square grid cell south-west of Zhoushan's centre, as GeoJSON text."""
    lon, lat = 121.0 + x * 0.01, 29.5 + y * 0.01
    ring = [[lon, lat], [lon + 0.01, lat], [lon + 0.01, lat + 0.01], [lon, lat + 0.01], [lon, lat]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


CASE_COLUMNS = ["id", "number", "grid_id", "level_node_id", "category_id", "description", "status", "urgency",
                "source", "anonymous", "attachments", "created_at", "registered_at", "deadline_at", "closed_at",
                "rework_count", "reopen_count", "rating", "card_nodes", "version"]
