"""Staff tools in a work group: the open-case overview (with overdue first) and naming a stand-in."""

from __future__ import annotations

from sqlalchemy import delete, or_, select

from workflows.cards import STATUS_LABELS, local
from workflows.cases import is_overdue
from workflows.errors import Invalid, NotAllowed
from workflows.models import OPEN_STATUSES, Assignment, Case, GroupBinding, Node, Person, Role
from workflows.tree import descendants, has_role

from .registry import LEADERS, STAFF, command
from .turn import Turn

OVERVIEW_LIMIT = 30


async def group_node(turn: Turn) -> Node:
    i = turn.inbound
    binding = (await turn.session.execute(
        select(GroupBinding).where(GroupBinding.channel == i.channel, GroupBinding.chat_id == i.chat_id,
                                   GroupBinding.status == "active")
    )).scalar_one_or_none()
    if binding is None:
        raise Invalid("本群还没有绑定网格。")
    return await turn.session.get(Node, binding.node_id)


@command("cases", "本群网格的在办事件（超期在前）", private=False, group=True, roles=STAFF)
async def open_cases(turn: Turn) -> None:
    node = await group_node(turn)
    ids = [node.id, *(n.id for n in await descendants(turn.ctx, node.id))]
    rows = (await turn.session.execute(
        select(Case).where(Case.status.in_(list(OPEN_STATUSES)),
                           or_(Case.grid_id.in_(ids), Case.level_node_id.in_(ids)))
        .order_by(Case.deadline_at.is_(None), Case.deadline_at, Case.id).limit(OVERVIEW_LIMIT + 1)
    )).scalars().all()
    if not rows:
        await turn.say(turn.t("{node} 目前没有在办事件。", node=node.name))
        return
    now = turn.ctx.now()
    lines = [turn.t("{node} 在办事件：", node=node.name)]
    for c in rows[:OVERVIEW_LIMIT]:
        mark = turn.t("【超期】") if is_overdue(c, now) else ""
        lines.append(f"{mark}{c.number} {turn.t(STATUS_LABELS[c.status])} {turn.t('时限')} {local(turn.ctx, c.deadline_at)}")
    if len(rows) > OVERVIEW_LIMIT:
        lines.append(turn.t("……只列出前 {n} 件。", n=OVERVIEW_LIMIT))
    await turn.say("\n".join(lines))


@command("standin", "网格长指定代理人（/standin 姓名或编码；/standin off 取消）", private=False, group=True,
         roles=LEADERS)
async def standin(turn: Turn) -> None:
    node = await group_node(turn)
    if turn.person is None or not await has_role(turn.ctx, turn.person.id, node, {Role.leader}, {Role.leader}):
        raise NotAllowed("只有 {node} 的网格长可以指定代理人。", node=node.name)
    who = turn.text.strip()
    if not who:
        raise Invalid("请写上代理人的姓名或编码，例如：/standin 张三")
    if who.lower() == "off":
        await turn.session.execute(delete(Assignment).where(Assignment.node_id == node.id,
                                                            Assignment.role == Role.standin))
        await turn.say(turn.t("已取消 {node} 的代理人。", node=node.name))
        return
    people = (await turn.session.execute(
        select(Person).where(Person.code.is_not(None), or_(Person.code == who, Person.name == who))
    )).scalars().all()
    if len(people) != 1:
        raise Invalid("找不到唯一一位名为「{who}」的工作人员，请用编码。", who=who)
    exists = (await turn.session.execute(select(Assignment.id).where(
        Assignment.node_id == node.id, Assignment.person_id == people[0].id, Assignment.role == Role.standin)
    )).first()
    if exists is None:
        turn.session.add(Assignment(node_id=node.id, person_id=people[0].id, role=Role.standin))
    await turn.say(turn.t("{name} 已被指定为 {node} 的代理人，可以代网格长处理事件。", name=people[0].name,
                          node=node.name))
