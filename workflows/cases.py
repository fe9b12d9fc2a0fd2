"""The case loop (七步闭环): one function per action.

Each action checks who may do it, changes the case, appends a case event and writes the
messages it causes to the outbox — all in the caller's transaction.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import func, select

from . import cards, media, rollup
from .context import Ctx
from .deadlines import compute_deadline, reset_checks, stop_checks
from .errors import Invalid, NotAllowed, NotFound, WrongState
from .models import OPEN_STATUSES, Case, CaseEvent, CaseStatus, Category, Node, Person, Team, Urgency
from .numbering import next_number
from .tree import (
    DISPATCH_ROLES_HERE,
    GRID_LEVELS,
    ancestors,
    can_dispatch,
    children,
    dispatcher_title,
    get_node,
    team_member_ids,
)

MAX_TEXT = 2000
RATINGS = ("satisfied", "basic", "unsatisfied")
S = CaseStatus


# ---------------------------------------------------------------- helpers

async def get_case(ctx: Ctx, case_id: int, *, lock: bool = False) -> Case:
    stmt = select(Case).where(Case.id == case_id)
    if lock:
        stmt = stmt.with_for_update()
    case = (await ctx.session.execute(stmt)).scalar_one_or_none()
    if case is None:
        raise NotFound("找不到该事件。")
    return case


async def case_by_number(ctx: Ctx, number: str) -> Case:
    number = number.strip().upper()
    case = (await ctx.session.execute(select(Case).where(Case.number == number))).scalar_one_or_none()
    if case is None:
        raise NotFound("找不到编号为 {number} 的事件。", number=number)
    return case


def clean_text(value: str | None, what: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    value = (value or "").strip()
    if required and not value:
        raise Invalid("{what}不能为空。", what=what)
    if len(value) > limit:
        raise Invalid("{what}太长了（{n} 字），请控制在 {limit} 字以内。", what=what, n=len(value), limit=limit)
    return value


def _expect(case: Case, *allowed: str) -> None:
    if case.status not in allowed:
        raise WrongState(
            "事件 {number} 当前状态为「{status}」，不能进行此操作。",
            number=case.number,
            status=cards.STATUS_LABELS.get(case.status, case.status),
        )


async def _event(ctx: Ctx, case: Case, actor_id: int | None, action: str, note: str | None = None,
                 attachments: list | None = None, **data: object) -> CaseEvent:
    ev = CaseEvent(
        case_id=case.id,
        at=ctx.now(),
        actor_id=actor_id,
        action=action,
        note=note,
        attachments=attachments or [],
        channel=ctx.via_channel,
        chat_id=ctx.via_chat,
        data=data,
    )
    ctx.session.add(ev)
    await media.link(ctx, case.id, attachments)  # its photos become the case's evidence
    case.version = (case.version or 0) + 1
    await rollup.apply_cases(ctx.session, [case.id])  # the indicators change with the event
    from .open311 import on_case_event  # a case posted through the API pushes each step to its webhook

    await on_case_event(ctx, case, ev)
    return ev


async def _need_dispatcher(ctx: Ctx, actor_id: int, case: Case) -> Node:
    node = await get_node(ctx, case.level_node_id)
    if not await can_dispatch(ctx, actor_id, node):
        raise NotAllowed("只有 {node} 的{role}（或其指定的代理人）可以进行此操作。", node=node.name,
                         role=dispatcher_title(node))
    return node


async def is_assignee(ctx: Ctx, actor_id: int, case: Case) -> bool:
    """The person it was dispatched to, or their A/B partner while they are on leave; for a team,
    any member until one of them takes it."""
    if case.assignee_id is not None:
        if case.assignee_id == actor_id:
            return True
        from .routines.leave import covering  # the partner who gets the reminders may also act

        return actor_id != case.assignee_id and await covering(ctx, case.assignee_id) == actor_id
    return case.team_id is not None and actor_id in await team_member_ids(ctx, case.team_id)


def checks_on_site(actor_id: int | None, case: Case) -> bool:
    """A patrol find may be verified by the worker who found it, when someone else handled it."""
    return case.source == "patrol" and case.reporter_id == actor_id and case.assignee_id != actor_id


async def may_verify(ctx: Ctx, actor_id: int | None, case: Case) -> bool:
    """The holder's dispatchers verify; a patrol case may also be checked by the worker who found it."""
    return checks_on_site(actor_id, case) or await can_dispatch(ctx, actor_id, await get_node(ctx, case.level_node_id))


