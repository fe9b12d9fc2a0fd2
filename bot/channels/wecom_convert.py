"""A decrypted WeChat Work callback (XML) → the platform-neutral Inbound.

App messages are always private: chat id = the member's userid. Message ids (MsgId) make the
event id; events have none, so sender, time, event and key stand in for it. The fields are
checked at the edge (bot/channels/wecom_validate.py): what cannot be read raises `Unreadable`.
"""

from __future__ import annotations

import hashlib
import re

from handlers.events import Inbound, Media
from workflows import geo

from .wecom_validate import Unreadable, digits, media_ref, read_xml, text

NAME = "wecom"
DATUM = "gcj02"  # the datum of the locations this channel receives
IGNORED_EVENTS = {"enter_agent", "view", "location", "subscribe", "unsubscribe", "batch_job_result",
                  "change_contact", "open_approval_change", "taskcard_click"}
MAX_EVENT_ID = 128
USERID = re.compile(r"^[\w.@-]{1,64}$")  # what WeChat Work allows in a userid


def event_id(raw: dict) -> str:
    if raw.get("MsgType") == "event":
        out = f"{raw.get('FromUserName')}:{raw.get('CreateTime')}:{raw.get('Event')}:{raw.get('EventKey') or ''}"
    else:
        out = str(raw.get("MsgId") or f"{raw.get('FromUserName')}:{raw.get('CreateTime')}:{raw.get('MsgType')}")
    if len(out) > MAX_EVENT_ID:  # a long EventKey: the id is kept as its digest (inbound_seen holds 128)
        out = "h:" + hashlib.sha256(out.encode("utf-8", "replace")).hexdigest()
    return out


def sender(raw: dict) -> str:
    user = text(raw, "FromUserName", required=True).strip()
    if not USERID.match(user):
        raise Unreadable(f"FromUserName {user[:80]!r} is no userid")
    return user


def to_inbound(xml: str) -> tuple[Inbound | None, dict]:
    """The Inbound for a callback (None when it is nothing for the office), and the raw fields.
    Raises Unreadable (with the sender when known) for what gridbot cannot read."""
    raw = read_xml(xml)
    user = sender(raw)
    kind = text(raw, "MsgType", required=True, sender=user).strip().lower()
    digits(raw, "CreateTime", sender=user)
    if kind != "event":
        digits(raw, "MsgId", sender=user)
    base = dict(channel=NAME, chat_id=user, user_id=user, is_group=False, event_id=event_id(raw))
    if kind == "event":
        event = text(raw, "Event", sender=user).strip().lower()
        key = text(raw, "EventKey", sender=user)
        if event in ("click", "template_card_event", "template_card_menu_event") and key:
            if key.startswith("/"):  # a menu item configured as a command, e.g. /report
                return Inbound(**base, text=key), raw
            return Inbound(**base, kind="button", button=key), raw
        if event in IGNORED_EVENTS or not key:
            return None, raw
        return Inbound(**base, kind="unsupported"), raw
    if kind == "text":
        return Inbound(**base, text=text(raw, "Content", sender=user)), raw
    if kind in ("image", "voice", "video", "shortvideo"):
        media_id = text(raw, "MediaId", sender=user).strip()
        if not media_id:
            raise Unreadable(f"a {kind} message without MediaId", user)
        media_ref(media_id, "MediaId", user)
        if kind == "image":
            return Inbound(**base, media=[Media(kind="photo", ref=media_id, channel=NAME)]), raw
        if kind == "voice":
            fmt = text(raw, "Format", sender=user).strip().lower() or "amr"
            if not fmt.isalnum():
                fmt = "amr"
            return Inbound(**base, media=[Media(kind="voice", ref=media_id, channel=NAME,
                                                mime=f"audio/{fmt}")]), raw
        return Inbound(**base, media=[Media(kind="video", ref=media_id, channel=NAME)]), raw
    if kind == "location":
        try:
            x, y = float(text(raw, "Location_X", sender=user)), float(text(raw, "Location_Y", sender=user))
        except ValueError:
            raise Unreadable("a location without readable coordinates", user) from None
        if not (-90 <= x <= 90 and -180 <= y <= 180):  # also NaN
            raise Unreadable("a location outside the earth's coordinates", user)
        lat, lon = geo.to_wgs84(x, y, DATUM)  # WeChat Work reports GCJ-02 (Amap/Tencent); we store WGS-84
        label = text(raw, "Label", sender=user).strip()[:300] or None  # the place's address, as WeChat Work names it
        return Inbound(**base, location=(lat, lon), address=label, text=None), raw
    return Inbound(**base, kind="unsupported"), raw
