"""A `kf/sync_msg` message (JSON) → the platform-neutral Inbound.

The chat id is the resident's external_userid; the event id is the platform's msgid, so a page
fetched twice has no effect twice. A resident's press on a `msgmenu` choice arrives as a text
message whose `menu_id` is our opaque button token. Media arrive as media_ids (kept 3 days by
WeChat); the media fetcher copies them into the store after the commit (bot/media_fetch.py).
The fields are checked at the edge (bot/channels/wecom_validate.py): what cannot be read raises
`Unreadable`.
"""

from __future__ import annotations

import logging
import math

from handlers.events import Inbound, Media
from workflows import geo

from .wecom_validate import Unreadable, json_id, json_text, media_ref

log = logging.getLogger(__name__)

NAME = "wechat_kf"
FROM_RESIDENT = 3  # origin: 3 = the WeChat customer, 4 = system, 5 = a staff member in the WeChat Work app
DATUM = "gcj02"  # the datum of the locations this channel receives
MEDIA_KINDS = {"image": "photo", "voice": "voice", "video": "video", "file": "document"}


def _part(msg: dict, name: str, user: str) -> dict:
    part = msg.get(name)
    if part is None:
        return {}
    if not isinstance(part, dict):
        raise Unreadable(f"{name} is {type(part).__name__}, not an object", user)
    return part


def to_inbound(msg: object) -> Inbound | None:
    """The Inbound for one synced message; None for what is nothing for the office (events, staff
    replies). Raises Unreadable (with the resident when known) for what gridbot cannot read."""
    if not isinstance(msg, dict):
        raise Unreadable(f"a message that is {type(msg).__name__}, not an object")
    origin = msg.get("origin")
    if origin != FROM_RESIDENT or isinstance(origin, bool):
        return None
    user = json_id(msg.get("external_userid"), "external_userid")
    msgid = json_id(msg.get("msgid"), "msgid", user)
    base = dict(channel=NAME, chat_id=user, user_id=user, is_group=False, event_id=f"kf:{msgid}")
    kind = msg.get("msgtype")
    if kind == "text":
        text = _part(msg, "text", user)
        menu_id = json_text(text.get("menu_id"), "text.menu_id", user)
        if menu_id:
            return Inbound(**base, kind="button", button=menu_id)
        return Inbound(**base, text=json_text(text.get("content"), "text.content", user))
    if isinstance(kind, str) and kind in MEDIA_KINDS:
        media_id = json_text(_part(msg, kind, user).get("media_id"), f"{kind}.media_id", user)
        if media_id:
            return Inbound(**base, media=[Media(kind=MEDIA_KINDS[kind], ref=media_ref(media_id, f"{kind}.media_id", user),
                                                channel=NAME)])
        raise Unreadable(f"a {kind} message without media_id", user)
    if kind == "location":
        loc = _part(msg, "location", user)
        lat, lon = loc.get("latitude"), loc.get("longitude")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                   and abs(v) <= 180 for v in (lat, lon)):
            raise Unreadable("a location without readable coordinates", user)
        # WeChat gives GCJ-02 like WeChat Work; stored in WGS-84, as the WeChat Work channel does
        wlat, wlon = geo.to_wgs84(float(lat), float(lon), DATUM)
        if abs(wlat) > 90:
            raise Unreadable("a location outside the earth's coordinates", user)
        return Inbound(**base, location=(wlat, wlon))
    log.info("wechat_kf message %s of type %r is not understood; the resident is told", msgid, kind)
    return Inbound(**base, kind="unsupported")
