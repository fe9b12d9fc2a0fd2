"""The reporter rates the result (满意 / 基本满意 / 不满意), with an optional comment."""

from __future__ import annotations

from workflows import cases
from workflows.cards import RATING_LABELS

from .reasons import ask_reason, reason_for
from .registry import action, flow
from .turn import Turn


@action("case.rate")
async def rate(turn: Turn, args: dict) -> None:
    rating = args.get("rating", "")
    if rating == "unsatisfied":
        # the reason goes with the rating to whoever re-dispatches (issue 9.4), so ask for it first
        case = await cases.get_case(turn.ctx, args["case_id"])
        cases.need_rateable(turn.person.id if turn.person else -1, case)
        await ask_reason(turn, "unsatisfied", case_id=case.id)
        return
    case = await cases.rate(turn.ctx, turn.person.id if turn.person else -1, args["case_id"], rating)
    await turn.start("rating_comment", "text", case_id=case.id)
    await turn.say(turn.t("感谢您的评价：{r}。如有意见或建议，可以直接回复；没有请点击「跳过」。",
                          r=turn.t(RATING_LABELS[rating])),
                   buttons=[[await turn.button("跳过", "flow.cancel")]])


@reason_for("unsatisfied", "请告诉我们哪里不满意（可直接回复，或选择下面一项），我们会按您的意见重新办理：",
            ["问题没有解决", "处理不彻底", "问题又出现了"])
async def unsatisfied_with(turn: Turn, data: dict, reason: str) -> None:
    # the workflow tells the resident where the case goes now (back to the grid, or to supervision)
    await cases.rate(turn.ctx, turn.person.id, data["case_id"], "unsatisfied", reason)


@flow("rating_comment")
async def comment(turn: Turn, data: dict) -> None:
    if not turn.text:
        await turn.say(turn.t("请用文字写下您的意见，或点击「跳过」。"))
        return
    await cases.comment_rating(turn.ctx, turn.person.id, data["case_id"], turn.text)
    await turn.finish()
    await turn.say(turn.t("您的意见已记录，谢谢！"))
