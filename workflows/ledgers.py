"""The office's ledgers (台账): rows for 事件台账, 巡查台账, 民情日记, 请销假 and the 考核表.

A ledger is a title, its columns and an async stream of rows of plain values (local naive
datetimes, dates, ints, floats, str) — no file format here; ledger_xlsx writes them to Excel.
Rows are read in pages by id, so a year of a district's cases never sits in memory at once.
The 考核表 figures come from the same function as /stats (routines.stats.node_stats); its rows
per worker, team and department from the same counts grouped by assignee and team
(rollup.figures_by), with visit coverage (care_figures) and staff points (point ledger).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from .cards import RATING_LABELS, STATUS_LABELS, URGENCY_LABELS, mask_name, mask_phone
from .care_figures import days_of
from .care_models import PointEntry
from .context import Ctx
from .i18n import T, _
from .models import (
    Assignment,
    Case,
    CaseEvent,
    CaseStatus,
    Category,
    Department,
    Level,
    Node,
    Person,
    Role,
    Team,
    TeamGrid,
)
from .routines.models import DiaryEntry, Leave, PatrolCheckin
from .routines.stats import Stats, node_stats
from .tree import DISPATCH_ROLES_HERE, can_dispatch, descendants, roles_of

PAGE = 1000  # rows per query
KINDS = ("cases", "patrols", "diary", "leave", "assessment")
KIND_TITLES = {"cases": _("事件台账"), "patrols": _("巡查台账"), "diary": _("民情日记"),
               "leave": _("请销假台账"), "assessment": _("考核表")}
SOURCE_LABELS = {"resident": _("群众上报"), "patrol": _("巡查发现"), "staff": _("工作人员上报"),
                 "hotline": _("12345热线")}
LEAVE_LABELS = {"pending": _("待审批"), "approved": _("已批准"), "refused": _("未批准"), "cancelled": _("已撤销")}


@dataclass(frozen=True)
class Column:
    title: str  # a message id, translated when written
    width: int
    kind: str = "text"  # text | datetime | date | int | rate


@dataclass
class Ledger:
    kind: str
    node: Node
    start: date
    end: date  # inclusive
    columns: list[Column]
    rows: AsyncIterator[list]


def window(ctx: Ctx, start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, the day after end 00:00) in the office's time zone."""
    tz = ZoneInfo(ctx.timezone)
    return (datetime.combine(start, time(), tz), datetime.combine(end + timedelta(days=1), time(), tz))


def _local(ctx: Ctx, at: datetime | None) -> datetime | None:
    # Excel has no time zones: write the office's wall-clock time
    return at.astimezone(ZoneInfo(ctx.timezone)).replace(tzinfo=None) if at else None


async def _subtree_ids(ctx: Ctx, node: Node) -> list[int]:
    return [node.id] + [n.id for n in await descendants(ctx, node.id)]


async def _names(ctx: Ctx, model, ids: set[int]) -> dict[int, str]:
    ids.discard(None)  # type: ignore[arg-type]
    if not ids:
        return {}
    return dict((await ctx.session.execute(select(model.id, model.name).where(model.id.in_(ids)))).all())


async def _pages(ctx: Ctx, query, id_col, columns: bool = False) -> AsyncIterator[list]:
    """Pages of ORM objects, or of plain rows with `columns` (the case ledger: no identity map
    to fill with 100,000 objects)."""
    last = 0
    while True:
        result = await ctx.session.execute(query.where(id_col > last).order_by(id_col).limit(PAGE))
        page = list(result.all() if columns else result.scalars())
        if not page:
            return
        yield page
        last = page[-1].id


# ---------------------------------------------------------------------------- 事件台账

