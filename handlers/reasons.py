"""Asking for a reason in writing (decline, hand back, rework …), with common reasons as buttons."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from workflows.i18n import _

from .registry import action, flow
from .turn import Turn

# what each reason is for: the prompt, the presets, the function that uses it, and what a
# confirmed preset is called (理由 unless it is an instruction or a request)
ReasonFn = Callable[[Turn, dict, str], Awaitable[None]]
PURPOSES: dict[str, tuple[str, list[str], ReasonFn, str]] = {}


def reason_for(purpose: str, prompt: str, presets: list[str], label: str = _("理由")):
    def deco(fn: ReasonFn) -> ReasonFn:
        PURPOSES[purpose] = (prompt, presets, fn, label)
        return fn

    return deco


async def ask_reason(turn: Turn, purpose: str, **data: object) -> None:
    prompt, presets, _fn, _label = PURPOSES[purpose]
    await turn.start("reason", purpose, **data)
    rows = [[await turn.button(p, "reason.preset", purpose=purpose, index=i)] for i, p in enumerate(presets)]
    rows.append([await turn.button("取消", "flow.cancel")])
    await turn.say(turn.t(prompt), buttons=rows)


@flow("reason")
async def typed_reason(turn: Turn, data: dict) -> None:
    conv = await turn.conversation()
    if not turn.text:
        await turn.say(turn.t("请用文字写明理由，或发送 /cancel 取消。"))
        return
    _prompt, _presets, fn, _label = PURPOSES[conv.step]
    await turn.finish()
    await fn(turn, data, turn.text)


@action("reason.preset")
async def preset_reason(turn: Turn, args: dict) -> None:
    """A preset is one tap away from a mistake: it takes effect only once confirmed (issue 9.6)."""
    conv = await turn.conversation()
    purpose = args.get("purpose")
    if conv is None or conv.flow != "reason" or conv.step != purpose or purpose not in PURPOSES:
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return
    _prompt, presets, _fn, label = PURPOSES[purpose]
    index = int(args.get("index", 0))
    if not 0 <= index < len(presets):
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return
    await turn.say(turn.t("{label}：{reason}\n确认提交吗？也可以直接发送文字改写。", label=turn.t(label),
                          reason=turn.t(presets[index])),
                   buttons=[[await turn.button("确认", "reason.confirm", purpose=purpose, index=index),
                             await turn.button("取消", "flow.cancel")]])


@action("reason.confirm")
async def confirm_reason(turn: Turn, args: dict) -> None:
    conv = await turn.conversation()
    purpose = args.get("purpose")
    if conv is None or conv.flow != "reason" or conv.step != purpose or purpose not in PURPOSES:
        turn.alert(turn.t("这个操作已经结束或已取消。"))
        return
    _prompt, presets, fn, _label = PURPOSES[purpose]
    data = dict(conv.data)
    await turn.finish()
    await fn(turn, data, turn.t(presets[int(args.get("index", 0))]))


_("重复上报")  # keeps the extraction list complete for presets defined elsewhere