async def need_assignee(ctx: Ctx, actor_id: int, case: Case) -> None:
    if await is_assignee(ctx, actor_id, case):
        return
    if case.team_id is not None and case.assignee_id is not None \
            and actor_id in await team_member_ids(ctx, case.team_id):
        # a team member pressing an old task button after a colleague took it (issue 9.8)
        taker = await ctx.session.get(Person, case.assignee_id)
        raise WrongState("事件 {number} 已由 {name} 接收办理，您无需再处理。", number=case.number, name=taker.name)
    raise NotAllowed("只有该事件的承办人可以进行此操作。")




def _need_reporter(actor_id: int, case: Case) -> None:
    if case.reporter_id is None or case.reporter_id != actor_id:
        raise NotAllowed("只有该事件的上报人可以进行此操作。")


async def _set_deadline(ctx: Ctx, case: Case, category: Category, grid: Node, days: int | None = None) -> None:
    start = case.registered_at or ctx.now()
    case.deadline_at = compute_deadline(start, category, case.urgency, grid.timezone or ctx.timezone, days)
    await reset_checks(ctx, case)


async def _register(ctx: Ctx, case: Case, actor_id: int, note: str | None = None) -> None:
    case.status = S.registered
    case.registered_at = ctx.now()
    category = await ctx.session.get(Category, case.category_id)
    grid = await get_node(ctx, case.grid_id)
    await _set_deadline(ctx, case, category, grid)
    await _event(ctx, case, actor_id, "registered", note)


# ---------------------------------------------------------------- 1. report

async def report(
    ctx: Ctx,
    *,
    reporter_id: int | None,
    category_id: int,
    description: str,
    grid_id: int,
    attachments: list | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    address: str | None = None,
    anonymous: bool = False,
    contact_phone: str | None = None,
    urgency: str | None = None,
    source: str = "resident",
) -> Case:
    description = clean_text(description, "问题描述")
    category = await ctx.session.get(Category, category_id)
    if category is None:
        raise NotFound("找不到该问题类别。")
    grid = await get_node(ctx, grid_id)
    if grid.level not in GRID_LEVELS:
        raise Invalid("事件只能上报到网格，{node} 不是网格。", node=grid.name)
    now = ctx.now()
    case = Case(
        number=await next_number(ctx, grid, now),
        grid_id=grid.id,
        level_node_id=grid.id,
        category_id=category.id,
        description=description,
        status=S.reported,
        urgency=urgency or category.urgency or Urgency.normal,
        source=source,
        reporter_id=reporter_id,
        anonymous=anonymous,
        contact_phone=contact_phone,
        latitude=latitude,
        longitude=longitude,
        address=address,
        attachments=list(attachments or []),
        created_at=now,
        card_nodes=[grid.id],
        rework_count=0,
        reopen_count=0,
        version=0,
    )
    ctx.session.add(case)
    await ctx.session.flush()
    await _event(ctx, case, reporter_id, "reported", description, attachments, source=source)
    await cards.refresh(ctx, case)
    return case


# ---------------------------------------------------------------- 2. register

async def register(ctx: Ctx, actor_id: int, case_id: int, *, urgency: str | None = None,
                   days: int | None = None) -> Case:
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported)
    if urgency:
        if urgency not in Urgency.__members__:
            raise Invalid("紧急程度只能是 normal、urgent 或 major。")
        case.urgency = urgency
    await _register(ctx, case, actor_id)
    if days:
        category = await ctx.session.get(Category, case.category_id)
        await _set_deadline(ctx, case, category, await get_node(ctx, case.grid_id), days)
    await cards.refresh(ctx, case)
    await cards.tell_reporter(ctx, case, "registered")
    return case


async def ask_more(ctx: Ctx, actor_id: int, case_id: int, question: str) -> Case:
    question = clean_text(question, "需要补充的内容")
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported)
    if case.reporter_id is None:
        raise Invalid("该事件没有可联系的上报人，无法要求补充。")
    case.status = S.needs_info
    await _event(ctx, case, actor_id, "asked_more", question)
    await cards.refresh(ctx, case)
    await cards.ask_reporter_more(ctx, case, question)
    return case


