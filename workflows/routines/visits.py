"""Care-visit sweeps: the morning list of this week's visits, and overdue visits.

On each morning a visit falls due (in the grid's time zone, Node.timezone, else the office's),
the responsible worker (the A/B partner while the worker is
on leave) gets one message listing every visit due this week. A visit not done by its due day
reminds the worker the day after, and tells the grid's leaders after LEADER_AFTER days — in a
private message naming the household's code and the worker only. Each step is a routine_mark
(care_due per worker and day; care_overdue_1/_2 per person and due date), so it happens once.
"""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import String, and_, cast, exists, func, or_, select

from ..care import log_accesses
from ..care_models import CareHousehold, CarePerson
from ..context import Ctx
from ..models import Assignment, Node, Person, Role
from ..outbox import Msg
from .common import OutboxBatch, SweepResult, chunks, claim, local_now
from .leave import covers_on
from .models import RoutineMark

MORNING = 8  # local hour from which the day's list goes out (a later run the same day catches up)
LEADER_AFTER = 3  # days overdue before the leaders hear of it


def week_end(day: date) -> date:
    return day + timedelta(days=6 - day.weekday())


async def _due(ctx: Ctx, until: date, workers: set[int] | None = None,
               ids: set[int] | None = None) -> list[tuple[CarePerson, CareHousehold]]:
    stmt = (select(CarePerson, CareHousehold).join(CareHousehold, CareHousehold.id == CarePerson.household_id)
            .where(CarePerson.active.is_(True), CarePerson.next_due <= until)
            .order_by(CarePerson.next_due, CareHousehold.code, CarePerson.code))
    out = []
    # only the rows a claim was won for are loaded whole: a repeated run stays cheap
    for part in chunks(sorted(workers if workers is not None else ids or []), 5000):
        where = CarePerson.worker_id.in_(part) if workers is not None else CarePerson.id.in_(part)
        out += [(p, h) for p, h in await ctx.session.execute(stmt.where(where))]
    return sorted(out, key=lambda ph: (ph[0].next_due, ph[1].code, ph[0].code))


async def _names(ctx: Ctx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await ctx.session.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))
    return {pid: name for pid, name in rows}


def _line(t, p: CarePerson, h: CareHousehold, day: date) -> str:
    where = " ".join(x for x in (h.building, h.door) if x)
    late = t("（已逾期）") if p.next_due < day else ""
    return t("{due} {code} {where} {name}（{kind}）{late}", due=p.next_due.strftime("%m-%d"), code=h.code,
             where=where, name=p.name, kind=t(p.care_type), late=late)


async def zones(ctx: Ctx) -> list[str]:
    """The time zones of the grids that keep a register: a grid's own, else the office's (as the
    patrol and deadline sweeps read a grid's time)."""
    tz = func.coalesce(Node.timezone, ctx.timezone)
    rows = await ctx.session.execute(
        select(tz).select_from(CareHousehold).join(Node, Node.id == CareHousehold.node_id).distinct())
    return sorted({r[0] for r in rows})


def in_zone(ctx: Ctx, tz: str):
    """Households on grids whose local time is `tz`."""
    return CareHousehold.node_id.in_(select(Node.id).where(func.coalesce(Node.timezone, ctx.timezone) == tz))


async def due_sweep(ctx: Ctx) -> SweepResult:
    """The morning a visit falls due (in the grid's time zone): each worker's visits of this week,
    in one message."""
    result = SweepResult()
    for tz in await zones(ctx):
        await _due_in(ctx, tz, result)
    return result


async def _due_in(ctx: Ctx, tz: str, result: SweepResult) -> None:
    loc = local_now(ctx, tz)
    if loc.hour < MORNING:
        return
    day = loc.date()
    starting = (await ctx.session.execute(
        select(CarePerson.worker_id).join(CareHousehold, CareHousehold.id == CarePerson.household_id)
        .where(CarePerson.active.is_(True), CarePerson.next_due == day, in_zone(ctx, tz))
        .distinct())).scalars().all()
    won = await claim(ctx, "care_due", [{"subject_id": w, "slot": day.isoformat(), "person_id": w}
                                        for w in starting])
    if not won:
        return
    by_worker: dict[int, list[tuple[CarePerson, CareHousehold]]] = {}
    for p, h in await _due(ctx, week_end(day), workers={w for w, _ in won}):
        by_worker.setdefault(p.worker_id, []).append((p, h))
    covers = await covers_on(ctx, day)
    names = await _names(ctx, {w for w, _ in won})
    out = OutboxBatch(ctx)
    views: list[tuple[int, list[int]]] = []
    for worker, _slot in sorted(won):
        items = by_worker[worker]
        to, wname = covers.get(worker, worker), names.get(worker, "")

        def compose(t, items=items, cover=to != worker, wname=wname) -> Msg:
            head = t("【走访提醒】本周需要走访 {n} 位关爱对象：", n=len(items))
            if cover:
                head = t("{name} 请假，由您代为走访。", name=wname) + head
            lines = [head, *(_line(t, p, h, day) for p, h in items), t("走访后请私聊发送 /visit 登记。")]
            return Msg("\n".join(lines))

        out.to_person(to, compose, f"care_due:{worker}:{day.isoformat()}")
        views.append((to, [p.id for p, _ in items]))
    await log_accesses(ctx, views, "reminder")
    written = await out.flush()
    result.add("reminded", len(won))
    result.add("undeliverable", written.get("undeliverable", 0))


