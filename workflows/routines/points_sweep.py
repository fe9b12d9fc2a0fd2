"""The points sweep: points derived from case events, and the monthly ranking to community groups.

A report that was registered earns `report_registered`, a case the reporter rated earns
`case_rated` — read from the case events of the last LOOKBACK, each case paying each rule once
(point_entry's unique rule_code + source_key), so the case loop needs no change and a late run
catches up. Deductions for staff (扣分) follow the same way from red cards and patrols missed
after an hour, when the office imported `red_card` / `patrol_missed` rules with negative points.
On the 1st of a month from 09:00 each community's group gets last month's ranking,
names masked unless the person opted in (routine_mark points_ranking per community and month).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from ..care_models import PointEntry
from ..context import Ctx
from ..models import Case, CaseEvent, Level, Node
from ..outbox import Msg
from ..points import earn, ranking, rule
from .common import OutboxBatch, SweepResult, claim, local_now
from .models import RoutineMark

LOOKBACK = timedelta(days=3)
EVENT_RULES = {"registered": "report_registered", "rated": "case_rated"}
RANKING_HOUR = 9


async def _from_cases(ctx: Ctx, result: SweepResult) -> None:
    rows = await ctx.session.execute(
        select(CaseEvent.id, CaseEvent.action, Case.id, Case.number, Case.reporter_id, Case.grid_id)
        .join(Case, Case.id == CaseEvent.case_id)
        .where(CaseEvent.action.in_(list(EVENT_RULES)), CaseEvent.at >= ctx.now() - LOOKBACK,
               Case.source == "resident", Case.reporter_id.is_not(None))
        .order_by(CaseEvent.id))
    todo = [(EVENT_RULES[action], f"case:{cid}", cid, number, reporter, grid)
            for _eid, action, cid, number, reporter, grid in rows]
    if not todo:
        return
    paid = {(code, key) for code, key in await ctx.session.execute(
        select(PointEntry.rule_code, PointEntry.source_key)
        .where(PointEntry.source_key.in_(list({k for _, k, *_ in todo}))))}
    active = {code for code in EVENT_RULES.values() if await rule(ctx, code) is not None}
    for rule_code, key, cid, number, reporter, grid in todo:
        if (rule_code, key) in paid or rule_code not in active:
            continue
        paid.add((rule_code, key))
        entry = await earn(ctx, reporter, rule_code, case_id=cid, node_id=grid, source_key=key,
                           reason=number)
        if entry is None:
            # the cap is spent: remember the case so it is not weighed again
            await earn_nothing(ctx, reporter, rule_code, cid, grid, key)
            result.add("capped")
        else:
            result.add(rule_code)
    await ctx.session.flush()


async def earn_nothing(ctx: Ctx, person_id: int, rule_code: str, case_id: int, node_id: int, key: str) -> None:
    """A zero row: the case was weighed and earned nothing (cap reached); the ledger says so."""
    loc = local_now(ctx)
    ctx.session.add(PointEntry(person_id=person_id, at=ctx.now(), day=loc.date(), month=loc.strftime("%Y-%m"),
                               points=0, rule_code=rule_code, reason="已达积分上限", case_id=case_id, node_id=node_id,
                               source_key=key))


async def _ranking(ctx: Ctx, result: SweepResult) -> None:
    loc = local_now(ctx)
    if loc.day != 1 or loc.hour < RANKING_HOUR:
        return
    month = (loc.date() - timedelta(days=1)).strftime("%Y-%m")
    communities = list((await ctx.session.execute(select(Node).where(Node.level == Level.community)
                                                  .order_by(Node.code))).scalars())
    won = await claim(ctx, "points_ranking", [{"subject_id": n.id, "slot": month, "node_id": n.id}
                                              for n in communities])
    out = OutboxBatch(ctx)
    for n in communities:
        if (n.id, month) not in won:
            continue
        ranked = await ranking(ctx, n.id, month)

        def compose(t, ranked=ranked, name=n.name) -> Msg:
            if not ranked:
                return Msg(t("【积分排名】{community} {month} 暂无居民和志愿者获得积分。", community=name, month=month))
            lines = [t("【积分排名】{community} {month} 居民和志愿者积分前 {n} 名：", community=name, month=month,
                       n=len(ranked))]
            lines += [t("{i}. {name} {points} 分", i=i, name=r.name, points=r.points)
                      for i, r in enumerate(ranked, 1)]
            lines.append(t("感谢大家参与社区治理！未公开姓名的已隐去部分字。"))
            return Msg("\n".join(lines))

        out.to_group(n.id, compose, f"points_ranking:{n.id}:{month}")
    written = await out.flush()
    result.add("rankings", len(won))
    result.add("undeliverable", written.get("undeliverable", 0))


async def _deductions(ctx: Ctx, result: SweepResult) -> None:
    """扣分 for staff where the office imported the rules: a red card (the case's assignee) and a
    patrol still missed after an hour (the worker whose duty it was)."""
    since = ctx.now() - LOOKBACK
    todo: list[tuple[int, str, str, int | None, int | None, str]] = []  # person, rule, key, case, node, reason
    if await rule(ctx, "red_card") is not None:
        rows = await ctx.session.execute(
            select(Case.id, Case.number, Case.assignee_id, Case.grid_id).join(CaseEvent, CaseEvent.case_id == Case.id)
            .where(CaseEvent.action == "red_card", CaseEvent.at >= since, Case.assignee_id.is_not(None)))
        todo += [(who, "red_card", f"case:{cid}", cid, grid, number) for cid, number, who, grid in rows]
    if await rule(ctx, "patrol_missed") is not None:
        rows = await ctx.session.execute(
            select(RoutineMark.id, RoutineMark.person_id, RoutineMark.node_id, RoutineMark.slot)
            .where(RoutineMark.kind == "patrol_missed_60", RoutineMark.at >= since,
                   RoutineMark.person_id.is_not(None)))
        todo += [(who, "patrol_missed", f"mark:{mid}", None, node, slot) for mid, who, node, slot in rows]
    if not todo:
        return
    paid = {(code, key) for code, key in await ctx.session.execute(
        select(PointEntry.rule_code, PointEntry.source_key)
        .where(PointEntry.source_key.in_(list({k for _, _, k, *_ in todo}))))}
    for who, rule_code, key, cid, node, reason in todo:
        if (rule_code, key) in paid:
            continue
        paid.add((rule_code, key))
        if await earn(ctx, who, rule_code, case_id=cid, node_id=node, source_key=key, reason=reason) is not None:
            result.add(rule_code)
    await ctx.session.flush()


async def sweep(ctx: Ctx) -> SweepResult:
    result = SweepResult()
    await _from_cases(ctx, result)
    await _deductions(ctx, result)
    await _ranking(ctx, result)
    return result
