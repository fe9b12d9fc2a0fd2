"""Indicators from a rollup per grid and day, kept in the same transaction as the events.

Every case remembers what its own row contributes to the rollup (``case_contribution``: a map
"field|grid|day" → count); its yellow and red cards are its card events, counted on the grid the
remembered map names. Each time an event is appended the case's contribution (row and cards) is
computed again and only the difference is added to ``stats_day`` — so reopening, merging,
moving a case to another grid or escalating it all leave the rollup equal to what the raw rows
say. Patrol check-ins and missed patrols (the
60-minute mark) add to their grid's day when they are recorded. ``rebuild`` recomputes
everything from the raw rows (``gridbot stats rebuild``); ``routines.stats.raw_figures`` is
the raw reference the tests compare against.

Days are calendar days in STATS_ZONE. ``figures`` — the one function /stats, the reports, the
ranking and the ledgers call — sums whole days from stats_day and counts the partial days at
either end of a window (e.g. "this week so far") from the raw rows, through time indexes, so
a call costs what it shows. A node's subtree is found through the materialized ``node.path``.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    Select,
    bindparam,
    delete,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from .context import core_rows
from .models import Base, Case, CaseEvent, CaseStatus, Node
from .tree import GRID_LEVELS, path_of

STATS_ZONE = ZoneInfo("Asia/Shanghai")
CARD_FIELDS = {"yellow_card": "yellow", "red_card": "red"}
CASE_FIELDS = ("reported", "registered", "registered_closed", "closed", "closed_on_time", "reworked", "rated",
               "satisfied", "yellow", "red")
FIELDS = (*CASE_FIELDS, "patrols_done", "patrols_missed")
GOOD = {"satisfied", "basic"}
MISSED_KIND = "patrol_missed_60"  # a worker-slot still without a check-in an hour on
BATCH = 5000


class StatsDay(Base):
    """One grid's figures on one day (in STATS_ZONE)."""

    __tablename__ = "stats_day"
    # a day range over many grids; on PostgreSQL the figures ride in the index (migration 0032), so a
    # city's week is an index-only scan, not a heap page per row
    __table_args__ = (Index("ix_stats_day_day", "day", "grid_id", postgresql_include=list(FIELDS)),)
    grid_id: Mapped[int] = mapped_column(ForeignKey("node.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reported: Mapped[int] = mapped_column(Integer, default=0)
    registered: Mapped[int] = mapped_column(Integer, default=0)
    registered_closed: Mapped[int] = mapped_column(Integer, default=0)
    closed: Mapped[int] = mapped_column(Integer, default=0)
    closed_on_time: Mapped[int] = mapped_column(Integer, default=0)
    reworked: Mapped[int] = mapped_column(Integer, default=0)
    rated: Mapped[int] = mapped_column(Integer, default=0)
    satisfied: Mapped[int] = mapped_column(Integer, default=0)
    yellow: Mapped[int] = mapped_column(Integer, default=0)
    red: Mapped[int] = mapped_column(Integer, default=0)
    patrols_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    patrols_missed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class CaseContribution(Base):
    """What one case adds to stats_day now, so a change applies only its difference."""

    __tablename__ = "case_contribution"
    case_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                         ForeignKey("case_file.id"), primary_key=True)
    contrib: Mapped[dict] = mapped_column(JSON, default=dict)


def local_day(at: datetime) -> date:
    return at.astimezone(STATS_ZONE).date()


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=STATS_ZONE)


def contribution(case: Any, card_events: list[tuple[str, datetime]]) -> Counter[str]:
    """The case's figures, keyed "field|grid|day" — the same definitions as routines.stats."""
    out: Counter[str] = Counter()
    g = case.grid_id

    def add(field: str, at: datetime) -> None:
        out[f"{field}|{g}|{local_day(at).isoformat()}"] += 1

    add("reported", case.created_at)
    if case.registered_at is not None:
        add("registered", case.registered_at)
        if case.status == CaseStatus.closed:
            add("registered_closed", case.registered_at)
    if case.status == CaseStatus.closed and case.closed_at is not None:
        add("closed", case.closed_at)
        if case.deadline_at is not None and case.closed_at <= case.deadline_at:
            add("closed_on_time", case.closed_at)
        if case.rework_count:
            add("reworked", case.closed_at)
        if case.rating is not None:
            add("rated", case.closed_at)
        if case.rating in GOOD:
            add("satisfied", case.closed_at)
    out.update(card_counts(g, card_events))
    return out


