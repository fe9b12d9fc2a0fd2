"""What people are told about a case: the group card and the private notices.

The card for a node's group is re-rendered after every change and written with a card key,
so the delivery worker edits the posted card in place instead of posting a new one.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from . import maps
from .context import Ctx
from .i18n import T, _, category_name, category_referral
from .models import Case, CaseEvent, CaseStatus, Category, Node, Person, Split, Team
from .outbox import Msg, button, to_group, to_person
from .tree import dispatcher_title, team_member_ids

S = CaseStatus
HISTORY_LINES = 12

STATUS_LABELS = {
    S.reported: _("待立案"),
    S.needs_info: _("待补充材料"),
    S.registered: _("已立案，待派遣"),
    S.dispatched: _("已派遣，待接收"),
    S.in_progress: _("处置中"),
    S.resolved: _("已办结，待核查"),
    S.closed: _("已结案"),
    S.declined: _("未予立案"),
    S.cancelled: _("已撤销"),
    S.merged: _("已合并"),
}

ACTION_LABELS = {
    "reported": _("上报"),
    "registered": _("立案"),
    "asked_more": _("要求补充"),
    "supplemented": _("补充材料"),
    "declined": _("不予立案"),
    "dispatched": _("派遣"),
    "accepted": _("接收"),
    "handed_back": _("退回"),
    "resolved": _("反馈办结"),
    "verified": _("核查通过"),
    "rework": _("返工"),
    "escalated": _("上报上级"),
    "direct_report": _("直报指挥中心"),
    "sent_down": _("下派"),
    "rated": _("评价"),
    "rating_comment": _("补充评价"),
    "reopened": _("重新办理"),
    "supervised": _("转上级督办"),
    "contact_revealed": _("查看上报人电话"),
    "merged": _("合并"),
    "merged_in": _("并入重复事件"),
    "moved_category": _("改类别"),
    "moved_grid": _("改网格"),
    "cancelled": _("撤销"),
    "remind_50": _("催办（时限过半）"),
    "remind_80": _("催办（时限将至）"),
    "yellow_card": _("黄牌警告"),
    "red_card": _("红牌督办"),
    "urged": _("上级督办"),
    "commented": _("批注"),
}

RATING_LABELS = {"satisfied": _("满意"), "basic": _("基本满意"), "unsatisfied": _("不满意")}
URGENCY_LABELS = {"normal": _("一般"), "urgent": _("紧急"), "major": _("重大")}


def local(ctx: Ctx, at: datetime | None, fmt: str = "%m-%d %H:%M") -> str:
    if at is None:
        return "-"
    return at.astimezone(ZoneInfo(ctx.timezone)).strftime(fmt)


def mask_name(name: str | None) -> str:
    if not name:
        return "-"
    return name[0] + "*" * max(1, len(name) - 1)


def mask_phone(phone: str | None) -> str:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    if len(digits) < 7:
        return ""
    return f"{digits[:3]}****{digits[-4:]}"


async def _names(ctx: Ctx, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await ctx.session.execute(select(Person.id, Person.name).where(Person.id.in_(ids)))
    return {r[0]: r[1] for r in rows}


def actor_label(t: T, case: Case, actor_id: int | None, names: dict[int, str], *, public: bool = False,
                to_reporter: bool = False) -> str:
    """Who did a step, as a timeline shows it: staff by name, the reporter masked (王**), or
    "上报人" when anonymous or public, "您" to the reporter; "系统" for the sweeps."""
    who = names.get(actor_id, "") if actor_id else t("系统")
    if actor_id is not None and actor_id == case.reporter_id:
        who = t("您") if to_reporter else (t("上报人") if public or case.anonymous else mask_name(who))
    return who


async def event_lines(ctx: Ctx, t: T, case: Case, limit: int = HISTORY_LINES, public: bool = False,
                      to_reporter: bool = False) -> list[str]:
    """The timeline; `public` hides notes and names, `to_reporter` calls the reporter 您."""
    rows = await ctx.session.execute(
        select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.at, CaseEvent.id)
    )
    events = list(rows.scalars())
    names = await _names(ctx, {e.actor_id for e in events if e.actor_id})
    lines = []
    for e in events:
        who = actor_label(t, case, e.actor_id, names, public=public, to_reporter=to_reporter)
        label = t(ACTION_LABELS.get(e.action, e.action))
        extra = ""
        if e.data.get("to"):
            extra = f" → {e.data['to']}"
        if e.data.get("rating"):
            extra = f" {t(RATING_LABELS[e.data['rating']])}"  # "评价 不满意：reason", not two colons
        note = f"：{e.note}" if e.note and not public else ""
        if len(note) > 60:
            note = note[:60] + "…"
        # who first: "张伟 派遣 → 孙丽" cannot be read as two assignees
        lines.append(f"{local(ctx, e.at)} {who} {label}{extra}{note}".rstrip())
    if len(lines) > limit:
        lines = [t("…（前 {n} 条略）", n=len(lines) - limit), *lines[-limit:]]
    return lines


async def summary(ctx: Ctx, t: T, case: Case) -> str:
    category = await ctx.session.get(Category, case.category_id)
    status = t(STATUS_LABELS.get(case.status, case.status))
    return t("事件 {number}（{category}）：{status}", number=case.number, category=category_name(t, category), status=status)


async def card_text(ctx: Ctx, t: T, case: Case) -> str:
    category = await ctx.session.get(Category, case.category_id)
    grid = await ctx.session.get(Node, case.grid_id)
    level = await ctx.session.get(Node, case.level_node_id)
    lines = [
        t("【事件 {number}】{category} · {status}", number=case.number, category=category_name(t, category),
          status=t(STATUS_LABELS.get(case.status, case.status))),
        t("网格：{grid}", grid=grid.name),
    ]
    if level.id != grid.id:
        lines.append(t("当前办理：{node}", node=level.name))
    if case.urgency != "normal":
        lines.append(t("紧急程度：{u}", u=t(URGENCY_LABELS.get(case.urgency, case.urgency))))
    lines.append(t("描述：{text}", text=case.description))
    lines.extend(maps.place_lines(t, case))  # address, else coordinates; a map link
    if case.anonymous or case.reporter_id is None:
        lines.append(t("上报人：匿名"))
    else:
        reporter = await ctx.session.get(Person, case.reporter_id)
        phone = mask_phone(case.contact_phone or reporter.phone)
        lines.append(t("上报人：{name} {phone}", name=mask_name(reporter.name), phone=phone).rstrip())
    if case.attachments:
        lines.append(t("附件：{n} 个", n=len(case.attachments)))
    if case.deadline_at:
        lines.append(t("办结时限：{at}", at=local(ctx, case.deadline_at, "%Y-%m-%d %H:%M")))
    if case.assignee_id or case.team_id:
        lines.append(t("承办：{who}", who=await assignee_label(ctx, t, case)))
    if case.result:
        lines.append(t("处理结果：{text}", text=case.result))
    if case.status == S.resolved:
        lines.append(t("等待核查：{who}", who=await checker_label(ctx, t, case)))
    if case.rating:
        lines.append(t("评价：{r}", r=t(RATING_LABELS[case.rating])))
    if case.rating_comment and case.rating is None and case.reopen_count:
        lines.append(t("上报人不满意的原因：{c}", c=case.rating_comment))
    elif case.rating_comment:
        lines.append(t("上报人意见：{c}", c=case.rating_comment))
    lines.append(t("—— 进展 ——"))
    lines.extend(await event_lines(ctx, t, case))
    return "\n".join(lines)


async def assignee_label(ctx: Ctx, t: T, case: Case) -> str:
    """"城管中队（徐刚）" once a member has taken a team's case; the team or the person otherwise."""
    person = await ctx.session.get(Person, case.assignee_id) if case.assignee_id else None
    team = await ctx.session.get(Team, case.team_id) if case.team_id else None
    if team and person:
        return t("{team}（{person}）", team=team.name, person=person.name)
    return (team or person).name if (team or person) else "-"


