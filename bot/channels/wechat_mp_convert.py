"""A 公众号 callback message (wechatpy's parse_message) → the platform-neutral Inbound.

The chat id is the resident's openid. The event id is the platform's MsgId; events carry none, so
theirs is sender + create time + event, as WeChat itself deduplicates its retries. A press on one
of our `msgmenu` choices comes back as a text whose `bizmsgmenuid` is our button token; a press on
the account's own menu (CLICK) is the command that menu entry stands for.
"""

from __future__ import annotations

import logging

from wechatpy.events import ClickEvent, SubscribeEvent, SubscribeScanEvent
from wechatpy.messages import (
    BaseMessage,
    ImageMessage,
    LocationMessage,
    ShortVideoMessage,
    TextMessage,
    VideoMessage,
    VoiceMessage,
)

from handlers.events import Inbound, Media
from workflows import geo

log = logging.getLogger(__name__)

NAME = "wechat_mp"
DATUM = "gcj02"  # WeChat's locations are in GCJ-02
# the custom menu's CLICK keys (bot/wechat_mp_cli.py pushes the menu) and what each stands for
MENU_COMMANDS = {"GB_REPORT": "/report", "GB_MINE": "/my", "GB_CONTACT": "/help"}


def event_id(msg: BaseMessage) -> str:
    raw = msg._data  # wechatpy keeps the parsed XML; MsgId is on messages, not on events
    if raw.get("MsgId"):
        return f"mp:{raw['MsgId']}"
    return f"mp:{raw.get('FromUserName')}:{raw.get('CreateTime')}:{raw.get('Event', '')}"


def to_inbound(msg: BaseMessage) -> Inbound | None:
    """The Inbound for one callback; None for what is nothing for the office (unsubscribe, the
    phone's periodic location report, template-send receipts …)."""
    user = str(msg.source or "")
    if not user or msg._data.get("MsgType") == "event" and not isinstance(msg, SubscribeEvent | SubscribeScanEvent
                                                                           | ClickEvent):
        return None  # periodic location, view (a link was opened), unsubscribe, receipts, unknown events
    base = dict(channel=NAME, chat_id=user, user_id=user, is_group=False, event_id=event_id(msg))
    if isinstance(msg, TextMessage):
        token = msg._data.get("bizmsgmenuid")
        if token:
            return Inbound(**base, kind="button", button=str(token))
        return Inbound(**base, text=str(msg.content or ""))
    if isinstance(msg, ImageMessage | VoiceMessage | VideoMessage | ShortVideoMessage):
        kind = {ImageMessage: "photo", VoiceMessage: "voice"}.get(type(msg), "video")
        if msg.media_id:
            return Inbound(**base, media=[Media(kind=kind, ref=str(msg.media_id), channel=NAME)])
    if isinstance(msg, LocationMessage):
        try:
            lat, lon = geo.to_wgs84(float(msg.location_x), float(msg.location_y), DATUM)
            return Inbound(**base, location=(lat, lon), address=str(msg.label or "") or None)
        except (TypeError, ValueError):
            pass
    if isinstance(msg, SubscribeEvent | SubscribeScanEvent):
        return Inbound(**base, text="/start")  # a new follower is greeted with what they can do
    if isinstance(msg, ClickEvent):
        command = MENU_COMMANDS.get(str(msg.key or ""))
        if command:
            return Inbound(**base, text=command)
        log.info("wechat_mp menu key %r from %s is not ours; the resident is told", msg.key, user)
        return Inbound(**base, kind="unsupported")
    log.info("wechat_mp message %s of type %r is not understood; the resident is told", base["event_id"], msg.type)
    return Inbound(**base, kind="unsupported")