def card_counts(grid_id: int, card_events: list[tuple[str, datetime]]) -> Counter[str]:
    """A case's yellow and red cards, on its grid and each card's day."""
    return Counter(f"{CARD_FIELDS[action]}|{grid_id}|{local_day(at).isoformat()}" for action, at in card_events)


def _grid_of(remembered: dict) -> int | None:
    """The grid a remembered contribution was counted on (every key names it)."""
    return int(next(iter(remembered)).split("|")[1]) if remembered else None


def _insert(session: AsyncSession):
    return postgresql.insert if session.bind.dialect.name == "postgresql" else sqlite.insert


async def add_counts(session: AsyncSession, counts: dict[tuple[int, date], dict[str, int]]) -> None:
    """Add to stats_day rows (created when missing): one upsert statement run for many rows."""
    rows = [{"grid_id": g, "day": d, **{f: changes.get(f, 0) for f in FIELDS}}
            for (g, d), changes in counts.items() if any(changes.values())]
    if not rows:
        return
    table = StatsDay.__table__  # Core, not the ORM's bulk path: a tenth of the Python time a row
    stmt = _insert(session)(table)
    stmt = stmt.on_conflict_do_update(index_elements=["grid_id", "day"],
                                      set_={f: table.c[f] + stmt.excluded[f] for f in FIELDS})
    await session.execute(stmt, rows)


async def apply_cases(session: AsyncSession, case_ids: list[int]) -> None:
    """Bring the rollup up to date for these cases (call after their events are appended)."""
    if not case_ids:
        return
    await session.flush()
    for i in range(0, len(case_ids), BATCH):
        await _apply_part(session, case_ids[i:i + BATCH])


async def _apply_part(session: AsyncSession, case_ids: list[int]) -> None:
    cases = {r.id: r for r in await session.execute(
        select(Case.id, Case.grid_id, Case.status, Case.created_at, Case.registered_at, Case.closed_at,
               Case.deadline_at, Case.rework_count, Case.rating).where(Case.id.in_(case_ids)))}
    cards: dict[int, list[tuple[str, datetime]]] = {i: [] for i in cases}
    for cid, action, at in await session.execute(
            select(CaseEvent.case_id, CaseEvent.action, CaseEvent.at)
            .where(CaseEvent.case_id.in_(case_ids), CaseEvent.action.in_(list(CARD_FIELDS)))):
        cards[cid].append((action, at))
    olds = {cid: c for cid, c in await session.execute(
        select(CaseContribution.case_id, CaseContribution.contrib).where(CaseContribution.case_id.in_(case_ids)))}
    delta: Counter[str] = Counter()
    new_rows, changed = [], []
    for cid, case in cases.items():
        # remembered: the case's own figures; its cards are its card events, on the grid the
        # remembered figures name (so a move takes them along) — the deadline sweep appends cards
        # without rewriting 200,000 remembered maps (add_cards)
        own = dict(contribution(case, []))
        new = contribution(case, cards[cid])
        old = olds.get(cid)
        if old is None:
            new_rows.append({"case_id": cid, "contrib": own})
            delta.update(new)
            continue
        was = Counter(old) + card_counts(_grid_of(old) or case.grid_id, cards[cid])
        if was != new:
            delta.update(new)
            delta.subtract(was)
        if old != own:
            changed.append({"b_case_id": cid, "b_contrib": own})
    table = CaseContribution.__table__
    if new_rows:
        await session.execute(table.insert(), new_rows)
    if changed:
        await session.execute(table.update().where(table.c.case_id == bindparam("b_case_id"))
                              .values(contrib=bindparam("b_contrib")), changed)
    counts: dict[tuple[int, date], dict[str, int]] = {}
    for key, n in delta.items():
        if n:
            field, g, d = key.split("|")
            counts.setdefault((int(g), date.fromisoformat(d)), {})[field] = n
    await add_counts(session, counts)