async def checker_label(ctx: Ctx, t: T, case: Case) -> str:
    """Who verifies the result: the holder's role, or for a patrol find also the worker who found it."""
    level = await ctx.session.get(Node, case.level_node_id)
    who = t("{node}的{role}", node=level.name, role=t(dispatcher_title(level)))
    if case.source == "patrol" and case.reporter_id is not None and case.reporter_id != case.assignee_id:
        finder = await ctx.session.get(Person, case.reporter_id)
        who = t("{name}（现场核查）或{who}", name=finder.name, who=who)
    return who


def card_actions(case: Case, node_id: int) -> list[list[tuple[str, str]]]:
    """The leader's actions on the card of `node_id`, as rows of (label message id, action) —
    only on the card of the node that holds the case now. The chat's buttons and the web
    console's action list both come from here."""
    if node_id != case.level_node_id:
        return []
    if case.status == S.reported:
        return [
            [("立案", "case.register"), ("派遣", "case.assign")],
            [("要求补充", "case.ask_more"), ("不予立案", "case.decline")],
            [("上报上级", "case.escalate"), ("更多", "case.more")],
        ]
    if case.status == S.needs_info:
        return [[("不予立案", "case.decline"), ("更多", "case.more")]]
    if case.status == S.registered:
        return [[("派遣", "case.assign"), ("上报上级", "case.escalate")], [("更多", "case.more")]]
    if case.status in (S.dispatched, S.in_progress):
        return [[("更多", "case.more")]]
    if case.status == S.resolved:
        return [[("核查通过", "case.verify_pass"), ("返工", "case.rework")]]
    return []