async def supplement(ctx: Ctx, actor_id: int, case_id: int, text: str, attachments: list | None = None) -> Case:
    text = clean_text(text, "补充说明", required=not attachments)
    case = await get_case(ctx, case_id, lock=True)
    _need_reporter(actor_id, case)
    _expect(case, S.needs_info)
    case.status = S.reported
    if attachments:
        case.attachments = [*case.attachments, *attachments]
    await _event(ctx, case, actor_id, "supplemented", text, attachments)
    await cards.refresh(ctx, case)
    return case


async def decline(ctx: Ctx, actor_id: int, case_id: int, reason: str) -> Case:
    reason = clean_text(reason, "不予立案的理由")
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported, S.needs_info)
    case.status = S.declined
    case.closed_at = ctx.now()
    await _event(ctx, case, actor_id, "declined", reason)
    await cards.refresh(ctx, case)
    await cards.tell_reporter(ctx, case, "declined", reason)
    return case


# ---------------------------------------------------------------- 3. dispatch

async def dispatch(ctx: Ctx, actor_id: int, case_id: int, *, assignee_id: int | None = None,
                   team_id: int | None = None, note: str | None = None) -> Case:
    if (assignee_id is None) == (team_id is None):
        raise Invalid("请选择一名承办人或一个处置团队。")
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported, S.registered)
    if case.status == S.reported:
        await _register(ctx, case, actor_id)
    target_name: str
    cover_note: str | None = None
    if assignee_id is not None:
        from .routines.leave import covering  # A/B cover: a worker on leave gets no new work

        covered = await covering(ctx, assignee_id)
        if covered != assignee_id:
            away = await ctx.session.get(Person, assignee_id)
            cover_note = f"{away.name if away else assignee_id} 请假，由A/B岗代岗"
            assignee_id = covered
        person = await ctx.session.get(Person, assignee_id)
        if person is None or person.code is None:
            raise NotFound("找不到该承办人。")
        target_name = person.name
    else:
        team = await ctx.session.get(Team, team_id)
        if team is None:
            raise NotFound("找不到该处置团队。")
        target_name = team.name
    case.assignee_id = assignee_id
    case.team_id = team_id
    case.status = S.dispatched
    case.dispatched_at = ctx.now()
    await _event(ctx, case, actor_id, "dispatched", "；".join(filter(None, [note, cover_note])) or None,
                 assignee_id=assignee_id, team_id=team_id, to=target_name)
    await cards.refresh(ctx, case)
    await cards.tell_assignees(ctx, case, note)
    await cards.tell_reporter(ctx, case, "dispatched")
    return case


async def dispatch_choices(ctx: Ctx, case: Case) -> tuple[list[Person], list[Team], int | None]:
    """Whom the case may be dispatched to from its holding node: a grid's workers and the teams
    serving the grid; from an upper level any department's team. Teams come with the category's
    default team first (its id is the third value), so the usual choice is the first."""
    from .models import TeamGrid
    from .tree import workers_of

    node = await get_node(ctx, case.level_node_id)
    workers = await workers_of(ctx, node.id) if node.level in GRID_LEVELS else []
    teams = select(Team)  # upper levels may send any department's team
    if node.level in GRID_LEVELS:
        teams = teams.join(TeamGrid, TeamGrid.team_id == Team.id).where(TeamGrid.node_id == node.id)
    category = await ctx.session.get(Category, case.category_id)
    found = list((await ctx.session.execute(teams.order_by(Team.code))).scalars())
    found.sort(key=lambda team: team.id != category.default_team_id)
    return workers, found, category.default_team_id


async def escalate(ctx: Ctx, actor_id: int, case_id: int, reason: str) -> Case:
    """上报: pass the case one level up the tree."""
    reason = clean_text(reason, "上报理由")
    case = await get_case(ctx, case_id, lock=True)
    node = await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported, S.registered)
    if node.parent_id is None:
        raise WrongState("{node} 已是最高一级，无法继续上报。", node=node.name)
    if case.status == S.reported:
        await _register(ctx, case, actor_id)
    upper = await get_node(ctx, node.parent_id)
    await _move_up(ctx, case, actor_id, "escalated", upper, reason, from_node=node.name)
    return case