async def add_cards(session: AsyncSession, cards: list[tuple[int, int, str, datetime]]) -> None:
    """Cards the deadline sweep just appended — (case id, grid id, action, at) — added set-based:
    the grid's day gets +1, without recomputing the case. Remembered contributions hold no cards
    (_apply_part reads them from the events), so 200,000 cards rewrite no per-case rows."""
    if not cards:
        return
    # a sweep's cards share one time: one zone conversion per distinct time, not three per card
    day = {at: local_day(at) for at in {c[3] for c in cards}}.__getitem__
    counts: Counter[tuple[int, date, str]] = Counter((g, day(at), CARD_FIELDS[a]) for _c, g, a, at in cards)
    per: dict[tuple[int, date], dict[str, int]] = {}
    for (g, d, f), n in counts.items():
        per.setdefault((g, d), {})[f] = n
    await add_counts(session, per)
    # the cases' remembered contributions hold no cards (they are read from the events), so only a
    # case never applied needs more: find those in one anti-join
    ids = sorted({c for c, _g, _a, _at in cards})
    if session.bind.dialect.name == "postgresql":
        missing = set((await session.execute(text(
            "SELECT v.id FROM unnest(CAST(:ids AS bigint[])) AS v(id) WHERE NOT EXISTS "
            "(SELECT 1 FROM case_contribution c WHERE c.case_id = v.id)"), {"ids": ids})).scalars())
    else:
        missing = set(ids)
        for j in range(0, len(ids), 5000):
            missing -= set((await session.execute(select(CaseContribution.case_id).where(
                CaseContribution.case_id.in_(ids[j:j + 5000])))).scalars())
    if missing:  # never applied before (should not happen): remove this sweep's +1 again, then recompute
        back: Counter[tuple[int, date, str]] = Counter(
            (g, day(at), CARD_FIELDS[a]) for c, g, a, at in cards if c in missing)
        undo: dict[tuple[int, date], dict[str, int]] = {}
        for (g, d, f), n in back.items():
            undo.setdefault((g, d), {})[f] = -n
        await add_counts(session, undo)
        await apply_cases(session, sorted(missing))


async def add_patrols(session: AsyncSession, field: str, grid_times: list[tuple[int, datetime]]) -> None:
    """Count check-ins (patrols_done) or missed patrols (patrols_missed) on their grid's day."""
    counts: Counter[tuple[int, date]] = Counter((g, local_day(at)) for g, at in grid_times)
    await add_counts(session, {k: {field: n} for k, n in counts.items()})


def _day_sql(dialect: str, col: str) -> str:
    """The STATS_ZONE calendar day of a stored UTC time, as 'YYYY-MM-DD' text, in SQL."""
    if dialect == "postgresql":
        return f"CAST(CAST(({col} AT TIME ZONE 'Asia/Shanghai') AS date) AS text)"
    # SQLite stores naive UTC text; Asia/Shanghai has been UTC+8 without summer time since 1991
    return f"date({col}, '+8 hours')"


