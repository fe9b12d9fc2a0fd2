"""Weekly reports to every grid group (Friday 17:00), the monthly ranking to every street group,
and /stats on demand — text plus a PNG chart.

Charts are stored once per distinct content in the media store (ChartCache.save) and the
outbox rows refer to the file ({"kind": "photo", "sha256": …}): 10,000 grids' weekly reports
share a handful of pictures, and each platform gets each picture uploaded once (media_ref).
Chart labels are ASCII (the machine may have no CJK font); the text carries the Chinese.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import defer

from .. import charts, media, rollup
from ..care_figures import add_visits, workers_by_grid
from ..context import Ctx
from ..i18n import T
from ..media_store import sha256_of
from ..models import GroupBinding, Level, Node
from ..outbox import Msg
from ..tree import GRID_LEVELS, REPATH_SQL
from .common import OutboxBatch, SweepResult, at_local, claim, local_now, week_key, zone
from .stats import Stats, children_stats, node_stats, ranked

REPORT_WEEKDAY = 4  # Friday
REPORT_TIME = "17:00"
RANKING_DAY_TIME = "09:00"  # on the 1st, for the month before
CATCH_UP_DAYS = 3  # a report missed by downtime still goes out within this many days
# reports become due at this many a second (half of Telegram's overall 30 msg/s): 10,000 grids'
# weekly reports go out over ~11 minutes after 17:00, a street's few in a second
REPORT_PACE = 15.0
# /stats above a street ranks the node's children (a city its districts, a district its streets):
# what those offices compare, and 10 rows summed in the database instead of 10,000 grids' figures
RANKS_CHILDREN = {Level.city, Level.district}


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def stats_text(t: T, title: str, st: Stats) -> str:
    return "\n".join([
        title,
        t("上报 {a} 件，立案 {b} 件，结案 {c} 件", a=st.reported, b=st.registered, c=st.closed),
        t("按期处置率 {a}，结案率 {b}，返工率 {c}，满意率 {d}", a=pct(st.on_time_rate), b=pct(st.close_rate),
          c=pct(st.rework_rate), d=pct(st.satisfaction)),
        t("黄牌 {y} 张，红牌 {r} 张", y=st.yellow, r=st.red),
        t("巡查完成 {d} 次，未按时巡查 {m} 次", d=st.patrols_done, m=st.patrols_missed),
        *([t("关爱走访按期 {a}/{b} 次，走访按期率 {c}", a=st.visits_on_time, b=st.visits_due, c=pct(st.visit_rate))]
          if st.visits_due else []),
    ])


def visit_lines(t: T, workers: list[tuple[str, int, int]]) -> list[str]:
    """Each worker's visit coverage — the worker's name only, never whom they visit."""
    return [t("{name}：走访按期 {a}/{b}", name=name, a=ontime, b=due) for name, due, ontime in workers]


def chart_png(title: str, labels: list[str], values: list[float], ylabel: str = "") -> bytes:
    return charts.bar_chart(title, labels, values, ylabel)


STATS_LABELS = ["reported", "registered", "closed", "yellow", "red", "patrols", "missed"]


RANKED_SHOWN = 20  # units listed in /stats' ranking (and unranked units named after it)


def unassessed_line(t: T, rows: list[tuple[Node, Stats]]) -> str | None:
    """The units a ranking leaves unranked, named after it: nothing to assess (Stats.assessed);
    past RANKED_SHOWN of them, how many in all."""
    idle = [n.name for n, st in rows if not st.assessed]
    if not idle:
        return None
    names = (", " if t.language == "en" else "、").join(idle[:RANKED_SHOWN])
    if len(idle) > RANKED_SHOWN:
        names += t("等 {n} 个", n=len(idle))
    return t("无考核数据（本期没有事件、巡查和走访记录），不参与排名：{names}", names=names)


def stats_values(st: Stats) -> list[int]:
    return [st.reported, st.registered, st.closed, st.yellow, st.red, st.patrols_done, st.patrols_missed]


class ChartCache:
    """One sweep's (or one answer's) charts: each distinct content is drawn once and stored once
    (`save`, before the messages referring to them are written), many grids share the picture."""

    def __init__(self) -> None:
        self.drawn: dict[tuple, dict] = {}
        self.files: dict[str, bytes] = {}  # sha256 → PNG, not yet saved

    def get(self, name: str, title: str, labels: list[str], values: list[float], ylabel: str = "") -> dict:
        key = (name, title, tuple(labels), tuple(values), ylabel)
        if key not in self.drawn:
            png = chart_png(title, labels, values, ylabel)
            sha = sha256_of(png)
            self.files[sha] = png
            self.drawn[key] = {"kind": "photo", "sha256": sha, "name": name, "mime": "image/png", "size": len(png)}
        return self.drawn[key]

    def stats(self, st: Stats, title: str) -> dict:
        return self.get("stats.png", title, STATS_LABELS, stats_values(st))

    def ranking(self, rows: list, title: str) -> dict:
        """The scores as bars: only the units that have one (Stats.assessed)."""
        rows = [(n, st) for n, st in rows if st.assessed]
        return self.get("ranking.png", title, [n.code for n, _ in rows], [round(st.score(), 1) for _, st in rows],
                        "score")

    async def save(self, ctx: Ctx) -> None:
        await media.store_files(ctx, self.files, "image/png")
        self.files = {}


def week_window(ctx: Ctx, local: datetime) -> tuple[datetime, datetime]:
    """Monday 00:00 to Friday 17:00 of local's week."""
    monday = local.date() - timedelta(days=local.weekday())
    tz = local.tzinfo
    return (at_local(monday, "00:00", tz), at_local(monday + timedelta(days=REPORT_WEEKDAY), REPORT_TIME, tz))