async def direct_report(ctx: Ctx, actor_id: int, case_id: int, reason: str) -> Case:
    """直报: urgent, major or sudden events go straight to the command centre; every level is told."""
    reason = clean_text(reason, "直报理由")
    case = await get_case(ctx, case_id, lock=True)
    node = await get_node(ctx, case.level_node_id)
    allowed = await can_dispatch(ctx, actor_id, node) or await is_assignee(ctx, actor_id, case)
    if not allowed:
        raise NotAllowed("只有网格长、承办人或上级中心人员可以直报指挥中心。")
    _expect(case, *OPEN_STATUSES)
    chain = await ancestors(ctx, node)
    if not chain:
        raise WrongState("{node} 已是指挥中心，无需直报。", node=node.name)
    if case.status in (S.reported, S.needs_info):
        await _register(ctx, case, actor_id)
    case.urgency = Urgency.urgent
    case.assignee_id = None
    case.team_id = None
    centre = chain[-1]
    for passed in chain[:-1]:
        if passed.id not in case.card_nodes:
            case.card_nodes = [*case.card_nodes, passed.id]
    await _move_up(ctx, case, actor_id, "direct_report", centre, reason, from_node=node.name)
    return case


async def _move_up(ctx: Ctx, case: Case, actor_id: int, action: str, upper: Node, reason: str,
                   from_node: str) -> None:
    case.level_node_id = upper.id
    case.status = S.registered
    case.assignee_id = None
    case.team_id = None
    if upper.id not in case.card_nodes:
        case.card_nodes = [*case.card_nodes, upper.id]
    await _event(ctx, case, actor_id, action, reason, to_node=upper.id, to=upper.name, frm=from_node)
    await cards.refresh(ctx, case)
    await cards.tell_reporter(ctx, case, action)


async def send_down(ctx: Ctx, actor_id: int, case_id: int, node_id: int, note: str | None = None) -> Case:
    """下派: an upper level hands the case to a node below it."""
    case = await get_case(ctx, case_id, lock=True)
    here = await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.registered)
    target = await get_node(ctx, node_id)
    if here.id not in {n.id for n in await ancestors(ctx, target)}:
        raise Invalid("只能下派给本级以下的节点。")
    case.level_node_id = target.id
    if target.id not in case.card_nodes:
        case.card_nodes = [*case.card_nodes, target.id]
    await _event(ctx, case, actor_id, "sent_down", note, to_node=target.id, to=target.name, frm=here.name)
    await cards.refresh(ctx, case)
    await cards.tell_sent_down(ctx, case, here, target, note)
    return case


async def send_down_targets(ctx: Ctx, actor_id: int | None, case: Case) -> list[Node]:
    """Where this person may send the case down (下派) now, in the order offered: the grid where it
    happened (when it lies below the holder), then the holder's own children. None unless the case
    waits for dispatch at a level they dispatch for. The chat and the console both offer these."""
    if actor_id is None or case.status != S.registered:
        return []
    level = await get_node(ctx, case.level_node_id)
    if not await can_dispatch(ctx, actor_id, level):
        return []
    below = await children(ctx, level.id)
    if case.grid_id != level.id and case.grid_id not in {n.id for n in below}:
        grid = await get_node(ctx, case.grid_id)
        if level.id in {n.id for n in await ancestors(ctx, grid)}:
            below.insert(0, grid)
    return below


# ---------------------------------------------------------------- 4. handle

async def accept(ctx: Ctx, actor_id: int, case_id: int) -> Case:
    case = await get_case(ctx, case_id, lock=True)
    await need_assignee(ctx, actor_id, case)
    _expect(case, S.dispatched)
    case.assignee_id = actor_id  # a team member who accepts becomes the one responsible
    case.status = S.in_progress
    await _event(ctx, case, actor_id, "accepted")
    await cards.refresh(ctx, case)
    if case.team_id is not None:
        await cards.tell_team_taken(ctx, case)
    return case


async def hand_back(ctx: Ctx, actor_id: int, case_id: int, reason: str) -> Case:
    reason = clean_text(reason, "退回理由")
    case = await get_case(ctx, case_id, lock=True)
    await need_assignee(ctx, actor_id, case)
    _expect(case, S.dispatched, S.in_progress)
    case.status = S.registered
    case.assignee_id = None
    case.team_id = None
    await _event(ctx, case, actor_id, "handed_back", reason)
    await cards.refresh(ctx, case)
    return case


async def reveal_contact(ctx: Ctx, actor_id: int, case_id: int) -> str:
    """The reporter's number, for the assignee of an open case only; the look-up is recorded."""
    case = await get_case(ctx, case_id)
    await need_assignee(ctx, actor_id, case)
    _expect(case, S.dispatched, S.in_progress)
    phone = await cards.reporter_phone(ctx, case)
    if phone is None:
        raise Invalid("上报人没有留下联系电话。")
    await _event(ctx, case, actor_id, "contact_revealed")
    return phone


