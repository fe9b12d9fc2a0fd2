"""Statistics and evaluation (考核) for grids and the nodes above them, over a time window.

Definitions (all over [start, end)):
- reported: cases created; registered: cases registered (立案); closed: cases closed (结案).
- on-time rate (按期处置率): closed cases closed by their deadline / closed cases.
- close rate (结案率): cases registered in the window that are now closed / cases registered.
- rework rate (返工率): closed cases that were sent back at least once / closed cases.
- satisfaction: closed cases rated 满意 or 基本满意 / closed cases that were rated.
- yellow / red cards: deadline-sweep events in the window, by the case's grid.
- patrols done: check-ins; patrols missed: worker-slots still without a check-in 60 minutes on.
- visit coverage (走访按期率): care visits done on time / visits due (workflows/care_figures.py).
An upper node's figures are the sums over the grids below it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy import case as when
from sqlalchemy.ext.asyncio import AsyncSession

from ..context import Ctx, core_rows
from ..models import Case, CaseEvent, CaseStatus, Node
from ..tree import GRID_LEVELS
from .models import PatrolCheckin, RoutineMark


@dataclass
class Stats:
    reported: int = 0
    registered: int = 0
    closed: int = 0
    closed_on_time: int = 0
    registered_closed: int = 0
    reworked: int = 0
    rated: int = 0
    satisfied: int = 0
    yellow: int = 0
    red: int = 0
    patrols_done: int = 0
    patrols_missed: int = 0
    # care visits (care_figures.visit_coverage fills them; the case rollup does not count them)
    visits_due: int = 0
    visits_on_time: int = 0

    def __iadd__(self, other: Stats) -> Stats:
        # the attributes' dicts directly: /stats for a city adds 10,000 grids' figures
        mine, theirs = self.__dict__, other.__dict__
        for name in STATS_FIELDS:
            mine[name] += theirs[name]
        return self

    @staticmethod
    def _rate(n: int, d: int) -> float | None:
        return n / d if d else None

    @property
    def on_time_rate(self) -> float | None:
        return self._rate(self.closed_on_time, self.closed)

    @property
    def close_rate(self) -> float | None:
        return self._rate(self.registered_closed, self.registered)

    @property
    def rework_rate(self) -> float | None:
        return self._rate(self.reworked, self.closed)

    @property
    def satisfaction(self) -> float | None:
        return self._rate(self.satisfied, self.rated)

    @property
    def visit_rate(self) -> float | None:
        """Visit coverage: visits done on time / visits due."""
        return self._rate(self.visits_on_time, self.visits_due)

    @property
    def assessed(self) -> bool:
        """Something to assess happened in the window: a case, a card, a patrol (done or missed)
        or a care visit due. A unit with none has no score: nothing was done, which is not the
        same as everything done well (it used to rank first with 100)."""
        return bool(self.reported or self.registered or self.closed or self.yellow or self.red
                    or self.patrols_done or self.patrols_missed or self.visits_due)

    def score(self) -> float | None:
        """Ranking score: on-time 40, close 30, satisfaction 30 (a rate with nothing to measure
        counts as full), minus 5 per yellow and 10 per red card, minus 1 per missed patrol; None
        when there is nothing to assess."""
        if not self.assessed:
            return None

        def r(x: float | None) -> float:
            return 1.0 if x is None else x

        return (40 * r(self.on_time_rate) + 30 * r(self.close_rate) + 30 * r(self.satisfaction)
                - 5 * self.yellow - 10 * self.red - self.patrols_missed)


def ranked(rows: Iterable[tuple[Any, Stats]]) -> list[tuple[Any, Stats]]:
    """The one ranking order — the chat's /stats and monthly ranking, the console's dashboard:
    (unit, figures) pairs by score, highest first, the units with nothing to assess after them;
    a tie goes to the measured on-time rate, then satisfaction (a rate with nothing to measure
    scores full but does not win a tie), then the unit's code."""
    def key(row: tuple[Any, Stats]) -> tuple:
        st = row[1]
        score, on_time, happy = st.score(), st.on_time_rate, st.satisfaction
        return (score is None, -(score or 0.0), on_time is None, -(on_time or 0.0), happy is None,
                -(happy or 0.0), row[0].code)

    return sorted(rows, key=key)


STATS_FIELDS = tuple(f.name for f in fields(Stats))


BY = ("grid", "assignee", "team")