async def card_buttons(ctx: Ctx, t: T, case: Case, node_id: int) -> list:
    """Leader's buttons — only on the card of the node that holds the case now."""
    ref = {"case_id": case.id, "status": case.status, "level": case.level_node_id}
    return [[await button(ctx, t(label), action, **ref) for label, action in row]
            for row in card_actions(case, node_id)]


async def refresh(ctx: Ctx, case: Case) -> None:
    """Re-render the case's card in every group that shows it."""
    await ctx.session.flush()
    for node_id in case.card_nodes or [case.grid_id]:
        async def compose(t: T, node_id: int = node_id) -> Msg:
            return Msg(
                await card_text(ctx, t, case),
                buttons=await card_buttons(ctx, t, case, node_id),
                media=list(case.attachments or []),
                update_text=await summary(ctx, t, case),
            )

        await to_group(ctx, node_id, compose, card_key=f"case:{case.id}:{node_id}")


async def show_result_media(ctx: Ctx, case: Case, attachments: list) -> None:
    """The card is edited as text only, so the after-photos go to the group on their own."""
    async def compose(t: T) -> Msg:
        return Msg(t("事件 {number} 处置后照片（{n} 个），请核查：", number=case.number, n=len(attachments)),
                   media=list(attachments))

    await to_group(ctx, case.level_node_id, compose)


async def tell_reporter(ctx: Ctx, case: Case, what: str, extra: str | None = None) -> None:
    if case.reporter_id is None:
        return

    async def compose(t: T) -> Msg:
        n = case.number
        if what == "registered":
            text = t("您上报的事件 {number} 已立案，预计 {at} 前办结。", number=n,
                     at=local(ctx, case.deadline_at, "%Y-%m-%d %H:%M"))
        elif what == "dispatched":
            # a case dispatched straight from 待立案 was registered on the way: this is the first promise
            text = t("您上报的事件 {number} 已派遣处理，预计 {at} 前办结。", number=n,
                     at=local(ctx, case.deadline_at, "%Y-%m-%d %H:%M"))
        elif what == "declined":
            text = await decline_text(ctx, t, case, extra)
        elif what in ("escalated", "direct_report"):
            level = await ctx.session.get(Node, case.level_node_id)
            text = t("您上报的事件 {number} 已上报至 {node} 协调办理。", number=n, node=level.name)
        elif what == "sent_down":
            level = await ctx.session.get(Node, case.level_node_id)
            text = t("您上报的事件 {number} 已交由 {node} 办理。", number=n, node=level.name)
            if case.deadline_at is not None:
                text += t("预计 {at} 前办结。", at=local(ctx, case.deadline_at, "%Y-%m-%d %H:%M"))
        elif what == "merged":
            text = t("您上报的事件 {number} 与事件 {main} 为同一问题，已合并办理，结果会一并告知您。",
                     number=n, main=extra)
        else:
            text = await summary(ctx, t, case)
        return Msg(text)

    await to_person(ctx, case.reporter_id, compose)


