"""Channels on which the office may write to a resident only for a while after the resident's
own last message (微信客服: 48 hours, 5 messages). Notices that fall outside that time are kept
and delivered when the resident next writes (bot/channels/wechat_kf_send.py holds them), so the
resident is told so once, in the report's confirmation. The dialogues know only the hours."""

from __future__ import annotations

from .turn import Turn

REPLY_WINDOW_HOURS = {"wechat_kf": 48, "wechat_mp": 48}  # 公众号: 客服消息, then a template (wechat_mp_send)


def later_notices_note(turn: Turn) -> str:
    """The sentence for this channel's report confirmation; empty where the office may always write."""
    hours = REPLY_WINDOW_HOURS.get(turn.inbound.channel)
    if hours is None or turn.inbound.is_group:
        return ""
    return "\n" + turn.t("提示：立案、派遣、办结和评价的通知会在您最后一次留言后 {hours} 小时内送达；"
                         "超过 {hours} 小时的通知会保留，在您下次给我们发消息时送达。", hours=hours)
