"""Points (积分): rules as data, a ledger of entries, caps per day and month, the monthly ranking.

A balance is the sum of a person's point_entry rows; nothing is ever overwritten. Points for a
registered report and for a rated case are derived from the case events by the points sweep
(workflows.routines.points_sweep), so the case loop itself is unchanged; each case pays each
rule once (unique rule_code + source_key). Caps are checked with the person's row locked, so
two processes cannot both spend the last of a cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import func, select

from .care_models import PointEntry, PointProfile, PointRule
from .context import Ctx
from .errors import Invalid, NotAllowed, NotFound
from .models import Assignment, Node, Person, Role
from .outbox import Msg, to_person
from .routines.common import local_now
from .tree import descendants

AWARD = "award"  # the rule for a leader's /award
AWARD_ROLES = {Role.leader, Role.centre_staff, Role.admin}
STAFF_ROLES = {Role.worker, Role.leader, Role.standin, Role.centre_staff, Role.admin}
MAX_REASON = 200


def mask(name: str) -> str:
    """张伟 → 张*, 欧阳娜娜 → 欧**娜: the first character (and the last when long enough)."""
    name = (name or "").strip()
    if len(name) <= 1:
        return name or "*"
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


async def rule(ctx: Ctx, code: str) -> PointRule | None:
    found = (await ctx.session.execute(select(PointRule).where(PointRule.code == code))).scalar_one_or_none()
    return found if found is not None and found.active else None


async def _earned(ctx: Ctx, person_id: int, rule_code: str, **where) -> int:
    stmt = select(func.coalesce(func.sum(PointEntry.points), 0)).where(
        PointEntry.person_id == person_id, PointEntry.rule_code == rule_code, PointEntry.points > 0)
    for k, v in where.items():
        stmt = stmt.where(getattr(PointEntry, k) == v)
    return int((await ctx.session.execute(stmt)).scalar_one())


async def room(ctx: Ctx, person_id: int, r: PointRule) -> int | None:
    """How many more points this rule may give the person today (None: no cap)."""
    loc = local_now(ctx)
    left = []
    if r.daily_cap is not None:
        left.append(r.daily_cap - await _earned(ctx, person_id, r.code, day=loc.date()))
    if r.monthly_cap is not None:
        left.append(r.monthly_cap - await _earned(ctx, person_id, r.code, month=loc.strftime("%Y-%m")))
    return max(0, min(left)) if left else None


def _entry(ctx: Ctx, person_id: int, r: PointRule, points: int, **kw) -> PointEntry:
    loc = local_now(ctx)
    e = PointEntry(person_id=person_id, at=ctx.now(), day=loc.date(), month=loc.strftime("%Y-%m"),
                   points=points, rule_code=r.code, **kw)
    ctx.session.add(e)
    return e


async def earn(ctx: Ctx, person_id: int, rule_code: str, *, reason: str | None = None, case_id: int | None = None,
               node_id: int | None = None, source_key: str | None = None) -> PointEntry | None:
    """The rule's points, cut to what the caps leave (None when the rule is off or the cap is spent)."""
    r = await rule(ctx, rule_code)
    if r is None or r.points == 0:
        return None
    await ctx.session.get(Person, person_id, with_for_update=True)  # serialise cap checks per person
    points = r.points
    if points > 0:
        left = await room(ctx, person_id, r)
        if left is not None:
            points = min(points, left)
        if points <= 0:
            return None
    return _entry(ctx, person_id, r, points, reason=reason or r.name, case_id=case_id, node_id=node_id,
                  source_key=source_key)


async def may_award(ctx: Ctx, actor_id: int) -> Node | None:
    """The node an actor awards for: the first where they are leader, centre staff or admin."""
    row = (await ctx.session.execute(
        select(Node).join(Assignment, Assignment.node_id == Node.id)
        .where(Assignment.person_id == actor_id, Assignment.role.in_(list(AWARD_ROLES)))
        .order_by(Node.code).limit(1))).scalar_one_or_none()
    return row


PERSON_ID_RE = re.compile(r"^[Pp](\d{1,12})$")


