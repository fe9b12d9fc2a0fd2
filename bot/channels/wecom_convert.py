"""A decrypted WeChat Work callback (XML) → the platform-neutral Inbound.

App messages are always private: chat id = the member's userid. Message ids (MsgId) make the
event id; events have none, so sender, time, event and key stand in for it.
"""

from __future__ import annotations

from wechatpy.enterprise import parse_message
from wechatpy.messages import BaseMessage

from handlers.events import Inbound, Media
from workflows import geo

NAME = "wecom"
DATUM = "gcj02"  # the datum of the locations this channel receives
IGNORED_EVENTS = {"enter_agent", "view", "location", "subscribe", "unsubscribe", "batch_job_result",
                  "change_contact", "open_approval_change", "taskcard_click"}


def _raw(msg: BaseMessage) -> dict:
    return msg._data  # wechatpy keeps the parsed XML; events it has no class for are read from here


def event_id(raw: dict) -> str:
    if raw.get("MsgType") == "event":
        return f"{raw.get('FromUserName')}:{raw.get('CreateTime')}:{raw.get('Event')}:{raw.get('EventKey') or ''}"
    return str(raw.get("MsgId") or f"{raw.get('FromUserName')}:{raw.get('CreateTime')}:{raw.get('MsgType')}")


def to_inbound(xml: str) -> tuple[Inbound | None, dict]:
    """The Inbound for a callback (None when it is nothing for the office), and the raw fields."""
    msg = parse_message(xml)
    raw = _raw(msg)
    user = str(raw.get("FromUserName") or "")
    base = dict(channel=NAME, chat_id=user, user_id=user, is_group=False, event_id=event_id(raw))
    kind = str(raw.get("MsgType") or "").lower()
    if kind == "event":
        event = str(raw.get("Event") or "").lower()
        key = str(raw.get("EventKey") or "")
        if event in ("click", "template_card_event", "template_card_menu_event") and key:
            if key.startswith("/"):  # a menu item configured as a command, e.g. /report
                return Inbound(**base, text=key), raw
            return Inbound(**base, kind="button", button=key), raw
        if event in IGNORED_EVENTS or not key:
            return None, raw
        return Inbound(**base, kind="unsupported"), raw
    if kind == "text":
        return Inbound(**base, text=msg.content or ""), raw
    if kind == "image":
        return Inbound(**base, media=[Media(kind="photo", ref=msg.media_id, channel=NAME)]), raw
    if kind == "voice":
        return Inbound(**base, media=[Media(kind="voice", ref=msg.media_id, channel=NAME,
                                            mime=f"audio/{(msg.format or 'amr').lower()}")]), raw
    if kind in ("video", "shortvideo"):
        return Inbound(**base, media=[Media(kind="video", ref=msg.media_id, channel=NAME)]), raw
    if kind == "location":
        try:
            # WeChat Work reports GCJ-02 (Amap/Tencent); we store WGS-84
            lat, lon = geo.to_wgs84(float(msg.location_x), float(msg.location_y), DATUM)
        except (TypeError, ValueError):
            return Inbound(**base, kind="unsupported"), raw
        label = str(raw.get("Label") or "").strip()[:300] or None  # the place's address, as WeChat Work names it
        return Inbound(**base, location=(lat, lon), address=label, text=None), raw
    return Inbound(**base, kind="unsupported"), raw
