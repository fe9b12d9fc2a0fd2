"""The assignee's side: tasks, accept, hand back with a reason, finish with result and photos."""

from __future__ import annotations

from workflows import cases
from workflows.cards import checker_label, local
from workflows.i18n import _
from workflows.tree import dispatcher_title, get_node

from .reasons import ask_reason, reason_for
from .registry import STAFF, action, command, flow
from .turn import Turn

TASKS_SHOWN = 20
WHY = {
    "register": _("待立案"),
    "dispatch": _("待派遣"),
    "redispatch": _("待重新派遣"),
    "verify": _("待核查"),
    "task": _("待办理"),
    "cover": _("A/B岗代办"),
    "supervise": _("待督办（红牌）"),
}


@command("tasks", "我的待办", private=True, roles=STAFF)
async def tasks(turn: Turn) -> None:
    """Each person's inbox (issue 9.2): what waits for their register, dispatch or verify, and their own tasks."""
    found = await cases.inbox(turn.ctx, turn.person.id) if turn.person else []
    if not found:
        await turn.say(turn.t("您目前没有待办事件。"))
        return
    now = turn.ctx.now()
    lines, rows = [turn.t("您的待办事件（{n} 件）：", n=len(found))], []
    for c, why in found[:TASKS_SHOWN]:
        if c.deadline_at:
            line = turn.t("{number}【{why}】{text}（时限 {at}）", number=c.number, why=turn.t(WHY[why]),
                          text=c.description[:30], at=local(turn.ctx, c.deadline_at))
        else:  # not registered yet: the limit starts at registration
            line = turn.t("{number}【{why}】{text}", number=c.number, why=turn.t(WHY[why]), text=c.description[:30])
        if cases.is_overdue(c, now):
            line = turn.t("【已超期】") + line
        lines.append(line)
        action_name = "task.show" if why in ("task", "cover") else "case.detail"
        rows.append([await turn.button(c.number, action_name, case_id=c.id)])
    if len(found) > TASKS_SHOWN:  # a message and its keyboard have limits; the most pressing come first
        lines.append(turn.t("……另有 {n} 件未列出，请先处理以上事件，或发送事件编号查看。", n=len(found) - TASKS_SHOWN))
    await turn.say("\n".join(lines), buttons=rows)


@action("menu.tasks")
async def tasks_button(turn: Turn, args: dict) -> None:
    await tasks(turn)


@action("task.show")
async def show(turn: Turn, args: dict) -> None:
    from workflows.cards import task_buttons, task_text

    case = await cases.get_case(turn.ctx, args["case_id"])
    await cases.need_assignee(turn.ctx, turn.person.id if turn.person else -1, case)
    await turn.say(await task_text(turn.ctx, turn.t, case), buttons=await task_buttons(turn.ctx, turn.t, case))


@action("task.contact")
async def contact(turn: Turn, args: dict) -> None:
    """Only the assignee of an open case may see the reporter's full number (issue 9.7)."""
    phone = await cases.reveal_contact(turn.ctx, turn.person.id if turn.person else -1, args["case_id"])
    case = await cases.get_case(turn.ctx, args["case_id"])
    await turn.say(turn.t("事件 {number} 上报人的联系电话：{phone}（仅供办理本事件联系使用）",
                          number=case.number, phone=phone))


@action("task.accept")
async def accept(turn: Turn, args: dict) -> None:
    case = await cases.accept(turn.ctx, turn.person.id if turn.person else -1, args["case_id"])
    await turn.say(turn.t("已接收事件 {number}，请尽快到现场处置，完成后点击「办结」。", number=case.number),
                   buttons=[[await turn.button("办结", "task.finish", case_id=case.id)]])


@action("task.hand_back")
async def hand_back(turn: Turn, args: dict) -> None:
    case = await cases.get_case(turn.ctx, args["case_id"])
    await cases.need_assignee(turn.ctx, turn.person.id if turn.person else -1, case)
    await ask_reason(turn, "hand_back", case_id=case.id)


@reason_for("hand_back", "请写明退回理由：", ["不属于本人职责", "需要其他部门处理", "信息不足，无法处置"])
async def hand_back_with(turn: Turn, data: dict, reason: str) -> None:
    case = await cases.hand_back(turn.ctx, turn.person.id, data["case_id"], reason)
    level = await get_node(turn.ctx, case.level_node_id)
    await turn.say(turn.t("事件 {number} 已退回{node}的{role}。", number=case.number, node=level.name,
                          role=turn.t(dispatcher_title(level))))


@action("task.finish")
async def finish_start(turn: Turn, args: dict) -> None:
    case = await cases.get_case(turn.ctx, args["case_id"])
    await cases.need_assignee(turn.ctx, turn.person.id if turn.person else -1, case)
    if case.status not in ("dispatched", "in_progress"):
        turn.alert(turn.t("事件 {number} 现在不能办结。", number=case.number))
        return
    await turn.start("finish", "result", case_id=case.id)
    await turn.say(turn.t("请写明处理结果，并发送处置后的现场照片（可多张），完成后点击「提交结果」："),
                   buttons=[[await turn.button("提交结果", "task.finish_submit")],
                            [await turn.button("取消", "flow.cancel")]])


@flow("finish")
async def finish_flow(turn: Turn, data: dict) -> None:
    text = "\n".join(filter(None, [data.get("result"), turn.text]))
    cases.clean_text(text, "处理结果", required=False)
    media = [*data.get("media", []), *(m.as_dict() for m in turn.inbound.media)][:9]
    await turn.step("result", result=text, media=media)
    await turn.say(turn.t("已记下（{n} 张照片）。可继续补充，或点击「提交结果」。", n=len(media)),
                   buttons=[[await turn.button("提交结果", "task.finish_submit")]])


@action("task.finish_submit")
async def finish_submit(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    if conv is None or conv.flow != "finish":
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return
    data = dict(conv.data)
    if not data.get("result"):
        await turn.say(turn.t("请先用文字写明处理结果。"))
        return
    case = await cases.finish(turn.ctx, turn.person.id, data["case_id"], data["result"], data.get("media"))
    await turn.finish()
    checker = await checker_label(turn.ctx, turn.t, case)
    await turn.say(turn.t("事件 {number} 的处理结果已提交，等待{who}核查。", number=case.number, who=checker))