CASE_COLUMNS = [
    Column(_("事件编号"), 20), Column(_("上报时间"), 17, "datetime"), Column(_("来源"), 10),
    Column(_("网格"), 16), Column(_("类别"), 16), Column(_("紧急程度"), 8), Column(_("事件描述"), 40),
    Column(_("地址"), 24), Column(_("上报人"), 10), Column(_("联系电话"), 14), Column(_("当前状态"), 14),
    Column(_("立案时间"), 17, "datetime"), Column(_("立案人"), 10),
    Column(_("派遣时间"), 17, "datetime"), Column(_("派遣人"), 10), Column(_("处置人/队伍"), 16),
    Column(_("接收时间"), 17, "datetime"), Column(_("办结时间"), 17, "datetime"), Column(_("办结人"), 10),
    Column(_("结案时间"), 17, "datetime"), Column(_("核查人"), 10), Column(_("处置时限"), 17, "datetime"),
    Column(_("是否按期"), 10), Column(_("返工次数"), 8, "int"), Column(_("重新办理次数"), 8, "int"),
    Column(_("评价"), 10), Column(_("评价意见"), 30),
]
# the step a column shows: the latest event of that action (after a rework, the last finish)
STEPS = ("registered", "dispatched", "accepted", "resolved", "verified")


CASE_FIELDS = (Case.id, Case.number, Case.created_at, Case.source, Case.grid_id, Case.category_id, Case.urgency,
               Case.description, Case.address, Case.anonymous, Case.reporter_id, Case.contact_phone, Case.status,
               Case.registered_at, Case.dispatched_at, Case.resolved_at, Case.closed_at, Case.deadline_at,
               Case.assignee_id, Case.team_id, Case.rework_count, Case.reopen_count, Case.rating,
               Case.rating_comment)


def on_time_label(t: T, case: Case, now: datetime) -> str:
    """The same rule as the on-time rate (按期处置率): closed by the deadline."""
    if case.deadline_at is None:
        return t("无时限")
    if case.status == CaseStatus.closed:
        return t("是") if case.closed_at and case.closed_at <= case.deadline_at else t("否")
    if case.status in (CaseStatus.declined, CaseStatus.cancelled, CaseStatus.merged):
        return "-"
    return t("已超期") if now > case.deadline_at else t("未到期")


