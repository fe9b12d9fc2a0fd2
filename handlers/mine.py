"""The reporter's side: my cases, a case's status and history, supplying more, withdrawing."""

from __future__ import annotations

from workflows import cases
from workflows.cards import (
    RATING_LABELS,
    STATUS_LABELS,
    card_buttons,
    checker_label,
    event_lines,
    local,
    summary,
    task_buttons,
)
from workflows.errors import NotAllowed, NotFound
from workflows.i18n import category_name
from workflows.models import Case, Category
from workflows.tree import can_dispatch, dispatcher_title, get_node

from .registry import action, command, flow
from .turn import Turn


@command("my", "我的事件", private=True)
async def my_cases(turn: Turn) -> None:
    found = await cases.cases_of_reporter(turn.ctx, turn.person.id)
    if not found:
        await turn.say(turn.t("您还没有上报过事件。发送 /report 上报问题。"))
        return
    rows = []
    lines = [turn.t("您最近上报的事件：")]
    for c in found:
        category = await turn.session.get(Category, c.category_id)
        lines.append(f"{c.number} {category_name(turn.t, category)} — {turn.t(STATUS_LABELS[c.status])}")
        rows.append([await turn.button(c.number, "case.detail", case_id=c.id)])
    await turn.say("\n".join(lines), buttons=rows)


@action("menu.mine")
async def mine_button(turn: Turn, args: dict) -> None:
    if not turn.inbound.is_group:
        await my_cases(turn)


@command("case", "按编号查询事件", private=True, group=True)
async def case_status(turn: Turn) -> None:
    number = cases.find_number(turn.text) or turn.text
    if not number:
        await turn.say(turn.t("请在命令后写上事件编号，例如：/case XH-20261123-001"))
        return
    await show_number(turn, number)


async def show_number(turn: Turn, number: str) -> None:
    """Someone else's case and a number that does not exist get the same answer (issue 14.8)."""
    try:
        case = await cases.case_by_number(turn.ctx, number)
    except NotFound:
        case = None
    if case is None or turn.person is None or not await cases.can_view(turn.ctx, turn.person.id, case):
        raise NotFound("找不到编号为 {number} 的事件。", number=number.strip().upper())
    await show_case(turn, case)


async def _buttons(turn: Turn, case: Case) -> list:
    """Exactly the buttons this viewer may press now, whatever message they have lost."""
    me = turn.person.id
    rows: list = []
    node = await get_node(turn.ctx, case.level_node_id)
    if await can_dispatch(turn.ctx, me, node):
        rows.extend(await card_buttons(turn.ctx, turn.t, case, case.level_node_id))
    if await cases.is_assignee(turn.ctx, me, case):
        rows.extend(await task_buttons(turn.ctx, turn.t, case))
    above = [await turn.button("督办", "case.urge", case_id=case.id)] \
        if await cases.may_urge(turn.ctx, me, case) else []
    if await cases.may_comment(turn.ctx, me, case):
        above.append(await turn.button("批注", "case.comment", case_id=case.id))
    if above:
        rows.append(above)
    if case.reporter_id == me and not turn.inbound.is_group:
        if case.status == "needs_info":
            rows.append([await turn.button("补充材料", "case.supplement", case_id=case.id)])
        if case.status in ("reported", "needs_info"):
            rows.append([await turn.button("撤销上报", "case.cancel", case_id=case.id)])
        if case.status == "closed" and not case.rating:
            rows.append([await turn.button(label, "case.rate", case_id=case.id, rating=key)
                         for key, label in RATING_LABELS.items()])
    return rows


async def show_case(turn: Turn, case: Case) -> None:
    if turn.person is None or not await cases.can_view(turn.ctx, turn.person.id, case):
        raise NotAllowed("您只能查询自己上报或经办的事件。")
    t = turn.t
    public = case.reporter_id == turn.person.id and not await cases.is_assignee(turn.ctx, turn.person.id, case)
    lines = [await summary(turn.ctx, t, case), t("描述：{text}", text=case.description),
             t("上报时间：{at}", at=local(turn.ctx, case.created_at, "%Y-%m-%d %H:%M"))]
    if case.deadline_at:
        lines.append(t("办结时限：{at}", at=local(turn.ctx, case.deadline_at, "%Y-%m-%d %H:%M")))
    if case.result:
        lines.append(t("处理结果：{text}", text=case.result))
    if case.status == "resolved":
        lines.append(t("等待核查：{who}", who=await checker_label(turn.ctx, t, case)))
    lines.append(t("—— 进展 ——"))
    lines.extend(await event_lines(turn.ctx, t, case, limit=20, public=public, to_reporter=public))
    await turn.say("\n".join(lines), buttons=await _buttons(turn, case))


@action("case.detail")
async def detail(turn: Turn, args: dict) -> None:
    await show_case(turn, await cases.get_case(turn.ctx, args["case_id"]))


@action("case.cancel")
async def cancel_case(turn: Turn, args: dict) -> None:
    case = await cases.cancel(turn.ctx, turn.person.id if turn.person else -1, args["case_id"],
                              turn.t("上报人撤销"))
    await turn.say(turn.t("事件 {number} 已撤销。", number=case.number))


@action("case.supplement")
async def supplement_start(turn: Turn, args: dict) -> None:
    case = await cases.get_case(turn.ctx, args["case_id"])
    if turn.person is None or case.reporter_id != turn.person.id:
        raise NotAllowed("只有该事件的上报人可以进行此操作。")
    if case.status != "needs_info":
        turn.alert(turn.t("这个事件现在不需要补充材料。"))
        return
    await turn.start("supplement", "text", case_id=case.id)
    await turn.say(turn.t("请发送要补充的文字说明或照片，发送完点击「提交补充」："),
                   buttons=[[await turn.button("提交补充", "case.supplement_done")],
                            [await turn.button("取消", "flow.cancel")]])


@flow("supplement")
async def supplement_flow(turn: Turn, data: dict) -> None:
    text = "\n".join(filter(None, [data.get("text"), turn.text]))
    media = [*data.get("media", []), *(m.as_dict() for m in turn.inbound.media)]
    cases.clean_text(text, "补充说明", required=False)
    await turn.step("text", text=text, media=media)
    await turn.say(turn.t("已记下。可继续补充，或点击「提交补充」。"),
                   buttons=[[await turn.button("提交补充", "case.supplement_done")]])


@action("case.supplement_done")
async def supplement_done(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "supplement":
        turn.alert(turn.t("这次补充已经结束或已取消。"))
        return
    data = dict(conv.data)
    case = await cases.supplement(turn.ctx, turn.person.id, data["case_id"], data.get("text", ""),
                                  data.get("media"))
    await turn.finish()
    level = await get_node(turn.ctx, case.level_node_id)
    await turn.say(turn.t("补充材料已提交。事件 {number} 将由{node}的{role}重新审核，立案后会通知您预计办结时间。",
                          number=case.number, node=level.name, role=turn.t(dispatcher_title(level))))