def _keys_sql(dialect: str) -> str:
    """Every (case, field, grid, day) the cases contribute — contribution()'s definitions in SQL."""
    day = lambda col: _day_sql(dialect, col)  # noqa: E731
    closed = "c.status = 'closed' AND c.closed_at IS NOT NULL"
    parts = [
        f"SELECT c.id AS case_id, 'reported' AS field, c.grid_id, {day('c.created_at')} AS day FROM case_file c",
        f"SELECT c.id, 'registered', c.grid_id, {day('c.registered_at')} FROM case_file c "
        "WHERE c.registered_at IS NOT NULL",
        f"SELECT c.id, 'registered_closed', c.grid_id, {day('c.registered_at')} FROM case_file c "
        "WHERE c.registered_at IS NOT NULL AND c.status = 'closed'",
        f"SELECT c.id, 'closed', c.grid_id, {day('c.closed_at')} FROM case_file c WHERE {closed}",
        f"SELECT c.id, 'closed_on_time', c.grid_id, {day('c.closed_at')} FROM case_file c WHERE {closed} "
        "AND c.deadline_at IS NOT NULL AND c.closed_at <= c.deadline_at",
        f"SELECT c.id, 'reworked', c.grid_id, {day('c.closed_at')} FROM case_file c WHERE {closed} "
        "AND c.rework_count > 0",
        f"SELECT c.id, 'rated', c.grid_id, {day('c.closed_at')} FROM case_file c WHERE {closed} "
        "AND c.rating IS NOT NULL",
        f"SELECT c.id, 'satisfied', c.grid_id, {day('c.closed_at')} FROM case_file c WHERE {closed} "
        f"AND c.rating IN ({', '.join(repr(g) for g in sorted(GOOD))})",
        *[f"SELECT e.case_id, '{field}', c.grid_id, {day('e.at')} FROM case_event e "
          f"JOIN case_file c ON c.id = e.case_id WHERE e.action = '{action}'" for action, field in CARD_FIELDS.items()],
    ]
    return " UNION ALL ".join(parts)


async def rebuild(session: AsyncSession) -> int:
    """Recompute the whole rollup from case rows, events, check-ins and marks, in a few set-based
    statements (the same definitions as contribution()); returns the number of cases."""
    from .routines.models import PatrolCheckin, RoutineMark

    dialect = session.bind.dialect.name
    await session.execute(delete(StatsDay))
    await session.execute(delete(CaseContribution))
    keys = _keys_sql(dialect)
    sums = ", ".join(f"SUM(CASE WHEN field = '{f}' THEN 1 ELSE 0 END)" for f in CASE_FIELDS)
    as_date = (lambda col: f"CAST({col} AS date)") if dialect == "postgresql" else (lambda col: col)
    await session.execute(text(
        f"INSERT INTO stats_day (grid_id, day, {', '.join(FIELDS)}) "
        f"SELECT grid_id, {as_date('day')}, {sums}, 0, 0 FROM ({keys}) AS k GROUP BY grid_id, day"))
    if dialect == "postgresql":
        agg = "CAST(json_object_agg(key, n) AS json)"
        key = "field || '|' || CAST(grid_id AS text) || '|' || day"
    else:
        agg = "json_group_object(key, n)"
        key = "field || '|' || grid_id || '|' || day"
    await session.execute(text(
        f"INSERT INTO case_contribution (case_id, contrib) SELECT case_id, {agg} FROM "
        f"(SELECT case_id, {key} AS key, COUNT(*) AS n FROM ({keys}) AS k "
        f"WHERE field NOT IN ({', '.join(repr(f) for f in CARD_FIELDS.values())}) "  # cards: from the events
        "GROUP BY case_id, field, grid_id, day) AS per GROUP BY case_id"))
    for field, table, where in (("patrols_done", PatrolCheckin.__tablename__, ""),
                                ("patrols_missed", RoutineMark.__tablename__,
                                 f" WHERE kind = '{MISSED_KIND}' AND node_id IS NOT NULL")):
        await session.execute(text(
            f"INSERT INTO stats_day (grid_id, day, {', '.join(FIELDS)}) "
            f"SELECT node_id, {as_date('d')}, {', '.join('0' for _ in CASE_FIELDS)}, "
            f"{'COUNT(*), 0' if field == 'patrols_done' else '0, COUNT(*)'} "
            f"FROM (SELECT node_id, {_day_sql(dialect, 'at')} AS d FROM {table}{where}) AS p GROUP BY node_id, d "
            f"ON CONFLICT (grid_id, day) DO UPDATE SET {field} = stats_day.{field} + excluded.{field}"))
    return int((await session.execute(select(func.count()).select_from(Case))).scalar_one())


# --- the subtree and the one function everyone calls -------------------------------------------