async def decline_text(ctx: Ctx, t: T, case: Case, reason: str | None) -> str:
    """A decline is never a dead end (issue 9.6): why, and where to turn instead."""
    category = await ctx.session.get(Category, case.category_id)
    lines = [t("您上报的事件 {number} 未予立案，理由：{reason}", number=case.number, reason=reason)]
    referral = category_referral(t, category)
    if category.split == Split.private:
        lines.append(t("这类事情属于自家事，需要您自己或家人办理，网格可以给您指引：{guide}",
                       guide=referral or t("可以联系本网格的网格员，帮您出主意、找对门路。")))
    elif referral:
        lines.append(t("您可以这样办：{referral}", referral=referral))
    lines.append(t("如有异议，可以补充说明后重新上报（/report），或拨打 12345 政务服务便民热线。"))
    return "\n".join(lines)


async def ask_reporter_more(ctx: Ctx, case: Case, question: str) -> None:
    level = await ctx.session.get(Node, case.level_node_id)

    async def compose(t: T) -> Msg:
        return Msg(
            t("关于您上报的事件 {number}，{role}请您补充：{q}", number=case.number,
              role=t(dispatcher_title(level)), q=question),
            buttons=[[await button(ctx, t("补充材料"), "case.supplement", case_id=case.id),
                      await button(ctx, t("撤销上报"), "case.cancel", case_id=case.id)]],
        )

    await to_person(ctx, case.reporter_id, compose)


async def assignee_ids(ctx: Ctx, case: Case) -> list[int]:
    if case.assignee_id:
        return [case.assignee_id]
    if case.team_id:
        return await team_member_ids(ctx, case.team_id)
    return []


async def task_buttons(ctx: Ctx, t: T, case: Case) -> list:
    ref = {"case_id": case.id}
    rows: list = []
    if case.status == S.dispatched:
        rows = [[await button(ctx, t("接收"), "task.accept", **ref),
                 await button(ctx, t("退回"), "task.hand_back", **ref)],
                [await button(ctx, t("办结"), "task.finish", **ref)]]
    elif case.status == S.in_progress:
        rows = [[await button(ctx, t("办结"), "task.finish", **ref),
                 await button(ctx, t("退回"), "task.hand_back", **ref)]]
    if rows and await reporter_phone(ctx, case):
        rows.append([await button(ctx, t("联系上报人"), "task.contact", **ref)])
    return rows


async def reporter_phone(ctx: Ctx, case: Case) -> str | None:
    """The number the assignee may call: none for an anonymous report."""
    if case.anonymous or case.reporter_id is None:
        return None
    reporter = await ctx.session.get(Person, case.reporter_id)
    return case.contact_phone or (reporter.phone if reporter else None) or None


async def task_text(ctx: Ctx, t: T, case: Case) -> str:
    """What the assignee needs on site (issue 9.7): urgency, deadline, where, and whom to call."""
    category = await ctx.session.get(Category, case.category_id)
    grid = await ctx.session.get(Node, case.grid_id)
    lines = [
        t("【待办】事件 {number}（{category}）", number=case.number, category=category_name(t, category)),
        t("紧急程度：{u}", u=t(URGENCY_LABELS.get(case.urgency, case.urgency))),
        t("办结时限：{at}", at=local(ctx, case.deadline_at, "%Y-%m-%d %H:%M")),
        t("网格：{grid}", grid=grid.name),
        t("描述：{text}", text=case.description),
    ]
    lines.extend(maps.place_lines(t, case))  # address, else coordinates; a map link
    if case.anonymous or case.reporter_id is None:
        lines.append(t("上报人：匿名"))
    else:
        reporter = await ctx.session.get(Person, case.reporter_id)
        phone = mask_phone(await reporter_phone(ctx, case))
        lines.append(t("上报人：{name} {phone}", name=mask_name(reporter.name), phone=phone).rstrip())
    if case.attachments:
        lines.append(t("附件：{n} 个", n=len(case.attachments)))
    return "\n".join(lines)