# ---------------------------------------------------------------- 5. feed back

async def finish(ctx: Ctx, actor_id: int, case_id: int, result: str, attachments: list | None = None) -> Case:
    result = clean_text(result, "处理结果")
    case = await get_case(ctx, case_id, lock=True)
    await need_assignee(ctx, actor_id, case)
    _expect(case, S.dispatched, S.in_progress)
    case.assignee_id = actor_id
    case.status = S.resolved
    case.result = result
    case.resolved_at = ctx.now()
    await _event(ctx, case, actor_id, "resolved", result, attachments)
    await cards.refresh(ctx, case)
    if attachments:
        await cards.show_result_media(ctx, case, attachments)
    return case


# ---------------------------------------------------------------- 6. verify and close

async def verify(ctx: Ctx, actor_id: int, case_id: int, *, passed: bool, reason: str | None = None) -> Case:
    case = await get_case(ctx, case_id, lock=True)
    if not await may_verify(ctx, actor_id, case):
        node = await get_node(ctx, case.level_node_id)
        raise NotAllowed("只有 {node} 的{role}（或其指定的代理人）可以核查。", node=node.name,
                         role=dispatcher_title(node))
    _expect(case, S.resolved)
    if passed:
        case.status = S.closed
        case.closed_at = ctx.now()
        await stop_checks(ctx, case)
        await _event(ctx, case, actor_id, "verified", reason)
        await cards.refresh(ctx, case)
        await cards.tell_verified(ctx, case)
        await cards.ask_rating(ctx, case)
        await cards.tell_merged_reporters(ctx, case)
    else:
        reason = clean_text(reason, "返工理由")
        case.status = S.in_progress
        case.rework_count += 1
        case.resolved_at = None
        case.result = None  # the rejected result stays in the history, not on the card (issue 9.5)
        await _event(ctx, case, actor_id, "rework", reason)
        await cards.refresh(ctx, case)
        await cards.tell_rework(ctx, case, reason)
    return case


# ---------------------------------------------------------------- 7. evaluate

async def rate(ctx: Ctx, actor_id: int, case_id: int, rating: str, comment: str | None = None) -> Case:
    if rating not in RATINGS:
        raise Invalid("评价只能是：满意、基本满意、不满意。")
    comment = clean_text(comment, "评价内容", required=False) or None
    case = await get_case(ctx, case_id, lock=True)
    need_rateable(actor_id, case)
    case.rating = rating
    case.rating_comment = comment
    await _event(ctx, case, actor_id, "rated", comment, rating=rating)
    if rating == "unsatisfied":
        await _not_fixed(ctx, case, comment)
    await cards.refresh(ctx, case)
    return case


def need_rateable(actor_id: int, case: Case) -> None:
    """The reporter rates a closed case once (a reopened one again when it closes next)."""
    _need_reporter(actor_id, case)
    _expect(case, S.closed)
    if case.rating is not None:
        raise WrongState("事件 {number} 已经评价过了。", number=case.number)


async def _not_fixed(ctx: Ctx, case: Case, comment: str | None) -> None:
    """A "not fixed" answer must go somewhere (issue 9.4): the first one back to the grid's leader
    to re-dispatch; each further one a level up for supervision (督办), the top level keeping it."""
    former = await cards.assignee_ids(ctx, case)
    closed_at = case.level_node_id
    case.reopen_count += 1
    case.rating = None
    case.status = S.registered
    case.assignee_id = None
    case.team_id = None
    case.closed_at = None
    case.result = None  # the result the resident rejected stays in the history (issue 9.5)
    case.resolved_at = None
    case.registered_at = ctx.now()
    category = await ctx.session.get(Category, case.category_id)
    grid = await get_node(ctx, case.grid_id)
    await _set_deadline(ctx, case, category, grid)
    if case.reopen_count == 1:
        case.level_node_id = case.grid_id
        await _event(ctx, case, None, "reopened", comment)
        await cards.tell_reopened(ctx, case, comment, former)
        return
    # one level above whoever supervised it last (a case sent back down does not sink), else above the closer
    last = (await ctx.session.execute(
        select(CaseEvent.data).where(CaseEvent.case_id == case.id, CaseEvent.action == "supervised")
        .order_by(CaseEvent.id.desc()).limit(1))).scalar_one_or_none()
    here = await get_node(ctx, closed_at)
    if last and last["to_node"] in {n.id for n in await ancestors(ctx, here)}:
        here = await get_node(ctx, last["to_node"])
    upper = await get_node(ctx, here.parent_id) if here.parent_id is not None else here
    case.level_node_id = upper.id
    if upper.id not in case.card_nodes:
        case.card_nodes = [*case.card_nodes, upper.id]
    await _event(ctx, case, None, "supervised", comment, to_node=upper.id, to=upper.name, frm=here.name)
    await cards.tell_supervised(ctx, case, comment, here, former)