async def node_path(session: AsyncSession, node_id: int) -> str:
    return await path_of(session, node_id)


async def subtree_grids(session: AsyncSession, node_id: int | None) -> Select:
    """A query for the ids of the grids at and below a node (every grid for None)."""
    if node_id is None:
        return select(Node.id).where(Node.level.in_([str(level) for level in GRID_LEVELS]))
    return grids_below(await node_path(session, node_id))


def grids_below(prefix: str) -> Select:
    """A query for the ids of the grids at and below the node whose path is `prefix`."""
    return (select(Node.id).where(Node.level.in_([str(level) for level in GRID_LEVELS]),
                                  Node.path.like(prefix + "%")))  # ids and slashes: no wildcards


def _whole_days(start: datetime, end: datetime) -> tuple[date, date]:
    """The whole local days inside [start, end): first and one past the last."""
    first = local_day(start)
    if midnight(first) < start:
        first += timedelta(days=1)
    return first, local_day(end)


async def _figures(session: AsyncSession, grids: Select, start: datetime, end: datetime,
                   by_grid: bool, now: datetime | None = None, under: str | None = None) -> dict[int, Any]:
    """The sums behind figures/figures_by_grid/figures_by_child: the total under key 0, each
    grid's (by_grid), or each child's of the node whose path is `under` (its subtree's sum,
    grouped in the database: a city's figures by district are 10 rows, not 10,000 grids' added up
    in Python)."""
    from .routines.stats import Stats, raw_figures

    out: dict[int, Stats] = {}

    def merge(part: dict[int, Stats]) -> None:
        for g, st in part.items():  # each part's Stats are its own: the first is taken as it is
            if g in out:
                out[g] += st
            else:
                out[g] = st

    async def raw(a: datetime, b: datetime) -> dict[int, Stats]:
        part = await raw_figures(session, grids, a, b, by_grid=by_grid or under is not None)
        return part if under is None else await by_child(session, under, part)

    if now is not None and end >= now:
        # nothing is stamped after now and today's row is kept up to date: a window running to now
        # (or beyond) is today's row and the whole days before it, without any raw rows
        end = midnight(local_day(now) + timedelta(days=1))
    first, last = _whole_days(start, end)
    if first >= last:
        merge(await raw(start, end))
        return out
    sums = [func.coalesce(func.sum(getattr(StatsDay, f)), 0) for f in FIELDS]
    days = (StatsDay.day >= first, StatsDay.day < last)
    if under is not None:
        kid = _child_id(session, under).label("kid")
        # the prefix is written into the statement: with a bound LIKE pattern the planner cannot see
        # that a city's prefix matches every grid and walks stats_day grid by grid (55,000 buffers);
        # "_%": strictly below the node
        below = Node.path.like(bindparam("prefix", under + "_%", literal_execute=True))
        q = (select(kid, *sums).select_from(StatsDay).join(Node, Node.id == StatsDay.grid_id)
             .where(below, *days).group_by(kid))
    elif by_grid:
        q = select(StatsDay.grid_id, *sums).where(StatsDay.grid_id.in_(grids), *days).group_by(StatsDay.grid_id)
    else:
        q = select(func.min(0), *sums).where(StatsDay.grid_id.in_(grids), *days)
    merge({int(g or 0): Stats(**{f: int(v) for f, v in zip(FIELDS, vals, strict=True)})
           for g, *vals in await core_rows(session, q)})
    if start < midnight(first):
        merge(await raw(start, midnight(first)))
    if midnight(last) < end:
        merge(await raw(midnight(last), end))
    return out


def _child_id(session: AsyncSession, prefix: str):
    """The id (as text) of the child of the node at `prefix` on a node's path below it: the
    segment after the prefix. Grouping by it is one pass over the subtree's rows (matching each
    grid against each child's path was 100,000 LIKEs for a city)."""
    rest = func.substr(Node.path, len(prefix) + 1)
    if session.bind.dialect.name == "postgresql":
        return func.split_part(rest, "/", 1)
    return func.substr(rest, 1, func.instr(rest, "/") - 1)


