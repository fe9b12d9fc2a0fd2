"""Screening (排查): reminders with a checklist and a record per node and period.

- dispute_hazard (矛盾纠纷和安全隐患排查): weekly, every community, Monday 09:00 (周排查周报告);
- street_screening: half-monthly, every street, the 1st and the 16th 09:00 (半月一排查一上报);
- fire_safety (消防安全检查): monthly, every community, the 1st 09:00.
The reminder goes to the node's group with a button; the checklist dialogue (handlers/stats.py)
ends in a ScreeningRecord, one per (kind, node, period).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select

from ..context import Ctx
from ..errors import Invalid, NotAllowed, WrongState
from ..models import Level, Node, Role
from ..outbox import Msg
from ..tree import get_node, has_role
from .common import OutboxBatch, SweepResult, at_local, claim, local_now, week_key
from .models import ScreeningRecord

START_TIME = "09:00"
CATCH_UP = timedelta(days=2)


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    level: str
    items: tuple[str, ...]


KINDS = {
    "dispute_hazard": Kind("dispute_hazard", "矛盾纠纷和安全隐患周排查", Level.community,
                           ("邻里纠纷", "家庭矛盾", "物业纠纷", "安全隐患", "重点人员动态")),
    "street_screening": Kind("street_screening", "街道半月排查", Level.street,
                             ("矛盾纠纷", "安全隐患", "信访苗头", "重点场所")),
    "fire_safety": Kind("fire_safety", "月度消防安全检查", Level.community,
                        ("消防通道", "灭火器和消防栓", "电动车充电", "老旧电线", "易燃物堆放")),
}


def period_of(kind: str, day: date) -> tuple[str, date]:
    """The period a day falls in, and the day the period starts."""
    if kind == "dispute_hazard":
        monday = day - timedelta(days=day.weekday())
        return week_key(monday), monday
    if kind == "street_screening":
        half = 1 if day.day < 16 else 2
        return f"{day:%Y-%m}-H{half}", day.replace(day=1 if half == 1 else 16)
    return f"{day:%Y-%m}", day.replace(day=1)


async def sweep(ctx: Ctx) -> SweepResult:
    result = SweepResult()
    loc = local_now(ctx)
    for kind in KINDS.values():
        period, first = period_of(kind.name, loc.date())
        begin = at_local(first, START_TIME, loc.tzinfo)
        if not (begin <= loc < begin + CATCH_UP):  # a late start catches up, but not a week late
            continue
        nodes = list((await ctx.session.execute(
            select(Node).where(Node.level == kind.level).order_by(Node.code))).scalars())
        slot = f"{kind.name}:{period}"
        won = await claim(ctx, "screening_remind", [{"subject_id": n.id, "slot": slot, "node_id": n.id} for n in nodes])
        out = OutboxBatch(ctx)
        for n in nodes:
            if (n.id, slot) not in won:
                continue
            from ..outbox import button

            # buttons are written per message (tokens); the text is in the group's language
            token = await button(ctx, "开始填报", "screening.start", kind=kind.name, node_id=n.id, period=period)

            def compose(t, n=n, kind=kind, token=token, period=period) -> Msg:
                token.label = t("开始填报")
                return Msg(t("【{title}】{node} 本期（{period}）排查请于本期内完成并上报。检查项：{items}。"
                             "请负责人点击「开始填报」逐项填写。", title=t(kind.title), node=n.name, period=period,
                             items="、".join(t(i) for i in kind.items)), buttons=[[token]])

            out.to_group(n.id, compose, f"screening:{kind.name}:{n.id}:{period}")
            result.add(kind.name)
        await out.flush()
    return result


SCREENERS = {Role.leader, Role.standin, Role.centre_staff, Role.admin, Role.worker}


async def can_screen(ctx: Ctx, person_id: int | None, node: Node) -> bool:
    return await has_role(ctx, person_id, node, SCREENERS, {Role.centre_staff, Role.admin})


async def check_open(ctx: Ctx, person_id: int | None, kind: str, node_id: int, period: str) -> Node:
    if kind not in KINDS:
        raise Invalid("没有这种排查。")
    node = await get_node(ctx, node_id)
    if not await can_screen(ctx, person_id, node):
        raise NotAllowed("只有 {node} 的工作人员可以填报排查。", node=node.name)
    done = (await ctx.session.execute(select(ScreeningRecord.id).where(
        ScreeningRecord.kind == kind, ScreeningRecord.node_id == node_id, ScreeningRecord.period == period))).first()
    if done:
        raise WrongState("{node} 本期（{period}）的排查已经填报过了。", node=node.name, period=period)
    return node


async def record(ctx: Ctx, person_id: int, kind: str, node_id: int, period: str, answers: list[dict]) -> ScreeningRecord:
    node = await check_open(ctx, person_id, kind, node_id, period)
    issues = sum(1 for a in answers if not a.get("ok"))
    rec = ScreeningRecord(kind=kind, node_id=node.id, period=period, person_id=person_id, at=ctx.now(),
                          answers=answers, issues=issues)
    ctx.session.add(rec)
    await ctx.session.flush()
    return rec


def now_period(ctx: Ctx, kind: str) -> str:
    return period_of(kind, local_now(ctx).date())[0]