async def _case_rows(ctx: Ctx, t: T, grid_ids: list[int] | None, start: datetime | None, end: datetime | None,
                     where: Sequence[Any] = ()) -> AsyncIterator[list]:
    """The rows of the 事件台账: of the grids in a period, or (grid_ids None) of any other
    selection `where` makes — the web console's filtered list."""
    query = select(*CASE_FIELDS).where(*where)
    if grid_ids is not None:
        query = query.where(Case.grid_id.in_(grid_ids))
    if start is not None and end is not None:
        query = query.where(Case.created_at >= start, Case.created_at < end)
    english = t.language == "en"
    categories = {i: (en if english and en else zh) for i, zh, en in
                  await ctx.session.execute(select(Category.id, Category.name, Category.name_en))}
    names = select(Node.id, Node.name)
    if grid_ids is not None:
        names = names.where(Node.id.in_(grid_ids))
    grids = dict((await ctx.session.execute(names)).all())
    teams = dict((await ctx.session.execute(select(Team.id, Team.name))).all())
    now = ctx.now()
    async for page in _pages(ctx, query, Case.id, columns=True):
        steps: dict[tuple[int, str], Any] = {}
        for e in await ctx.session.execute(
                select(CaseEvent.case_id, CaseEvent.action, CaseEvent.at, CaseEvent.actor_id)
                .where(CaseEvent.case_id.in_([c.id for c in page]), CaseEvent.action.in_(STEPS))
                .order_by(CaseEvent.at, CaseEvent.id)):
            steps[(e.case_id, e.action)] = e  # later events overwrite earlier ones
        people = await _names(ctx, Person, {e.actor_id for e in steps.values()}
                              | {c.assignee_id for c in page} | {c.reporter_id for c in page})
        phones = dict((await ctx.session.execute(select(Person.id, Person.phone).where(
            Person.id.in_({c.reporter_id for c in page if c.reporter_id and not c.contact_phone})))).all())
        def step(case: Any, action: str, steps=steps, people=people) -> tuple[datetime | None, str]:
            e = steps.get((case.id, action))
            if e is None:
                return None, ""
            return _local(ctx, e.at), people.get(e.actor_id, "") if e.actor_id else t("系统")

        for c in page:
            reg_at, reg_by = step(c, "registered")
            disp_at, disp_by = step(c, "dispatched")
            acc_at, _taker = step(c, "accepted")
            res_at, res_by = step(c, "resolved")
            _verified_at, ver_by = step(c, "verified")
            handler = people.get(c.assignee_id, "") if c.assignee_id else teams.get(c.team_id, "")
            reporter = t("匿名") if c.anonymous else (mask_name(people.get(c.reporter_id)) if c.reporter_id else "")
            yield [
                c.number, _local(ctx, c.created_at), t(SOURCE_LABELS.get(c.source, c.source)),
                grids.get(c.grid_id, ""), categories.get(c.category_id, ""), t(URGENCY_LABELS.get(c.urgency, c.urgency)),
                c.description, c.address or "", reporter, mask_phone(c.contact_phone or phones.get(c.reporter_id)),
                t(STATUS_LABELS.get(c.status, c.status)),
                reg_at or _local(ctx, c.registered_at), reg_by, disp_at or _local(ctx, c.dispatched_at), disp_by,
                handler, acc_at, res_at or _local(ctx, c.resolved_at), res_by, _local(ctx, c.closed_at), ver_by,
                _local(ctx, c.deadline_at), on_time_label(t, c, now), c.rework_count, c.reopen_count,
                t(RATING_LABELS[c.rating]) if c.rating in RATING_LABELS else "", c.rating_comment or "",
            ]


# ---------------------------------------------------------------------------- 巡查台账

PATROL_COLUMNS = [
    Column(_("日期"), 11, "date"), Column(_("班次"), 7), Column(_("网格"), 16), Column(_("责任人"), 10),
    Column(_("巡查人"), 10), Column(_("打卡时间"), 17, "datetime"), Column(_("距网格（米）"), 10, "int"),
    Column(_("检查项"), 8, "int"), Column(_("发现问题"), 8, "int"), Column(_("问题说明"), 30),
    Column(_("上报事件"), 24), Column(_("提示"), 24),
]


async def _patrol_rows(ctx: Ctx, t: T, node_ids: list[int], start: datetime, end: datetime) -> AsyncIterator[list]:
    query = select(PatrolCheckin).where(PatrolCheckin.node_id.in_(node_ids), PatrolCheckin.at >= start,
                                        PatrolCheckin.at < end)
    nodes = dict((await ctx.session.execute(select(Node.id, Node.name).where(Node.id.in_(node_ids)))).all())
    async for page in _pages(ctx, query, PatrolCheckin.id):
        people = await _names(ctx, Person, {p.person_id for p in page} | {p.for_person_id for p in page})
        case_ids = {i for p in page for i in p.case_ids or []}
        numbers = dict((await ctx.session.execute(select(Case.id, Case.number).where(Case.id.in_(case_ids)))).all()) \
            if case_ids else {}
        for p in page:
            problems = [a for a in p.answers or [] if not a.get("ok", True)]
            yield [
                date.fromisoformat(p.day), p.slot, nodes.get(p.node_id, ""), people.get(p.for_person_id, ""),
                people.get(p.person_id, ""), _local(ctx, p.at),
                round(p.distance_m) if p.distance_m is not None else None, len(p.answers or []), len(problems),
                "；".join(f"{a.get('item', '')}{'：' + a['note'] if a.get('note') else ''}" for a in problems),
                "、".join(numbers.get(i, "") for i in p.case_ids or []), p.warning or "",
            ]


# ---------------------------------------------------------------------------- 民情日记

