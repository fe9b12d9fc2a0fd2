"""Indicators from a rollup per grid and day, kept in the same transaction as the case events.

Every case remembers what it contributes to the rollup (``case_contribution``: a map
"field|grid|day" → count, computed from the case row and its card events). Each time an event
is appended the case's contribution is computed again and only the difference is added to
``stats_day`` — so reopening, merging, moving a case to another grid or escalating it all
leave the rollup equal to what the raw rows say. ``rebuild`` recomputes everything from the
case rows and events (``gridbot stats rebuild``); ``routines.stats.grid_stats`` is the raw
reference the tests compare against.

Days are calendar days in STATS_ZONE. A window that does not start and end at that zone's
midnights is answered from the raw rows instead.

A node's figures sum stats_day over the grids below it, found by a recursive query on
node.parent_id in the database (no Python list of ids).
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Integer, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Case, CaseEvent, CaseStatus, Node
from .tree import GRID_LEVELS

STATS_ZONE = ZoneInfo("Asia/Shanghai")
CARD_FIELDS = {"yellow_card": "yellow", "red_card": "red"}
FIELDS = ("reported", "registered", "registered_closed", "closed", "closed_on_time", "reworked", "rated",
          "satisfied", "yellow", "red")
GOOD = {"satisfied", "basic"}


class StatsDay(Base):
    """One grid's case figures on one day (in STATS_ZONE)."""

    __tablename__ = "stats_day"
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


class CaseContribution(Base):
    """What one case adds to stats_day now, so a change applies only its difference."""

    __tablename__ = "case_contribution"
    case_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                         ForeignKey("case_file.id"), primary_key=True)
    contrib: Mapped[dict] = mapped_column(JSON, default=dict)


def local_day(at: datetime) -> date:
    return at.astimezone(STATS_ZONE).date()


def contribution(case: Case, card_events: list[tuple[str, datetime]]) -> Counter[str]:
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
    for action, at in card_events:
        add(CARD_FIELDS[action], at)
    return out


async def _apply_delta(session: AsyncSession, delta: Counter[str]) -> None:
    per_key: dict[tuple[int, date], dict[str, int]] = {}
    for key, n in delta.items():
        if n:
            field, g, d = key.split("|")
            per_key.setdefault((int(g), date.fromisoformat(d)), {})[field] = n
    for (g, d), changes in per_key.items():
        row = await session.get(StatsDay, (g, d))
        if row is None:
            row = StatsDay(grid_id=g, day=d, **{f: 0 for f in FIELDS})
            session.add(row)
        for field, n in changes.items():
            setattr(row, field, (getattr(row, field) or 0) + n)


async def apply_cases(session: AsyncSession, case_ids: list[int]) -> None:
    """Bring the rollup up to date for these cases (call after their events are appended)."""
    if not case_ids:
        return
    await session.flush()
    cases = {c.id: c for c in (await session.execute(select(Case).where(Case.id.in_(case_ids)))).scalars()}
    cards: dict[int, list[tuple[str, datetime]]] = {i: [] for i in cases}
    for cid, action, at in await session.execute(
            select(CaseEvent.case_id, CaseEvent.action, CaseEvent.at)
            .where(CaseEvent.case_id.in_(case_ids), CaseEvent.action.in_(list(CARD_FIELDS)))):
        cards[cid].append((action, at))
    olds = {c.case_id: c for c in (await session.execute(
        select(CaseContribution).where(CaseContribution.case_id.in_(case_ids)))).scalars()}
    delta: Counter[str] = Counter()
    for cid, case in cases.items():
        new = contribution(case, cards[cid])
        old = olds.get(cid)
        delta.update(new)
        if old is None:
            session.add(CaseContribution(case_id=cid, contrib=dict(new)))
        else:
            delta.subtract(Counter(old.contrib))
            old.contrib = dict(new)
    await _apply_delta(session, delta)


async def rebuild(session: AsyncSession, batch: int = 5000) -> int:
    """Recompute the whole rollup from case rows and events; returns the number of cases."""
    await session.execute(delete(StatsDay))
    await session.execute(delete(CaseContribution))
    last, n = 0, 0
    while True:
        ids = list((await session.execute(select(Case.id).where(Case.id > last).order_by(Case.id).limit(batch)))
                   .scalars())
        if not ids:
            return n
        await apply_cases(session, ids)
        await session.flush()
        session.expunge_all()
        last, n = ids[-1], n + len(ids)


def subtree_grid_ids(node_id: int):
    """A recursive query for the ids of the grids at and below a node (runs in the database)."""
    tree = select(Node.id, Node.level).where(Node.id == node_id).cte("subtree", recursive=True)
    tree = tree.union_all(select(Node.id, Node.level).where(Node.parent_id == tree.c.id))
    return select(tree.c.id).where(tree.c.level.in_([str(level) for level in GRID_LEVELS]))


def _is_midnight(at: datetime) -> bool:
    return at.astimezone(STATS_ZONE).time() == time(0)


async def indicators(session: AsyncSession, node: Node, start: datetime, end: datetime):
    """A node's figures over [start, end): the rollup summed over its subtree, plus patrols.

    This is the function ledgers, assessments and /stats call. Returns routines.stats.Stats."""
    from .context import Ctx
    from .routines.models import PatrolCheckin, RoutineMark
    from .routines.stats import Stats, grid_stats

    grids = subtree_grid_ids(node.id)
    if not (_is_midnight(start) and _is_midnight(end)):
        ctx = Ctx(session=session)
        ids = list((await session.execute(grids)).scalars())
        total = Stats()
        for st in (await grid_stats(ctx, ids, start, end)).values():
            total += st
        return total
    row = (await session.execute(
        select(*[func.coalesce(func.sum(getattr(StatsDay, f)), literal(0)) for f in FIELDS])
        .where(StatsDay.grid_id.in_(grids), StatsDay.day >= local_day(start), StatsDay.day < local_day(end))
    )).one()
    st = Stats(**{f: int(v) for f, v in zip(FIELDS, row, strict=True)})
    st.patrols_done = int((await session.execute(
        select(func.count()).select_from(PatrolCheckin)
        .where(PatrolCheckin.node_id.in_(grids), PatrolCheckin.at >= start, PatrolCheckin.at < end))).scalar_one())
    st.patrols_missed = int((await session.execute(
        select(func.count()).select_from(RoutineMark)
        .where(RoutineMark.kind == "patrol_missed_60", RoutineMark.node_id.in_(grids),
               RoutineMark.at >= start, RoutineMark.at < end))).scalar_one())
    return st