async def comment_rating(ctx: Ctx, actor_id: int, case_id: int, comment: str) -> Case:
    comment = clean_text(comment, "评价内容")
    case = await get_case(ctx, case_id, lock=True)
    _need_reporter(actor_id, case)
    case.rating_comment = comment
    await _event(ctx, case, actor_id, "rating_comment", comment)
    return case


# ---------------------------------------------------------------- corrections

async def cancel(ctx: Ctx, actor_id: int, case_id: int, reason: str | None = None) -> Case:
    case = await get_case(ctx, case_id, lock=True)
    _need_reporter(actor_id, case)
    _expect(case, S.reported, S.needs_info)
    case.status = S.cancelled
    case.closed_at = ctx.now()
    await _event(ctx, case, actor_id, "cancelled", reason)
    await cards.refresh(ctx, case)
    return case


async def merge(ctx: Ctx, actor_id: int, case_id: int, into_number: str, reason: str | None = None) -> Case:
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported, S.needs_info, S.registered)
    main = await case_by_number(ctx, into_number)
    if main.id == case.id:
        raise Invalid("不能把事件合并到它自己。")
    if main.status not in OPEN_STATUSES:
        raise WrongState("只能合并到仍在办理中的事件，{number} 已结束。", number=main.number)
    case.status = S.merged
    case.merged_into_id = main.id
    case.closed_at = ctx.now()
    await _event(ctx, case, actor_id, "merged", reason, into=main.number)
    await _event(ctx, main, actor_id, "merged_in", reason, source=case.number)
    await cards.refresh(ctx, case)
    await cards.refresh(ctx, main)
    await cards.tell_reporter(ctx, case, "merged", main.number)
    return case


async def move_category(ctx: Ctx, actor_id: int, case_id: int, category_id: int, reason: str) -> Case:
    reason = clean_text(reason, "改类别的理由")
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, *OPEN_STATUSES)
    category = await ctx.session.get(Category, category_id)
    if category is None:
        raise NotFound("找不到该问题类别。")
    if category.id == case.category_id:
        raise Invalid("事件已经是这个类别了。")
    old = await ctx.session.get(Category, case.category_id)
    case.category_id = category.id
    if case.registered_at is not None:
        await _set_deadline(ctx, case, category, await get_node(ctx, case.grid_id))
    await _event(ctx, case, actor_id, "moved_category", reason, frm=old.name, to=category.name)
    await cards.refresh(ctx, case)
    return case


async def move_grid(ctx: Ctx, actor_id: int, case_id: int, grid_id: int, reason: str) -> Case:
    reason = clean_text(reason, "改网格的理由")
    case = await get_case(ctx, case_id, lock=True)
    await _need_dispatcher(ctx, actor_id, case)
    _expect(case, S.reported, S.needs_info, S.registered)
    target = await get_node(ctx, grid_id)
    if target.level not in GRID_LEVELS:
        raise Invalid("{node} 不是网格。", node=target.name)
    if target.id == case.grid_id:
        raise Invalid("事件已经在这个网格了。")
    old = await get_node(ctx, case.grid_id)
    at_grid = case.level_node_id == case.grid_id
    case.grid_id = target.id
    if at_grid:
        case.level_node_id = target.id
    case.card_nodes = [*case.card_nodes, target.id] if target.id not in case.card_nodes else case.card_nodes
    await _event(ctx, case, actor_id, "moved_grid", reason, frm=old.name, to=target.name)
    await cards.refresh(ctx, case)
    return case


# ---------------------------------------------------------------- queries

# ---------------------------------------------------------------- supervision and remarks from above

