"""The levels above a case act on it from /case NUMBER: 督办 presses whoever holds it, 批注 leaves a
remark on its file. Who may is decided in workflows.cases (may_urge / may_comment), as for the
console's buttons."""

from __future__ import annotations

from workflows import cases
from workflows.errors import NotAllowed
from workflows.models import OPEN_STATUSES
from workflows.tree import get_node

from .reasons import ask_reason, reason_for
from .registry import action
from .turn import Turn


def _me(turn: Turn) -> int | None:
    return turn.person.id if turn.person else None


@action("case.urge")
async def urge(turn: Turn, args: dict) -> None:
    case = await cases.get_case(turn.ctx, args["case_id"])
    if await cases.may_urge(turn.ctx, _me(turn), case) is None:
        if case.status not in OPEN_STATUSES:
            turn.alert(turn.t("该事件已有新进展，这个按钮已失效。"))
            return
        raise NotAllowed("只有上级的网格长或指挥中心工作人员可以督办该事件。")
    await ask_reason(turn, "urge", case_id=case.id)


@reason_for("urge", "请写明督办意见：", ["请加快办理，今日内反馈进展", "请按时限办结"],
            label="督办意见")
async def urge_with(turn: Turn, data: dict, note: str) -> None:
    case = await cases.urge(turn.ctx, _me(turn), data["case_id"], note)
    holder = await get_node(turn.ctx, case.level_node_id)
    if case.assignee_id or case.team_id:
        told = turn.t("已督办事件 {number}，{node} 和承办人已收到督办意见。", number=case.number, node=holder.name)
    else:
        told = turn.t("已督办事件 {number}，{node} 已收到督办意见。", number=case.number, node=holder.name)
    await turn.say(told)


@action("case.comment")
async def comment(turn: Turn, args: dict) -> None:
    case = await cases.get_case(turn.ctx, args["case_id"])
    if not await cases.may_comment(turn.ctx, _me(turn), case):
        raise NotAllowed("只有负责该网格或其上级的工作人员可以批注。")
    await ask_reason(turn, "comment", case_id=case.id)


@reason_for("comment", "请输入批注内容：", [])
async def comment_with(turn: Turn, data: dict, text: str) -> None:
    case = await cases.comment(turn.ctx, _me(turn), data["case_id"], text)
    await turn.say(turn.t("批注已记入事件 {number} 的进展。", number=case.number))
