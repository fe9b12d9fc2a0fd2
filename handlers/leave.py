"""请销假: /leave FROM TO 事由 asks the grid leader, who approves or refuses with a reason."""

from __future__ import annotations

from workflows.routines import leave as leaves

from .reasons import ask_reason, reason_for
from .registry import WORKERS, action, command
from .turn import Turn

STATUS = {"pending": "待审批", "approved": "已批准", "refused": "未批准", "cancelled": "已撤销"}


@command("leave", "请假：/leave 开始日期 结束日期 事由（如 /leave 11-25 11-27 家中有事）", private=True,
         roles=WORKERS)
async def leave(turn: Turn) -> None:
    if turn.person is None:
        return
    parts = turn.text.split(maxsplit=2)
    if not parts:
        lines = [turn.t("请假格式：/leave 开始日期 结束日期 事由，例如 /leave 11-25 11-27 家中有事。")]
        for lv in await leaves.leaves_of(turn.ctx, turn.person.id, 5):
            lines.append(turn.t("{start} 至 {end}：{status}", start=lv.start_date.isoformat(),
                                end=lv.end_date.isoformat(), status=turn.t(STATUS.get(lv.status, lv.status))))
        await turn.say("\n".join(lines))
        return
    if len(parts) < 3:
        await turn.say(turn.t("请写全：开始日期、结束日期和事由，例如 /leave 11-25 11-27 家中有事。"))
        return
    lv = await leaves.request(turn.ctx, turn.person.id, parts[0], parts[1], parts[2])
    await turn.say(turn.t("请假申请已提交（{start} 至 {end}），等待网格长审批。", start=lv.start_date.isoformat(),
                          end=lv.end_date.isoformat()))


@action("leave.approve")
async def approve(turn: Turn, args: dict) -> None:
    await leaves.approve(turn.ctx, turn.person.id if turn.person else -1, args["leave_id"])
    await turn.say(turn.t("已批准该请假申请。"))


@action("leave.refuse")
async def refuse(turn: Turn, args: dict) -> None:
    await leaves._pending(turn.ctx, turn.person.id if turn.person else -1, args["leave_id"])
    await ask_reason(turn, "leave_refuse", leave_id=args["leave_id"])


@reason_for("leave_refuse", "请写明不批准的理由：", ["近期工作任务重", "无人代岗", "请调整请假时间"])
async def refuse_with(turn: Turn, data: dict, reason: str) -> None:
    await leaves.refuse(turn.ctx, turn.person.id, data["leave_id"], reason)
    await turn.say(turn.t("已不批准该请假申请，已告知本人。"))