DIARY_COLUMNS = [Column(_("时间"), 17, "datetime"), Column(_("网格"), 16), Column(_("记录人"), 10),
                 Column(_("内容"), 60)]


async def _diary_rows(ctx: Ctx, t: T, node_ids: list[int], start: datetime, end: datetime) -> AsyncIterator[list]:
    query = select(DiaryEntry).where(DiaryEntry.node_id.in_(node_ids), DiaryEntry.at >= start, DiaryEntry.at < end)
    nodes = dict((await ctx.session.execute(select(Node.id, Node.name).where(Node.id.in_(node_ids)))).all())
    async for page in _pages(ctx, query, DiaryEntry.id):
        people = await _names(ctx, Person, {d.person_id for d in page})
        for d in page:
            yield [_local(ctx, d.at), nodes.get(d.node_id, ""), people.get(d.person_id, ""), d.text]


# ---------------------------------------------------------------------------- 请销假

LEAVE_COLUMNS = [
    Column(_("申请人"), 10), Column(_("网格"), 16), Column(_("开始日期"), 11, "date"), Column(_("结束日期"), 11, "date"),
    Column(_("天数"), 6, "int"), Column(_("事由"), 30), Column(_("代岗人"), 10), Column(_("状态"), 8),
    Column(_("申请时间"), 17, "datetime"), Column(_("审批人"), 10), Column(_("审批时间"), 17, "datetime"),
    Column(_("审批意见"), 24),
]


async def _leave_rows(ctx: Ctx, t: T, node_ids: list[int], first: date, last: date) -> AsyncIterator[list]:
    # a leave belongs to the period when it overlaps it
    query = select(Leave).where(Leave.node_id.in_(node_ids), Leave.start_date <= last, Leave.end_date >= first)
    nodes = dict((await ctx.session.execute(select(Node.id, Node.name).where(Node.id.in_(node_ids)))).all())
    async for page in _pages(ctx, query, Leave.id):
        people = await _names(ctx, Person, {lv.person_id for lv in page} | {lv.cover_id for lv in page}
                              | {lv.decided_by_id for lv in page})
        for lv in page:
            yield [
                people.get(lv.person_id, ""), nodes.get(lv.node_id, ""), lv.start_date, lv.end_date,
                (lv.end_date - lv.start_date).days + 1, lv.reason, people.get(lv.cover_id, ""),
                t(LEAVE_LABELS.get(lv.status, lv.status)), _local(ctx, lv.created_at),
                people.get(lv.decided_by_id, ""), _local(ctx, lv.decided_at), lv.decision_note or "",
            ]


# ---------------------------------------------------------------------------- 考核表

ASSESSMENT_COLUMNS = [
    Column(_("类型"), 8), Column(_("编码"), 14), Column(_("名称"), 16), Column(_("上报"), 7, "int"),
    Column(_("立案"), 7, "int"), Column(_("结案"), 7, "int"), Column(_("按期处置率"), 10, "rate"),
    Column(_("结案率"), 10, "rate"), Column(_("返工率"), 10, "rate"), Column(_("满意率"), 10, "rate"),
    Column(_("黄牌"), 6, "int"), Column(_("红牌"), 6, "int"), Column(_("巡查次数"), 8, "int"),
    Column(_("漏巡次数"), 8, "int"), Column(_("应走访"), 8, "int"), Column(_("按期走访"), 8, "int"),
    Column(_("走访按期率"), 10, "rate"), Column(_("积分"), 8, "int"), Column(_("得分"), 8, "rate"),
]
ROW_KINDS = {"grid": _("网格"), "total": _("合计"), "worker": _("人员"), "team": _("队伍"), "department": _("部门")}
WORKER_ROLES = (Role.worker, Role.leader, Role.standin)