async def may_urge(ctx: Ctx, actor_id: int | None, case: Case) -> Node | None:
    """督办: a dispatcher of a level above the one holding an open case may press it; the node
    they urge from (their own, nearest above), or None."""
    if actor_id is None or case.status not in OPEN_STATUSES:
        return None
    from .tree import DISPATCH_ROLES_ABOVE, roles_of

    held = {nid for nid, role in await roles_of(ctx, actor_id) if role in DISPATCH_ROLES_ABOVE}
    level = await get_node(ctx, case.level_node_id)
    return next((n for n in await ancestors(ctx, level) if n.id in held), None)


async def urge(ctx: Ctx, actor_id: int, case_id: int, note: str) -> Case:
    """上级督办: the level above presses the holder of an open case; the card shows it and the
    assignee is told."""
    note = clean_text(note, "督办意见")
    case = await get_case(ctx, case_id, lock=True)
    node = await may_urge(ctx, actor_id, case)
    if node is None:
        if case.status not in OPEN_STATUSES:
            _expect(case, *OPEN_STATUSES)
        raise NotAllowed("只有上级的网格长或指挥中心工作人员可以督办该事件。")
    await _event(ctx, case, actor_id, "urged", note, frm=node.name)
    await cards.refresh(ctx, case)
    await cards.tell_urged(ctx, case, node, note)
    return case


async def may_comment(ctx: Ctx, actor_id: int | None, case: Case) -> bool:
    """A remark (批注) on the case file: staff whose nodes cover the case's grid or holder."""
    from .scope import node_covered, staff_paths

    paths = await staff_paths(ctx, actor_id)
    return bool(paths) and (await node_covered(ctx, paths, await get_node(ctx, case.grid_id))
                            or await node_covered(ctx, paths, await get_node(ctx, case.level_node_id)))


async def comment(ctx: Ctx, actor_id: int, case_id: int, text: str) -> Case:
    """批注: a staff remark kept in the case's timeline and shown on its card; it changes nothing else."""
    text = clean_text(text, "批注内容")
    case = await get_case(ctx, case_id, lock=True)
    if not await may_comment(ctx, actor_id, case):
        raise NotAllowed("只有负责该网格或其上级的工作人员可以批注。")
    await _event(ctx, case, actor_id, "commented", text)
    await cards.refresh(ctx, case)
    return case


async def cases_of_reporter(ctx: Ctx, person_id: int, limit: int = 10) -> list[Case]:
    rows = await ctx.session.execute(
        select(Case).where(Case.reporter_id == person_id).order_by(Case.created_at.desc(), Case.id.desc()).limit(limit)
    )
    return list(rows.scalars())


async def inbox(ctx: Ctx, person_id: int) -> list[tuple[Case, str]]:
    """What waits for this person (issue 9.2), overdue first: each case with why — "register",
    "dispatch", "redispatch" (after a reopen or supervision), "verify", "task" (their own),
    "cover" (the task of an A/B partner on leave) or "supervise" (a red card below, see
    awaiting_supervision).

    The candidates are the open cases held at a node where the person has a dispatching role;
    can_dispatch / may_verify then decide, so the rule stays the one every action checks."""
    from .models import Assignment

    here = select(Assignment.node_id).where(Assignment.person_id == person_id,
                                            Assignment.role.in_([str(r) for r in DISPATCH_ROLES_HERE]))
    held = select(Case).where(Case.status.in_([S.reported, S.registered, S.resolved]),
                              Case.level_node_id.in_(here))
    patrol = select(Case).where(Case.status == S.resolved, Case.source == "patrol", Case.reporter_id == person_id)
    found: dict[int, tuple[Case, str]] = {}
    allowed: dict[int, bool] = {}  # can_dispatch per holding node: one check, not one per case

    async def dispatcher_at(node_id: int) -> bool:
        if node_id not in allowed:
            allowed[node_id] = await can_dispatch(ctx, person_id, await get_node(ctx, node_id))
        return allowed[node_id]

    for case in [*(await ctx.session.execute(held)).scalars(), *(await ctx.session.execute(patrol)).scalars()]:
        if case.id in found:
            continue
        if case.status == S.resolved:
            if checks_on_site(person_id, case) or await dispatcher_at(case.level_node_id):
                found[case.id] = (case, "verify")
        elif await dispatcher_at(case.level_node_id):
            why = "register" if case.status == S.reported else ("redispatch" if case.reopen_count else "dispatch")
            found[case.id] = (case, why)
    for case in await open_tasks(ctx, person_id):
        found.setdefault(case.id, (case, "task"))
    for case in await awaiting_supervision(ctx, person_id):
        found.setdefault(case.id, (case, "supervise"))
    from .routines.leave import covers_on, today

    for away, cover in (await covers_on(ctx, today(ctx))).items():
        if cover == person_id:  # A/B post: the partner on leave's open tasks
            for case in await open_tasks(ctx, away):
                if case.assignee_id == away:
                    found.setdefault(case.id, (case, "cover"))
    now = ctx.now()
    return sorted(found.values(), key=lambda item: (not is_overdue(item[0], now),
                                                    item[0].deadline_at or item[0].created_at, item[0].id))