def month_window(ctx: Ctx, first: date, tz) -> tuple[datetime, datetime]:
    prev_last = first - timedelta(days=1)
    return at_local(prev_last.replace(day=1), "00:00", tz), at_local(first, "00:00", tz)


async def _bound(ctx: Ctx, node_ids: list[int]) -> set[int]:
    rows = await ctx.session.execute(
        select(GroupBinding.node_id).where(GroupBinding.node_id.in_(node_ids), GroupBinding.status == "active",
                                           GroupBinding.channel.in_(list(ctx.channels))))
    return {r[0] for r in rows}


async def weekly_sweep(ctx: Ctx) -> SweepResult:
    result = SweepResult()
    loc = local_now(ctx)
    start, end = week_window(ctx, loc)
    if not (end <= loc < end + timedelta(days=CATCH_UP_DAYS)):
        return result
    grids = list((await ctx.session.execute(
        select(Node).where(Node.level.in_([str(g) for g in GRID_LEVELS])).order_by(Node.code)
        .options(defer(Node.boundary, raiseload=True)))).scalars())
    week = week_key(start.date())
    won = await claim(ctx, "weekly_report", [{"subject_id": g.id, "slot": week, "node_id": g.id} for g in grids])
    mine = [g for g in grids if (g.id, week) in won]
    if not mine:
        return result
    bound = await _bound(ctx, [g.id for g in mine])
    per = await rollup.figures_by_grid(ctx.session, None, start, end, now=ctx.now())
    all_grids = await rollup.subtree_grids(ctx.session, None)
    await add_visits(ctx.session, per, all_grids, start, end, ctx.now())
    visitors = await workers_by_grid(ctx.session, all_grids, start, end, ctx.now())
    drawn = ChartCache()
    out = OutboxBatch(ctx, pace=REPORT_PACE)
    for g in mine:
        if g.id not in bound:
            result.warn(f"网格 {g.name} 没有绑定工作群，周报未能发送。")
            result.add("no_group")
            continue
        st = per.get(g.id) or Stats()
        media = [drawn.stats(st, f"week {week}")] if any(stats_values(st)) else []
        workers = visitors.get(g.id, [])

        def compose(t, g=g, st=st, media=media, workers=workers) -> Msg:
            title = t("【{grid} 周报】{start} 至 {end}", grid=g.name, start=start.strftime("%m-%d"),
                      end=end.strftime("%m-%d %H:%M"))
            return Msg("\n".join([stats_text(t, title, st), *visit_lines(t, workers)]), media=media)

        out.to_group(g.id, compose, f"weekly_report:{g.id}:{week}")
        result.add("reports")
    await drawn.save(ctx)
    await out.flush()
    return result


async def _grids_by_street(ctx: Ctx, street_ids: set[int]) -> dict[int, list]:
    """Each street's grids (id, code, name), from the grids' paths: one query for all streets."""
    out: dict[int, list] = {}
    query = (select(Node.id, Node.code, Node.name, Node.path)
             .where(Node.level.in_([str(g) for g in GRID_LEVELS])).order_by(Node.code))
    rows = (await ctx.session.execute(query)).all()
    if any(g.path is None for g in rows):  # nodes bulk-loaded by raw SQL: compute the paths once
        await ctx.session.execute(text(REPATH_SQL))
        rows = (await ctx.session.execute(query)).all()
    for g in rows:
        for part in reversed((g.path or "").strip("/").split("/")):
            if part and int(part) in street_ids:
                out.setdefault(int(part), []).append(g)
                break
    return out