async def by_child(session: AsyncSession, prefix: str, per_grid: dict[int, Any]) -> dict[int, Any]:
    """Per-grid figures added up per child of the node whose path is `prefix` (the child is the
    path segment after it); grids not below the node are left out."""
    from .routines.stats import Stats

    out: dict[int, Stats] = {}
    ids = list(per_grid)
    for i in range(0, len(ids), BATCH):  # within SQLite's bound-parameter limit
        for gid, path in await session.execute(select(Node.id, Node.path).where(Node.id.in_(ids[i:i + BATCH]))):
            if path and path.startswith(prefix) and (rest := path[len(prefix):]):
                kid = int(rest.split("/", 1)[0])
                out.setdefault(kid, Stats())
                out[kid] += per_grid[gid]
    return out


async def figures(session: AsyncSession, node: Node, start: datetime, end: datetime, now: datetime | None = None):
    """A node's indicators over [start, end): the sums over the grids at and below it.

    The function /stats, the weekly report, the monthly ranking, ledgers and the console call.
    Pass the clock's `now` when the window may run up to it ("so far"). Returns routines.stats.Stats."""
    from .routines.stats import Stats

    total = (await _figures(session, await subtree_grids(session, node.id), start, end, False, now)).get(0)
    return total or Stats()


async def figures_by_grid(session: AsyncSession, node: Node | None, start: datetime, end: datetime,
                          now: datetime | None = None):
    """Each grid's indicators over [start, end), for the grids at and below node (all for None).

    Grids with nothing to count are absent: use ``.get(grid_id) or Stats()``."""
    grids = await subtree_grids(session, node.id if node else None)
    return await _figures(session, grids, start, end, True, now)


async def figures_by_child(session: AsyncSession, node: Node, start: datetime, end: datetime,
                           now: datetime | None = None):
    """Each child of the node with its subtree's indicators over [start, end) (a grid that is a
    child counts itself): what a city's /stats ranks by district and the console by child.

    Children with nothing to count are absent: use ``.get(child_id) or Stats()``."""
    prefix = await node_path(session, node.id)  # also fills the paths of a bulk-loaded tree
    return await _figures(session, grids_below(prefix), start, end, False, now, under=prefix)


indicators = figures  # the name the first rollup commit gave it


async def figures_by(session: AsyncSession, node: Node | None, start: datetime, end: datetime, by: str,
                     now: datetime | None = None):
    """The same indicators grouped by grid, by the cases' assignee ("assignee") or team ("team"),
    for the cases in the grids at and below node. stats_day is per grid and day only: the
    assignee and team groupings are counted from the raw rows by the reference itself
    (routines.stats.raw_figures(by=...)), so the definitions are one piece of code."""
    from .routines.stats import raw_figures

    if by == "grid":
        return await figures_by_grid(session, node, start, end, now=now)
    grids = await subtree_grids(session, node.id if node else None)
    return await raw_figures(session, grids, start, end, by=by)


async def figures_by_day(session: AsyncSession, node: Node, first: date, last: date):
    """A node's indicators for each local day in [first, last] — up to today — in one query.

    The same sums `figures` makes for whole days: stats_day holds every day exactly, today's row
    included (kept up to date with the events), so a day's figures are its rows summed over the
    subtree. Days with nothing to count map to an empty Stats. For the console's trends."""
    from .routines.stats import Stats

    grids = await subtree_grids(session, node.id)
    sums = [func.coalesce(func.sum(getattr(StatsDay, f)), 0) for f in FIELDS]
    rows = await session.execute(
        select(StatsDay.day, *sums).where(StatsDay.grid_id.in_(grids), StatsDay.day >= first, StatsDay.day <= last)
        .group_by(StatsDay.day))
    out = {first + timedelta(days=i): Stats() for i in range((last - first).days + 1)}
    for day, *vals in rows:
        day = day if isinstance(day, date) else date.fromisoformat(str(day))
        out[day] = Stats(**{f: int(v) for f, v in zip(FIELDS, vals, strict=True)})
    return out
