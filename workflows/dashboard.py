"""The console's dashboard (辅助决策) for one node: every indicator comes from `rollup.figures` —
the function /stats, the weekly report and the ranking call — so the desk and the chat agree.

Only two things are not indicators of the rollup and are counted here from the case rows: the
cases overdue right now (a state, not an event of a day) and the split by category.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from . import rollup
from .cards import STATUS_LABELS
from .context import Ctx
from .deadlines import YELLOW, card_colour
from .models import OPEN_STATUSES, Case, CaseDeadline, Category, Node
from .routines.reports import week_so_far
from .routines.stats import Stats, ranked
from .tree import GRID_LEVELS

TREND_DAYS = 14
TREND_WEEKS = 8
CATEGORY_DAYS = 30
CARDED_SHOWN = 20


@dataclass
class Ranked:
    node: Node
    stats: Stats


@dataclass
class Carded:
    id: int
    number: str
    status: str
    status_label: str
    card: str
    grid: str
    deadline_at: datetime | None


@dataclass
class Dashboard:
    node: Node
    now: datetime
    today: Stats  # today (in the stats zone) so far: new = reported, closed
    overdue_now: int  # open cases past their deadline at this moment
    week_start: datetime
    week: Stats  # this week so far: exactly what /stats shows for the node
    days: list[tuple[date, Stats]]  # the last TREND_DAYS days, oldest first (today last)
    weeks: list[tuple[date, Stats]]  # the last TREND_WEEKS weeks by their Monday (this week last)
    categories: list[tuple[str, int]]  # cases reported in the last CATEGORY_DAYS days, by category
    ranking: list[Ranked]  # the node's children this week, by score (stats.ranked)
    carded: list[Carded]  # open cases holding a yellow or red card now, red first
    carded_total: int


def ranking(child_rows: list) -> list[Ranked]:
    """Each child of the node (communities of a street, grids of a community …) with its
    subtree's figures: week_so_far(by_child=True)'s (child, Stats) pairs, in the order the chat's
    /stats ranks them (stats.ranked: by score, the ones with nothing to assess last)."""
    return [Ranked(kid, st) for kid, st in ranked(child_rows)]


async def build(ctx: Ctx, t, node: Node) -> Dashboard:
    now = ctx.now()
    today = rollup.local_day(now)
    # the cases of the subtree: joined to their grid and matched by its path, so the planner walks
    # the time or status index of case_file (an IN over 1,000 grid ids made SQLite visit every case)
    in_subtree = Node.path.like(await rollup.node_path(ctx.session, node.id) + "%")

    monday = today - timedelta(days=today.weekday())
    first_monday = monday - timedelta(weeks=TREND_WEEKS - 1)
    by_day = await rollup.figures_by_day(ctx.session, node, min(first_monday, today - timedelta(days=TREND_DAYS - 1)),
                                         today)
    days = [(d, by_day[d]) for d in (today - timedelta(days=i) for i in range(TREND_DAYS - 1, -1, -1))]
    weeks = []
    for m in (first_monday + timedelta(weeks=i) for i in range(TREND_WEEKS)):
        st = Stats()
        for d in (m + timedelta(days=i) for i in range(7)):
            if d in by_day:
                st += by_day[d]
        weeks.append((m, st))
    week_start, _end, week, rows = await week_so_far(ctx, node, by_child=node.level not in GRID_LEVELS)

    open_ = [str(s) for s in OPEN_STATUSES]
    overdue = (await ctx.session.execute(select(func.count()).select_from(Case).join(Node, Node.id == Case.grid_id)
                                         .where(in_subtree, Case.status.in_(open_), Case.deadline_at < now))).scalar_one()
    english = getattr(t, "language", None) == "en"
    cats = await ctx.session.execute(
        select(Category.name, Category.name_en, func.count()).select_from(Case)
        .join(Category, Category.id == Case.category_id).join(Node, Node.id == Case.grid_id)
        .where(in_subtree, Case.created_at >= now - timedelta(days=CATEGORY_DAYS))
        .group_by(Category.id, Category.name, Category.name_en).order_by(func.count().desc(), Category.name))
    carded_q = (select(Case.id, Case.number, Case.status, CaseDeadline.stage, Node.name, Case.deadline_at)
                .join(Node, Node.id == Case.grid_id).join(CaseDeadline, CaseDeadline.case_id == Case.id)
                .where(in_subtree, Case.status.in_(open_), CaseDeadline.stage >= YELLOW))
    carded_total = (await ctx.session.execute(
        select(func.count()).select_from(carded_q.subquery()))).scalar_one()
    carded = [Carded(cid, number, status, t(STATUS_LABELS.get(status, status)), card_colour(stage) or "", grid, dl)
              for cid, number, status, stage, grid, dl in await ctx.session.execute(
                  carded_q.order_by(CaseDeadline.stage.desc(), Case.deadline_at, Case.id).limit(CARDED_SHOWN))]
    return Dashboard(
        node=node, now=now, today=days[-1][1], overdue_now=int(overdue), week_start=week_start, week=week,
        days=days, weeks=weeks, categories=[(en if english and en else name, int(n)) for name, en, n in cats],
        ranking=ranking(rows) if node.level not in GRID_LEVELS else [],
        carded=carded, carded_total=int(carded_total))


def chart_data(t, d: Dashboard) -> dict:
    """The dashboard's charts as plain data for the page's script (Chart.js draws them)."""
    def pct(x: float | None) -> float | None:
        return None if x is None else round(x * 100, 1)

    return {
        "days": {"labels": [x.strftime("%m-%d") for x, _ in d.days],
                 "reported": [s.reported for _, s in d.days], "closed": [s.closed for _, s in d.days]},
        "weeks": {"labels": [x.strftime("%m-%d") for x, _ in d.weeks],
                  "reported": [s.reported for _, s in d.weeks], "closed": [s.closed for _, s in d.weeks]},
        "categories": {"labels": [c for c, _ in d.categories], "values": [n for _, n in d.categories]},
        "ranking": {"labels": [r.node.name for r in d.ranking],
                    "on_time": [pct(r.stats.on_time_rate) for r in d.ranking],
                    "satisfaction": [pct(r.stats.satisfaction) for r in d.ranking]},
    }