async def monthly_sweep(ctx: Ctx) -> SweepResult:
    """On the 1st (from 09:00, catching up for a few days): each street group gets its grids' ranking."""
    result = SweepResult()
    loc = local_now(ctx)
    first = loc.date().replace(day=1)
    begin = at_local(first, RANKING_DAY_TIME, loc.tzinfo)
    if not (begin <= loc < begin + timedelta(days=CATCH_UP_DAYS)):
        return result
    start, end = month_window(ctx, first, loc.tzinfo)
    month = start.strftime("%Y-%m")
    streets = list((await ctx.session.execute(
        select(Node.id, Node.code, Node.name, Node.path).where(Node.level == Level.street).order_by(Node.code))).all())
    won = await claim(ctx, "monthly_ranking", [{"subject_id": s.id, "slot": month, "node_id": s.id} for s in streets])
    streets = [s for s in streets if (s.id, month) in won]
    if not streets:
        return result
    # a fixed number of statements however many grids: every grid's figures at once, then by street
    per = await rollup.figures_by_grid(ctx.session, None, start, end)
    await add_visits(ctx.session, per, await rollup.subtree_grids(ctx.session, None), start, end, ctx.now())
    grids_of = await _grids_by_street(ctx, {s.id for s in streets})
    drawn = ChartCache()
    out = OutboxBatch(ctx, pace=REPORT_PACE)
    for street in streets:
        rows = ranked((g, per.get(g.id) or Stats()) for g in grids_of.get(street.id, []))
        media = [drawn.ranking(rows, f"{street.code} {month} ranking")] if any(st.assessed for _, st in rows) else []

        def compose(t, street=street, rows=rows, media=media) -> Msg:
            lines = [t("【{street} {month} 网格考核排名】", street=street.name, month=month)]
            for i, (g, st) in enumerate((r for r in rows if r[1].assessed), 1):
                lines.append(t("{i}. {grid}：得分 {score:.1f}（按期 {a}，结案 {b}，满意 {c}，黄牌 {y}，红牌 {r}）",
                               i=i, grid=g.name, score=st.score(), a=pct(st.on_time_rate), b=pct(st.close_rate),
                               c=pct(st.satisfaction), y=st.yellow, r=st.red)
                             + (t("，走访按期 {v}", v=pct(st.visit_rate)) if st.visits_due else ""))
            if idle := unassessed_line(t, rows):
                lines.append(idle)
            if not rows:
                lines.append(t("本街道下没有网格。"))
            lines.append(t("得分 = 按期率×40 + 结案率×30 + 满意率×30 − 黄牌×5 − 红牌×10 − 未巡查次数"))
            return Msg("\n".join(lines), media=media)

        out.to_group(street.id, compose, f"monthly_ranking:{street.id}:{month}")
        result.add("rankings")
    await drawn.save(ctx)
    await out.flush()
    return result


async def week_so_far(ctx: Ctx, node: Node, by_child: bool = False
                      ) -> tuple[datetime, datetime, Stats, list[tuple[Node, Stats]]]:
    """This week so far (Monday 00:00 in the node's zone to now): the window and figures /stats
    shows, and the console's dashboard and map card too — with each grid's figures below the
    node, or each child's (by_child)."""
    start, _ = week_window(ctx, local_now(ctx, node.timezone))
    end = ctx.now()
    total, rows = await (children_stats if by_child else node_stats)(ctx, node, start, end)
    return start, end, total, rows


async def on_demand(ctx: Ctx, t: T, node: Node) -> Msg:
    """/stats in a bound group: this week so far for the group's node, and its grids below (a
    city's or a district's children)."""
    by_child = node.level in RANKS_CHILDREN
    start, end, total, rows = await week_so_far(ctx, node, by_child)
    title = t("【{node} 本周统计】{start} 至 {end}", node=node.name, start=start.strftime("%m-%d"),
              end=end.astimezone(zone(ctx, node.timezone)).strftime("%m-%d %H:%M"))
    text = stats_text(t, title, total)
    if node.level in GRID_LEVELS:
        for line in visit_lines(t, (await workers_by_grid(ctx.session, [node.id], start, end, end)).get(node.id, [])):
            text += "\n" + line
    drawn = ChartCache()
    media = [drawn.stats(total, f"{node.code} this week")] if any(stats_values(total)) else []  # nothing to draw
    if node.level not in GRID_LEVELS and rows:
        rows = ranked(rows)
        top = [r for r in rows if r[1].assessed][:RANKED_SHOWN]
        text += "\n" + (t("—— 下级排名 ——") if by_child else t("—— 网格排名 ——"))
        for i, (g, st) in enumerate(top, 1):
            text += "\n" + t("{i}. {grid}：得分 {score:.1f}", i=i, grid=g.name, score=st.score())
            if st.visits_due:
                text += t("，走访按期 {v}", v=pct(st.visit_rate))
        if idle := unassessed_line(t, rows):
            text += "\n" + idle
        if top:  # a ranking of nothing is not drawn either
            media.append(drawn.ranking(top, f"{node.code} ranking"))
    await drawn.save(ctx)
    return Msg(text, media=media)