async def awaiting_supervision(ctx: Ctx, person_id: int) -> list[Case]:
    """Red-carded open cases held one level below a node where this person leads or staffs the
    centre — where the deadline sweep's 【督办】 notice went — that nobody has urged (督办) since
    the red card. The holder's parent is one of the ancestors may_urge looks through, so each of
    these may be urged by this person: one query for all, not may_urge per case."""
    from .deadlines import RED
    from .models import Assignment, CaseDeadline
    from .tree import DISPATCH_ROLES_ABOVE

    mine = select(Assignment.node_id).where(Assignment.person_id == person_id,
                                            Assignment.role.in_([str(r) for r in DISPATCH_ROLES_ABOVE]))
    red = list((await ctx.session.execute(
        select(Case).join(Node, Node.id == Case.level_node_id).join(CaseDeadline, CaseDeadline.case_id == Case.id)
        .where(Node.parent_id.in_(mine), Case.status.in_([str(x) for x in OPEN_STATUSES]),
               CaseDeadline.stage >= RED))).scalars())
    if not red:
        return []
    last = {(cid, action): at for cid, action, at in await ctx.session.execute(
        select(CaseEvent.case_id, CaseEvent.action, func.max(CaseEvent.at))
        .where(CaseEvent.case_id.in_([c.id for c in red]), CaseEvent.action.in_(["red_card", "urged"]))
        .group_by(CaseEvent.case_id, CaseEvent.action))}
    def waiting(case: Case) -> bool:
        carded, urged = last.get((case.id, "red_card")), last.get((case.id, "urged"))
        return urged is None or (carded is not None and urged < carded)

    return [case for case in red if waiting(case)]


async def open_tasks(ctx: Ctx, person_id: int) -> list[Case]:
    """Cases dispatched to the person, or to a team of theirs that nobody has taken yet.

    Two indexed queries (assignee_id, team_id) rather than one OR, which would scan every open case."""
    from .models import TeamMember

    teams = select(TeamMember.team_id).where(TeamMember.person_id == person_id)
    active = Case.status.in_([S.dispatched, S.in_progress])
    mine = select(Case).where(active, Case.assignee_id == person_id)
    team = select(Case).where(active, Case.team_id.in_(teams), Case.assignee_id.is_(None))
    found = {c.id: c for q in (mine, team) for c in (await ctx.session.execute(q)).scalars()}
    return sorted(found.values(), key=lambda c: (c.deadline_at is None, c.deadline_at or c.created_at, c.id))


async def history(ctx: Ctx, case_id: int) -> list[CaseEvent]:
    rows = await ctx.session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.at, CaseEvent.id)
    )
    return list(rows.scalars())


async def can_view(ctx: Ctx, person_id: int, case: Case) -> bool:
    if case.reporter_id == person_id or await is_assignee(ctx, person_id, case):
        return True
    if case.team_id is not None and person_id in await team_member_ids(ctx, case.team_id):
        return True  # a team member whose colleague took the case still follows it
    from .scope import node_covered, staff_paths  # the one scope rule, also the console's SQL

    paths = await staff_paths(ctx, person_id)
    if not paths:
        return False
    if await node_covered(ctx, paths, await get_node(ctx, case.grid_id)):
        return True
    return await node_covered(ctx, paths, await get_node(ctx, case.level_node_id))


NUMBER_RE = re.compile(r"\b[A-Za-z0-9]{1,16}-\d{8}-\d{3,}\b")


def find_number(text: str) -> str | None:
    m = NUMBER_RE.search(text or "")
    return m.group(0).upper() if m else None


def is_overdue(case: Case, now: datetime) -> bool:
    return case.deadline_at is not None and case.status in OPEN_STATUSES and now > case.deadline_at
