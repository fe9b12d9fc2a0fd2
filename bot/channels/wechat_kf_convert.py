"""A `kf/sync_msg` message (JSON) → the platform-neutral Inbound.

The chat id is the resident's external_userid; the event id is the platform's msgid, so a page
fetched twice has no effect twice. A resident's press on a `msgmenu` choice arrives as a text
message whose `menu_id` is our opaque button token. Media (media_id, kept 3 days by WeChat) are
fetched into the media store after the commit (bot/media_fetch.py, the adapter's `download`).
"""

from __future__ import annotations

import logging

from handlers.events import Inbound, Media
from workflows import geo

log = logging.getLogger(__name__)

NAME = "wechat_kf"
FROM_RESIDENT = 3  # origin: 3 = the WeChat customer, 4 = system, 5 = a staff member in the WeChat Work app
DATUM = "gcj02"  # the datum of the locations this channel receives
MEDIA_KINDS = {"image": "photo", "voice": "voice", "video": "video", "file": "document"}


def to_inbound(msg: dict) -> Inbound | None:
    """The Inbound for one synced message; None for what is nothing for the office (events, staff replies)."""
    if msg.get("origin") != FROM_RESIDENT:
        return None
    user = str(msg.get("external_userid") or "")
    if not user:
        return None
    base = dict(channel=NAME, chat_id=user, user_id=user, is_group=False, event_id=f"kf:{msg.get('msgid')}")
    kind = msg.get("msgtype")
    if kind == "text":
        text = msg.get("text") or {}
        if text.get("menu_id"):
            return Inbound(**base, kind="button", button=str(text["menu_id"]))
        return Inbound(**base, text=str(text.get("content") or ""))
    if kind in MEDIA_KINDS:
        media_id = (msg.get(kind) or {}).get("media_id")
        if media_id:
            return Inbound(**base, media=[Media(kind=MEDIA_KINDS[kind], ref=str(media_id), channel=NAME)])
    if kind == "location":
        loc = msg.get("location") or {}
        try:  # WeChat gives GCJ-02 like WeChat Work; stored in WGS-84, as the WeChat Work channel does
            lat, lon = geo.to_wgs84(float(loc["latitude"]), float(loc["longitude"]), DATUM)
            return Inbound(**base, location=(lat, lon))
        except (KeyError, TypeError, ValueError):
            pass
    log.info("wechat_kf message %s of type %r is not understood; the resident is told", msg.get("msgid"), kind)
    return Inbound(**base, kind="unsupported")
