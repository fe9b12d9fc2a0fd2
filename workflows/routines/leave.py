"""请销假 and A/B cover (A岗/B岗): while a worker is on approved leave, the partner covers.

Covering means: the worker's patrol reminders and deadline reminders go to the partner, and a
new assignment dispatched to the worker goes to the partner (cases.dispatch calls covering()).
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from sqlalchemy import and_, select

from ..context import Ctx
from ..errors import Invalid, NotAllowed, NotFound, WrongState
from ..i18n import T
from ..models import Assignment, Node, Person, Role
from ..outbox import Msg, button, to_group, to_person
from ..tree import can_dispatch, get_node, leaders_of
from .common import local_now
from .models import Leave

DATE_RE = re.compile(r"^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})$")
MAX_DAYS = 90


def parse_day(text: str, today: date) -> date:
    """YYYY-MM-DD, or MM-DD (this year; a date more than half a year back means next year)."""
    m = DATE_RE.match(text.strip())
    if not m:
        raise Invalid("日期格式不对：{text}。请写成 2026-11-25 或 11-25。", text=text)
    year = int(m.group(1)) if m.group(1) else today.year
    try:
        day = date(year, int(m.group(2)), int(m.group(3)))
    except ValueError:
        raise Invalid("没有这一天：{text}。", text=text) from None
    if not m.group(1) and day < today - timedelta(days=183):
        day = day.replace(year=year + 1)
    return day


def today(ctx: Ctx) -> date:
    return local_now(ctx).date()


async def worker_grid(ctx: Ctx, person_id: int) -> Node | None:
    row = (await ctx.session.execute(
        select(Node).join(Assignment, Assignment.node_id == Node.id)
        .where(Assignment.person_id == person_id, Assignment.role == Role.worker).order_by(Node.code).limit(1)
    )).scalar_one_or_none()
    return row


async def request(ctx: Ctx, person_id: int, start_text: str, end_text: str, reason: str) -> Leave:
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("请写明请假事由，例如：/leave 11-25 11-27 家中有事")
    if len(reason) > 500:
        raise Invalid("请假事由太长了，请控制在 500 字以内。")
    now_day = today(ctx)
    start, end = parse_day(start_text, now_day), parse_day(end_text, now_day)
    if end < start:
        raise Invalid("结束日期 {end} 早于开始日期 {start}，请检查后重新提交。", start=start.isoformat(),
                      end=end.isoformat())
    if start < now_day:
        raise Invalid("开始日期 {start} 已经过去了，不能补请过去的假。", start=start.isoformat())
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid("一次请假不能超过 {n} 天。", n=MAX_DAYS)
    person = await ctx.session.get(Person, person_id)
    grid = await worker_grid(ctx, person_id)
    if person is None or grid is None:
        raise NotAllowed("只有网格员可以在这里请假。")
    if person.partner_id is None:
        raise WrongState("您还没有登记A/B岗搭档，请假期间无人代岗，请先联系网格长登记搭档。")
    clash = (await ctx.session.execute(
        select(Leave.id).where(Leave.person_id == person_id, Leave.status.in_(["pending", "approved"]),
                               Leave.start_date <= end, Leave.end_date >= start).limit(1)
    )).first()
    if clash:
        raise WrongState("这段时间您已有请假申请，不能重复提交。")
    leave = Leave(person_id=person_id, cover_id=person.partner_id, node_id=grid.id, start_date=start,
                  end_date=end, reason=reason, status="pending", created_at=ctx.now())
    ctx.session.add(leave)
    await ctx.session.flush()
    partner = await ctx.session.get(Person, person.partner_id)
    leaders = await leaders_of(ctx, grid.id)
    for leader in leaders:
        async def compose(t: T) -> Msg:
            return Msg(
                t("【请假审批】{name}（{grid}）申请请假：{start} 至 {end}，共 {days} 天。\n事由：{reason}\n"
                  "请假期间由A/B岗 {partner} 代岗。", name=person.name, grid=grid.name, start=start.isoformat(),
                  end=end.isoformat(), days=(end - start).days + 1, reason=reason, partner=partner.name),
                buttons=[[await button(ctx, t("批准"), "leave.approve", leave_id=leave.id),
                          await button(ctx, t("不批准"), "leave.refuse", leave_id=leave.id)]],
            )

        await to_person(ctx, leader.id, compose)
    return leave


async def _pending(ctx: Ctx, actor_id: int, leave_id: int) -> tuple[Leave, Node]:
    leave = await ctx.session.get(Leave, leave_id, with_for_update=True)
    if leave is None:
        raise NotFound("找不到该请假申请。")
    grid = await get_node(ctx, leave.node_id)
    if not await can_dispatch(ctx, actor_id, grid):
        raise NotAllowed("只有 {node} 的网格长可以审批请假。", node=grid.name)
    if leave.status != "pending":
        raise WrongState("该请假申请已经处理过了。")
    return leave, grid


async def approve(ctx: Ctx, actor_id: int, leave_id: int) -> Leave:
    leave, grid = await _pending(ctx, actor_id, leave_id)
    leave.status, leave.decided_by_id, leave.decided_at = "approved", actor_id, ctx.now()
    person = await ctx.session.get(Person, leave.person_id)
    cover = await ctx.session.get(Person, leave.cover_id)
    span = dict(start=leave.start_date.isoformat(), end=leave.end_date.isoformat())
    await to_person(ctx, person.id, lambda t: _msg(t("您 {start} 至 {end} 的请假已批准，期间由 {cover} 代岗。",
                                                      cover=cover.name, **span)))
    await to_person(ctx, cover.id, lambda t: _msg(t(
        "{name} {start} 至 {end} 请假，由您（A/B岗）代岗：期间的巡查提醒和新派事件会发给您。", name=person.name, **span)))
    await to_group(ctx, grid.id, lambda t: _msg(t("【请假公告】{name} {start} 至 {end} 请假，期间由A/B岗 {cover} 代岗。",
                                                   name=person.name, cover=cover.name, **span)))
    return leave


async def refuse(ctx: Ctx, actor_id: int, leave_id: int, reason: str) -> Leave:
    leave, _grid = await _pending(ctx, actor_id, leave_id)
    leave.status, leave.decided_by_id, leave.decided_at = "refused", actor_id, ctx.now()
    leave.decision_note = reason
    await to_person(ctx, leave.person_id, lambda t: _msg(t("您 {start} 至 {end} 的请假未获批准：{reason}",
                                                            start=leave.start_date.isoformat(),
                                                            end=leave.end_date.isoformat(), reason=reason)))
    return leave


async def _msg(text: str) -> Msg:
    return Msg(text)


async def covers_on(ctx: Ctx, day: date) -> dict[int, int]:
    """Who covers whom on that day: {worker on approved leave: partner}."""
    rows = await ctx.session.execute(
        select(Leave.person_id, Leave.cover_id).where(
            and_(Leave.status == "approved", Leave.start_date <= day, Leave.end_date >= day,
                 Leave.cover_id.is_not(None))))
    covers = {p: c for p, c in rows}
    # a partner who is away too cannot cover: the message stays with the worker
    return {p: c for p, c in covers.items() if c not in covers}


async def covering(ctx: Ctx, person_id: int | None, at: datetime | None = None) -> int | None:
    """The person who acts for person_id now: the A/B partner while person_id is on leave."""
    if person_id is None:
        return None
    day = (at or ctx.now()).astimezone(local_now(ctx).tzinfo).date()
    rows = await ctx.session.execute(
        select(Leave.person_id, Leave.cover_id).where(
            Leave.status == "approved", Leave.start_date <= day, Leave.end_date >= day,
            Leave.person_id.in_([person_id]), Leave.cover_id.is_not(None)))
    found = rows.first()
    if found is None:
        return person_id
    cover = found[1]
    away = (await ctx.session.execute(
        select(Leave.id).where(Leave.status == "approved", Leave.person_id == cover, Leave.start_date <= day,
                               Leave.end_date >= day).limit(1))).first()
    return person_id if away else cover


async def leaves_of(ctx: Ctx, person_id: int, limit: int = 10) -> list[Leave]:
    rows = await ctx.session.execute(
        select(Leave).where(Leave.person_id == person_id).order_by(Leave.start_date.desc()).limit(limit))
    return list(rows.scalars())