async def overdue_sweep(ctx: Ctx) -> SweepResult:
    """A visit past its day (in the grid's time zone): the worker (or cover) the day after, the
    leaders LEADER_AFTER days later."""
    result = SweepResult()
    for tz in await zones(ctx):
        await _overdue_in(ctx, tz, result)
    return result


async def _overdue_in(ctx: Ctx, tz: str, result: SweepResult) -> None:
    loc = local_now(ctx, tz)
    if loc.hour < MORNING:
        return
    day = loc.date()
    def marked(kind: str):  # this stage already done for this due date (the claim would refuse it anyway)
        return exists().where(RoutineMark.kind == kind, RoutineMark.subject_id == CarePerson.id,
                              RoutineMark.slot == cast(CarePerson.next_due, String))

    late_rows = (await ctx.session.execute(
        select(CarePerson.id, CarePerson.next_due, CareHousehold.node_id, CarePerson.worker_id)
        .join(CareHousehold, CareHousehold.id == CarePerson.household_id)
        .where(CarePerson.active.is_(True), CarePerson.next_due < day, in_zone(ctx, tz),
               or_(~marked("care_overdue_1"),
                   and_(CarePerson.next_due <= day - timedelta(days=LEADER_AFTER), ~marked("care_overdue_2"))))
    )).all()
    if not late_rows:
        return
    first = await claim(ctx, "care_overdue_1", [{"subject_id": pid, "slot": due.isoformat(), "node_id": node,
                                                 "person_id": worker} for pid, due, node, worker in late_rows])
    second = await claim(ctx, "care_overdue_2", [
        {"subject_id": pid, "slot": due.isoformat(), "node_id": node, "person_id": worker}
        for pid, due, node, worker in late_rows if due <= day - timedelta(days=LEADER_AFTER)])
    if not first and not second:
        return
    rows = await _due(ctx, day - timedelta(days=1), ids={pid for pid, _ in first | second})
    covers = await covers_on(ctx, day)
    out = OutboxBatch(ctx)
    to_worker: dict[int, list[tuple[CarePerson, CareHousehold]]] = {}
    for p, h in rows:
        if (p.id, p.next_due.isoformat()) in first:
            to_worker.setdefault(covers.get(p.worker_id, p.worker_id), []).append((p, h))
    for to, items in to_worker.items():
        def remind(t, items=items) -> Msg:
            lines = [t("【走访逾期】以下走访已过应访日期，请尽快走访并发送 /visit 登记："),
                     *(_line(t, p, h, day) for p, h in items)]
            return Msg("\n".join(lines))

        out.to_person(to, remind, f"care_overdue_1:{to}:{day.isoformat()}:{min(p.id for p, _ in items)}")
    await log_accesses(ctx, [(to, [p.id for p, _ in items]) for to, items in to_worker.items()], "reminder")
    late = [(p, h) for p, h in rows if (p.id, p.next_due.isoformat()) in second]
    names = await _names(ctx, {p.worker_id for p, _ in late})
    by_grid: dict[int, list[tuple[CarePerson, CareHousehold]]] = {}
    for p, h in late:
        if (p.id, p.next_due.isoformat()) in second:
            by_grid.setdefault(h.node_id, []).append((p, h))
    leaders: dict[int, list[int]] = {}  # the grids' leaders and centre staff, as tree.leaders_of, in one query
    for part in chunks(sorted(by_grid), 5000):
        for nid, pid in await ctx.session.execute(
                select(Assignment.node_id, Assignment.person_id)
                .where(Assignment.node_id.in_(part), Assignment.role.in_([Role.leader, Role.centre_staff]))
                .order_by(Assignment.person_id)):
            leaders.setdefault(nid, []).append(pid)
    for grid_id, items in by_grid.items():
        # leaders learn the household's code and the worker, not who lives there or why
        lines = [(names.get(p.worker_id, ""), h.code, p.next_due, (day - p.next_due).days) for p, h in items]
        for leader_id in dict.fromkeys(leaders.get(grid_id, [])):
            def tell(t, lines=lines) -> Msg:
                body = [t("【走访逾期】以下走访已逾期 {n} 天以上，请网格长跟进：", n=LEADER_AFTER),
                        *(t("{worker} 负责的 {code}，应访 {due}，已逾期 {days} 天", worker=w, code=c,
                            due=d.strftime("%m-%d"), days=n) for w, c, d, n in lines)]
                return Msg("\n".join(body))

            out.to_person(leader_id, tell, f"care_overdue_2:{leader_id}:{grid_id}:{day.isoformat()}")
    written = await out.flush()
    result.add("overdue_worker", len(first))
    result.add("overdue_leader", len(second))
    result.add("undeliverable", written.get("undeliverable", 0))