async def raw_figures(session: AsyncSession, grids: Select | list[int], start: datetime, end: datetime,
                      by_grid: bool = True, by: str = "grid") -> dict[int, Stats]:
    """The reference: every figure counted from the raw rows (cases, events, check-ins, marks).

    Per grid (only grids with something to count), or the total under key 0. rollup.figures uses
    it for the partial days at the ends of a window; the tests compare the rollup with it.

    `by` groups the same counts of the cases in `grids` another way: "assignee" by the case's
    current assignee (patrols by whose list they are: check-ins for_person_id, missed marks'
    person), "team" by the case's team (no patrols). stats_day has no such dimension, so the
    考核表's rows per worker, team and department are read from here. Cases without one are
    under key 0."""
    if by not in BY:
        raise ValueError(by)
    out: dict[int, Stats] = {}
    case_col = {"grid": Case.grid_id, "assignee": Case.assignee_id, "team": Case.team_id}[by]

    def key(col):
        return col if by_grid else func.min(0)

    def rows(q, col):
        return session.execute(q.group_by(col) if by_grid else q)

    def at(g) -> Stats:
        return out.setdefault(int(g or 0), Stats())

    in_grids = Case.grid_id.in_(grids)

    def window(col):
        return (col >= start) & (col < end)

    for g, n in await rows(select(key(case_col), func.count()).where(in_grids, window(Case.created_at)),
                           case_col):
        if n:
            at(g).reported = n
    closed = Case.status == CaseStatus.closed
    for g, n, done in await rows(
            select(key(case_col), func.count(), func.sum(when((closed, 1), else_=0)))
            .where(in_grids, window(Case.registered_at)), case_col):
        if n:
            at(g).registered, at(g).registered_closed = n, int(done or 0)
    good = Case.rating.in_(["satisfied", "basic"])
    for g, n, ontime, rework, rated, sat in await rows(
            select(key(case_col), func.count(),
                   func.sum(when((Case.closed_at <= Case.deadline_at, 1), else_=0)),
                   func.sum(when((Case.rework_count > 0, 1), else_=0)),
                   func.sum(when((Case.rating.is_not(None), 1), else_=0)),
                   func.sum(when((good, 1), else_=0)))
            .where(in_grids, closed, window(Case.closed_at)), case_col):
        if n:
            st = at(g)
            st.closed, st.closed_on_time, st.reworked = n, int(ontime or 0), int(rework or 0)
            st.rated, st.satisfied = int(rated or 0), int(sat or 0)
    for action in ("yellow_card", "red_card"):
        for g, n in await rows(
                select(key(case_col), func.count()).select_from(CaseEvent).join(Case, Case.id == CaseEvent.case_id)
                .where(in_grids, CaseEvent.action == action, window(CaseEvent.at)), case_col):
            if n:
                setattr(at(g), "yellow" if action == "yellow_card" else "red", n)
    if by == "team":
        return out
    done_col = PatrolCheckin.node_id if by == "grid" else PatrolCheckin.for_person_id
    for g, n in await rows(
            select(key(done_col), func.count())
            .where(PatrolCheckin.node_id.in_(grids), window(PatrolCheckin.at)), done_col):
        if n:
            at(g).patrols_done = n
    missed_col = RoutineMark.node_id if by == "grid" else RoutineMark.person_id
    for g, n in await rows(
            select(key(missed_col), func.count())
            .where(RoutineMark.kind == "patrol_missed_60", RoutineMark.node_id.in_(grids), window(RoutineMark.at)),
            missed_col):
        if n:
            at(g).patrols_missed = n
    return out


async def grid_stats(ctx: Ctx, grid_ids: list[int], start: datetime, end: datetime) -> dict[int, Stats]:
    """Raw figures for each listed grid (the reference; the product reads rollup.figures)."""
    raw = await raw_figures(ctx.session, grid_ids, start, end) if grid_ids else {}
    return {g: raw.get(g) or Stats() for g in grid_ids}


async def grids_under(ctx: Ctx, node: Node) -> list:
    """The grids at and below the node (found by its path), in code order: (id, code, name) rows."""
    if node.level in GRID_LEVELS:
        return [node]
    from ..rollup import subtree_grids

    grids = await subtree_grids(ctx.session, node.id)  # the ids' query, asked for code and name too
    return list(await core_rows(ctx.session, grids.with_only_columns(Node.id, Node.code, Node.name)
                                .order_by(Node.code)))


async def node_stats(ctx: Ctx, node: Node, start: datetime, end: datetime) -> tuple[Stats, list[tuple[Node, Stats]]]:
    """The node's total and each grid's figures below it, from the rollup (rollup.figures), with
    the grids' visit coverage (care_figures.add_visits)."""
    from .. import rollup

    grids = await grids_under(ctx, node)
    from ..care_figures import add_visits

    per = await rollup.figures_by_grid(ctx.session, node, start, end, now=ctx.now())
    await add_visits(ctx.session, per, await rollup.subtree_grids(ctx.session, node.id), start, end, ctx.now())
    return total_of(per.values()), [(g, per.get(g.id) or Stats()) for g in grids]


async def children_stats(ctx: Ctx, node: Node, start: datetime, end: datetime) -> tuple[Stats, list[tuple[Node, Stats]]]:
    """The node's total and each child's figures (its subtree's sum, from rollup.figures_by_child),
    with visit coverage: what a city's /stats ranks by district and the console by child."""
    from .. import rollup
    from ..care_figures import add_visits
    from ..tree import children

    per = await rollup.figures_by_child(ctx.session, node, start, end, now=ctx.now())
    prefix = await rollup.node_path(ctx.session, node.id)
    visits = await add_visits(ctx.session, {}, rollup.grids_below(prefix), start, end, ctx.now())
    for kid, st in (await rollup.by_child(ctx.session, prefix, visits)).items():
        per.setdefault(kid, Stats())
        per[kid] += st
    return total_of(per.values()), [(k, per.get(k.id) or Stats()) for k in await children(ctx, node.id)]


def total_of(figures) -> Stats:
    """The sum of several Stats (a node's grids or children)."""
    total = Stats()
    for st in figures:
        total += st
    return total