async def _points(ctx: Ctx, person_ids: set[int], first: date, last: date) -> dict[int, int]:
    """Each person's points for the period: the sum of their point ledger rows (workflows.points)."""
    if not person_ids:
        return {}
    rows = await ctx.session.execute(
        select(PointEntry.person_id, func.sum(PointEntry.points))
        .where(PointEntry.person_id.in_(person_ids), PointEntry.day >= first, PointEntry.day <= last)
        .group_by(PointEntry.person_id))
    return {pid: int(n) for pid, n in rows}


async def assessment_groups(ctx: Ctx, node: Node, start: datetime, end: datetime) -> dict[str, list]:
    """The 考核表's rows before formatting: {"grid"/"total"/"worker"/"team"/"department": [(code,
    name, Stats, points or None)]}. Grids and the total are node_stats (what /stats shows); workers
    and teams are the same figures of the cases assigned to them (rollup.figures_by, from the raw
    reference: stats_day has no per-person dimension), departments the sums of their teams."""
    from . import rollup
    from .care_figures import add_visits

    total, per_grid = await node_stats(ctx, node, start, end)
    grids = await rollup.subtree_grids(ctx.session, node.id)
    by_worker = await rollup.figures_by(ctx.session, node, start, end, "assignee")
    await add_visits(ctx.session, by_worker, grids, start, end, ctx.now(), by="worker")
    by_team = await rollup.figures_by(ctx.session, node, start, end, "team")
    by_worker.pop(0, None), by_team.pop(0, None)  # cases with no assignee / no team
    # the node's own staff are listed even with nothing to count; others when they have figures
    staff = set((await ctx.session.execute(select(Assignment.person_id).where(
        Assignment.node_id.in_(await _subtree_ids(ctx, node)), Assignment.role.in_(list(WORKER_ROLES))))).scalars())
    people = (await ctx.session.execute(select(Person.id, Person.code, Person.name).where(
        Person.id.in_(staff | set(by_worker))).order_by(Person.code, Person.id))).all()
    served = set((await ctx.session.execute(select(TeamGrid.team_id).where(TeamGrid.node_id.in_(grids)))).scalars())
    teams = (await ctx.session.execute(select(Team.id, Team.code, Team.name, Team.department_id).where(
        Team.id.in_(served | set(by_team))).order_by(Team.code))).all()
    first, last = days_of(start, end)
    points = await _points(ctx, {p.id for p in people}, first, last)
    depts: dict[int, Stats] = {}
    for tm in teams:
        if tm.department_id is not None:
            depts.setdefault(tm.department_id, Stats())
            depts[tm.department_id] += by_team.get(tm.id) or Stats()
    dept_rows = (await ctx.session.execute(select(Department.id, Department.code, Department.name).where(
        Department.id.in_(set(depts))).order_by(Department.code))).all() if depts else []
    return {
        "grid": [(g.code, g.name, st, None) for g, st in per_grid],
        "total": [(node.code, node.name, total, None)],
        "worker": [(p.code or "", p.name, by_worker.get(p.id) or Stats(), points.get(p.id, 0)) for p in people],
        "team": [(tm.code, tm.name, by_team.get(tm.id) or Stats(), None) for tm in teams],
        "department": [(d.code, d.name, depts[d.id], None) for d in dept_rows],
    }


async def _assessment_rows(ctx: Ctx, t: T, node: Node, start: datetime, end: datetime) -> AsyncIterator[list]:
    groups = await assessment_groups(ctx, node, start, end)

    def row(kind: str, code: str, name: str, st: Stats, points: int | None) -> list:
        return [t(ROW_KINDS[kind]), code, name, st.reported, st.registered, st.closed, st.on_time_rate,
                st.close_rate, st.rework_rate, st.satisfaction, st.yellow, st.red, st.patrols_done,
                st.patrols_missed, st.visits_due, st.visits_on_time, st.visit_rate, points,
                None if (score := st.score()) is None else round(score, 1)]

    single = len(groups["grid"]) == 1 and groups["grid"][0][0] == node.code
    for kind in ROW_KINDS:
        if kind == "total" and single:
            continue  # a grid's own sheet: its row is the total
        for code, name, st, points in groups[kind]:
            yield row(kind, code, t("{name}合计", name=name) if kind == "total" else name, st, points)