async def task_key(ctx: Ctx, case: Case, person_id: int) -> str:
    """One task card per dispatch and person, edited in place when the case moves on; a later
    dispatch (after a hand-back, a reopen) posts a new card, so the person is notified again."""
    await ctx.session.flush()
    dispatch = (await ctx.session.execute(
        select(CaseEvent.id).where(CaseEvent.case_id == case.id, CaseEvent.action == "dispatched")
        .order_by(CaseEvent.id.desc()).limit(1))).scalar_one_or_none()
    return f"task:{case.id}:{dispatch}:{person_id}"


async def tell_assignees(ctx: Ctx, case: Case, note: str | None) -> None:
    for person_id in await assignee_ids(ctx, case):
        async def compose(t: T) -> Msg:
            text = await task_text(ctx, t, case)
            if note:
                text += "\n" + t("派遣说明：{note}", note=note)
            return Msg(text, buttons=await task_buttons(ctx, t, case), media=list(case.attachments or []))

        await to_person(ctx, person_id, compose, card_key=await task_key(ctx, case, person_id))


async def tell_urged(ctx: Ctx, case: Case, node: Node, note: str) -> None:
    """督办 by an upper level: whoever holds the task hears it at once, and so does the holder's
    work group (its card is edited in place, perhaps far up the chat)."""
    def urged(t: T) -> str:
        return t("【督办】{node} 督办事件 {number}：{note}", node=node.name, number=case.number, note=note)

    async def to_assignee(t: T) -> Msg:
        return Msg(urged(t))

    for person_id in await assignee_ids(ctx, case):
        await to_person(ctx, person_id, to_assignee)

    async def to_holder(t: T) -> Msg:
        return Msg(urged(t) + "\n" + t("发送 /case {number} 查看详情并办理。", number=case.number))

    await to_group(ctx, case.level_node_id, to_holder)


async def tell_sent_down(ctx: Ctx, case: Case, above: Node, target: Node, note: str | None) -> None:
    """下派: the node it comes down to hears it in a new message with the card's buttons (its old
    card, if it had one, is edited in place far up the chat); the reporter learns who handles it."""
    async def to_target(t: T) -> Msg:
        lines = [t("【下派】{node} 将事件 {number} 下派至 {target}。", node=above.name, number=case.number,
                   target=target.name)]
        if note:
            lines.append(t("下派要求：{note}", note=note))
        lines.append(await card_text(ctx, t, case))
        lines.append(t("请{role}派遣办理。", role=t(dispatcher_title(target))))
        return Msg("\n".join(lines), buttons=await card_buttons(ctx, t, case, target.id))

    await to_group(ctx, target.id, to_target)
    await tell_reporter(ctx, case, "sent_down")


async def tell_team_taken(ctx: Ctx, case: Case) -> None:
    """A team member took the case: the others' task cards lose their buttons and say who (issue 9.8)."""
    taker = await ctx.session.get(Person, case.assignee_id)
    for person_id in await team_member_ids(ctx, case.team_id):
        if person_id == case.assignee_id:
            continue

        async def card(t: T) -> Msg:
            return Msg(await task_text(ctx, t, case) + "\n" + t("已由 {name} 接收办理。", name=taker.name),
                       update_text=await summary(ctx, t, case))

        async def notice(t: T) -> Msg:
            return Msg(t("事件 {number} 已由 {name} 接收办理，您无需再处理。", number=case.number, name=taker.name))

        await to_person(ctx, person_id, card, card_key=await task_key(ctx, case, person_id))
        await to_person(ctx, person_id, notice)


async def tell_rework(ctx: Ctx, case: Case, reason: str) -> None:
    for person_id in await assignee_ids(ctx, case):
        async def compose(t: T) -> Msg:
            return Msg(t("事件 {number} 核查未通过，需返工：{reason}", number=case.number, reason=reason),
                       buttons=await task_buttons(ctx, t, case))

        await to_person(ctx, person_id, compose)


async def tell_verified(ctx: Ctx, case: Case) -> None:
    for person_id in await assignee_ids(ctx, case):
        async def compose(t: T) -> Msg:
            return Msg(t("事件 {number} 已核查通过，已结案。", number=case.number))

        await to_person(ctx, person_id, compose)