async def find_person(ctx: Ctx, ref: str) -> Person:
    """A staff code, a phone number, or the P-number /points shows a resident."""
    ref = (ref or "").strip()
    m = PERSON_ID_RE.match(ref)
    stmt = select(Person).where(Person.id == int(m.group(1))) if m else \
        select(Person).where((Person.code == ref) | (Person.phone == ref)).order_by(Person.id).limit(1)
    person = (await ctx.session.execute(stmt)).scalars().first()
    if person is None:
        raise NotFound("找不到 {ref}。请写对方的编号（/points 里显示的 P 开头的编号）、工号或手机号。", ref=ref)
    return person


async def award(ctx: Ctx, actor_id: int, ref: str, points_text: str, reason: str) -> PointEntry:
    """A leader's award for a volunteer's help: refused, not cut, when it would pass a cap."""
    node = await may_award(ctx, actor_id)
    if node is None:
        raise NotAllowed("只有网格长、社区和街道工作人员可以奖励积分。")
    r = await rule(ctx, AWARD)
    if r is None:
        raise Invalid("积分规则里没有「奖励」（award），请管理员先导入积分规则。")
    try:
        points = int(points_text)
    except (TypeError, ValueError):
        raise Invalid("积分必须是整数，例如：/award P12 5 帮助清理楼道") from None
    if points <= 0:
        raise Invalid("奖励的积分必须大于 0。")
    if points > r.points:
        raise Invalid("一次最多奖励 {max} 分。", max=r.points)
    reason = (reason or "").strip()
    if not reason:
        raise Invalid("请写明奖励原因，例如：/award P12 5 帮助清理楼道")
    if len(reason) > MAX_REASON:
        raise Invalid("奖励原因太长了，请控制在 {n} 字以内。", n=MAX_REASON)
    person = await find_person(ctx, ref)
    if person.id == actor_id:
        raise NotAllowed("不能给自己奖励积分。")
    await ctx.session.get(Person, person.id, with_for_update=True)
    left = await room(ctx, person.id, r)
    if left is not None and points > left:
        raise Invalid("超过积分上限：{name} 今天/本月还能获得 {left} 分奖励。", name=person.name, left=left)
    entry = _entry(ctx, person.id, r, points, reason=reason, node_id=node.id, actor_id=actor_id)
    await ctx.session.flush()

    async def tell(t) -> Msg:
        return Msg(t("您获得 {n} 积分：{reason}。发送 /points 查看您的积分。", n=points, reason=reason))

    await to_person(ctx, person.id, tell)
    return entry


async def balance(ctx: Ctx, person_id: int) -> int:
    return int((await ctx.session.execute(
        select(func.coalesce(func.sum(PointEntry.points), 0)).where(PointEntry.person_id == person_id))).scalar_one())


async def recent(ctx: Ctx, person_id: int, limit: int = 10) -> list[PointEntry]:
    rows = await ctx.session.execute(select(PointEntry).where(PointEntry.person_id == person_id)
                                     .order_by(PointEntry.at.desc(), PointEntry.id.desc()).limit(limit))
    return list(rows.scalars())


async def set_show_name(ctx: Ctx, person_id: int, show: bool) -> None:
    profile = await ctx.session.get(PointProfile, person_id)
    if profile is None:
        ctx.session.add(PointProfile(person_id=person_id, show_name=show))
    else:
        profile.show_name = show
    await ctx.session.flush()


@dataclass
class Ranked:
    person_id: int
    name: str  # masked unless the person opted in
    points: int


async def ranking(ctx: Ctx, community_id: int, month: str, limit: int = 10) -> list[Ranked]:
    """Residents' and volunteers' points earned in the community's grids that month (staff excluded)."""
    nodes = [community_id, *(n.id for n in await descendants(ctx, community_id))]
    staff = select(Assignment.person_id).where(Assignment.role.in_(list(STAFF_ROLES)))
    total = func.sum(PointEntry.points).label("total")
    rows = await ctx.session.execute(
        select(PointEntry.person_id, Person.name, PointProfile.show_name, total)
        .join(Person, Person.id == PointEntry.person_id)
        .outerjoin(PointProfile, PointProfile.person_id == PointEntry.person_id)
        .where(PointEntry.month == month, PointEntry.node_id.in_(nodes), PointEntry.person_id.not_in(staff))
        .group_by(PointEntry.person_id, Person.name, PointProfile.show_name)
        .having(total > 0).order_by(total.desc(), PointEntry.person_id).limit(limit))
    return [Ranked(pid, name if show else mask(name), int(pts)) for pid, name, show, pts in rows]