# ---------------------------------------------------------------------------- entry point

async def ledger(ctx: Ctx, t: T, kind: str, node: Node, first: date, last: date) -> Ledger:
    """The ledger of `kind` for `node` and everything below it, from `first` to `last` (inclusive,
    local dates). Raises ValueError for an unknown kind or an empty period."""
    if kind not in KINDS:
        raise ValueError(t("未知的台账类型：{kind}（可用：{kinds}）", kind=kind, kinds="、".join(KINDS)))
    if last < first:
        raise ValueError(t("结束日期 {last} 早于开始日期 {first}", first=first, last=last))
    start, end = window(ctx, first, last)
    ids = await _subtree_ids(ctx, node)
    if kind == "cases":
        grid_ids = ids  # cases sit in grids; the ids of the levels above simply match nothing
        return Ledger(kind, node, first, last, CASE_COLUMNS, _case_rows(ctx, t, grid_ids, start, end))
    make: dict[str, tuple[list[Column], Callable[[], AsyncIterator[list]]]] = {
        "patrols": (PATROL_COLUMNS, lambda: _patrol_rows(ctx, t, ids, start, end)),
        "diary": (DIARY_COLUMNS, lambda: _diary_rows(ctx, t, ids, start, end)),
        "leave": (LEAVE_COLUMNS, lambda: _leave_rows(ctx, t, ids, first, last)),
        "assessment": (ASSESSMENT_COLUMNS, lambda: _assessment_rows(ctx, t, node, start, end)),
    }
    columns, rows = make[kind]
    return Ledger(kind, node, first, last, columns, rows())



def filtered_case_ledger(ctx: Ctx, t: T, node: Node, first: date, last: date, where: Sequence[Any]) -> Ledger:
    """The 事件台账 of a selection of cases (`where`, e.g. workflows.case_list.conditions) —
    the same columns and rows as `ledger(…, "cases", …)`; `node`, `first` and `last` are the title's."""
    return Ledger("cases", node, first, last, CASE_COLUMNS, _case_rows(ctx, t, None, None, None, where))


# ---------------------------------------------------------------------------- who, and for when

PERIODS = {"this_month": _("本月"), "last_month": _("上月"), "this_week": _("本周"), "last_week": _("上周"),
           "this_year": _("今年")}


def period(name: str, today: date) -> tuple[date, date]:
    """A named period as (first, last) days; the current ones end today."""
    if name == "this_week":
        return today - timedelta(days=today.weekday()), today
    if name == "last_week":
        monday = today - timedelta(days=today.weekday())
        return monday - timedelta(days=7), monday - timedelta(days=1)
    if name == "this_month":
        return today.replace(day=1), today
    if name == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if name == "this_year":
        return today.replace(month=1, day=1), today
    raise ValueError(name)


async def may_export(ctx: Ctx, person_id: int | None, node: Node) -> bool:
    """Ledgers are for whoever dispatches at the node or supervises it from above: its leader
    (or stand-in), centre staff and admins — the same people who see its cases."""
    return await can_dispatch(ctx, person_id, node)


async def export_nodes(ctx: Ctx, person_id: int) -> list[Node]:
    """The nodes a person may export ledgers for from a private chat, highest level first."""
    ids = {nid for nid, role in await roles_of(ctx, person_id) if role in DISPATCH_ROLES_HERE}
    if not ids:
        return []
    nodes = list((await ctx.session.execute(select(Node).where(Node.id.in_(ids)))).scalars())
    order = {lv: i for i, lv in enumerate(Level)}
    return sorted(nodes, key=lambda n: (order.get(n.level, 99), n.code))