async def ask_rating(ctx: Ctx, case: Case) -> None:
    if case.reporter_id is None:
        return

    async def compose(t: T) -> Msg:
        ref = {"case_id": case.id}
        return Msg(
            t("您上报的事件 {number} 已办结。\n处理结果：{result}\n请对处理结果进行评价：",
              number=case.number, result=case.result or "-"),
            buttons=[[await button(ctx, t(label), "case.rate", rating=key, **ref)
                      for key, label in RATING_LABELS.items()]],
        )

    await to_person(ctx, case.reporter_id, compose)


def _unsatisfied(t: T, case: Case, comment: str | None, again: bool) -> str:
    """The reason first, so whoever re-dispatches reads what was wrong."""
    if again:
        if comment:
            return t("事件 {number} 上报人再次评价「不满意」：{c}", number=case.number, c=comment)
        return t("事件 {number} 上报人再次评价「不满意」（未说明原因）。", number=case.number)
    if comment:
        return t("事件 {number} 上报人评价「不满意」：{c}", number=case.number, c=comment)
    return t("事件 {number} 上报人评价「不满意」（未说明原因）。", number=case.number)


async def _tell_former(ctx: Ctx, case: Case, former: list[int], text) -> None:
    for person_id in former:
        async def compose(t: T) -> Msg:
            return Msg(text(t))

        await to_person(ctx, person_id, compose)


async def tell_reopened(ctx: Ctx, case: Case, comment: str | None, former: list[int] | None = None) -> None:
    level = await ctx.session.get(Node, case.level_node_id)

    async def compose(t: T) -> Msg:
        return Msg(_unsatisfied(t, case, comment, False) + "\n"
                   + t("事件已退回重新办理，请{role}重新派遣。", role=t(dispatcher_title(level))))

    await to_group(ctx, level.id, compose)

    async def to_reporter(t: T) -> Msg:
        return Msg(t("收到您的评价。事件 {number} 已退回网格重新办理，办结后会再次请您评价。",
                     number=case.number))

    await to_person(ctx, case.reporter_id, to_reporter)
    await _tell_former(ctx, case, former or [], lambda t: _unsatisfied(t, case, comment, False) + "\n"
                       + t("事件已退回 {node} 重新派遣。", node=level.name))


async def tell_supervised(ctx: Ctx, case: Case, comment: str | None, below: Node,
                          former: list[int] | None = None) -> None:
    """A second 不满意: the level above supervises (督办); the level below and the resident are told."""
    upper = await ctx.session.get(Node, case.level_node_id)

    async def to_upper(t: T) -> Msg:
        if below.id == upper.id:  # the top of the tree keeps it
            ask = t("{node} 已是最高一级，请{role}继续督办并重新派遣。", node=upper.name,
                    role=t(dispatcher_title(upper)))
        else:
            ask = t("{below} 办理后上报人仍不满意，已转 {node} 督办，请{role}督促办理并重新派遣。",
                    below=below.name, node=upper.name, role=t(dispatcher_title(upper)))
        return Msg(t("【督办】") + _unsatisfied(t, case, comment, True) + "\n" + ask)

    await to_group(ctx, upper.id, to_upper)
    for node_id in dict.fromkeys([below.id, case.grid_id]):
        if node_id == upper.id:
            continue

        async def to_below(t: T) -> Msg:
            return Msg(_unsatisfied(t, case, comment, True) + "\n" + t("已转 {node} 督办。", node=upper.name))

        await to_group(ctx, node_id, to_below)

    async def to_reporter(t: T) -> Msg:
        return Msg(t("收到您的评价。事件 {number} 已转 {node} 督办，办结后会再次请您评价。",
                     number=case.number, node=upper.name))

    await to_person(ctx, case.reporter_id, to_reporter)
    await _tell_former(ctx, case, former or [], lambda t: _unsatisfied(t, case, comment, True) + "\n"
                       + t("已转 {node} 督办。", node=upper.name))


async def tell_merged_reporters(ctx: Ctx, case: Case) -> None:
    rows = await ctx.session.execute(
        select(Case).where(Case.merged_into_id == case.id, Case.reporter_id.is_not(None))
    )
    for dup in rows.scalars():
        async def compose(t: T, dup: Case = dup) -> Msg:
            return Msg(t("您上报的事件 {number}（已并入 {main}）已办结：{result}", number=dup.number,
                         main=case.number, result=case.result or "-"))

        await to_person(ctx, dup.reporter_id, compose)
