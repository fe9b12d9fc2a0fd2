"""Sending outbox rows to a resident through the 公众号: 客服消息 (`message/custom/send`) inside the
48-hour window, a 模板消息 (`message/template/send`) for a case notice after it.

- Text within 2,048 UTF-8 bytes per message; buttons become a `msgmenu` (items whose id is our
  opaque token; the resident's press comes back as a text with that `bizmsgmenuid`).
- Media with a media id of this channel go as image / voice / video.
- The window (reply_window.py): outside it a row is held without calling the API. A case notice
  (priority CARD) held this way first goes out as a template message when WECHAT_MP_TEMPLATE_ID
  is set — a short line that tells the resident to write back — and the full row follows when
  they do; without a template id it is held and the log says so. 45047 / 45015 hold the same way.
- 45009 (rate limit) waits and tries again; 43004 (the resident unfollowed) is a permanent failure
  (the account is marked unreachable) until they follow again, when the runtime re-queues it.
- Custom messages carry no idempotency key: each accepted part is recorded (sent_part, keyed by
  the outbox row id), so a retry or a restart sends only what is missing. A template message
  also carries `client_msg_id` = the row id, which WeChat uses to refuse a repeat.
"""

from __future__ import annotations

import logging
import re
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.clock import Clock, SystemClock
from workflows.models import Outbox
from workflows.outbox import CARD
from workflows.wechat_mp_models import ReplyWindow, SentPart

from . import reply_window
from .base import OutgoingMessage, PermanentError, Sent, Window
from .wechat_mp_api import OfficialAccountAPI
from .wechat_mp_convert import NAME
from .wecom_api import WeComError, delivery_error
from .wecom_send import MEDIA_LIFETIME, split_text

log = logging.getLogger(__name__)

WINDOW_ERRORS = {45047, 45015}  # out of the 客服消息 window, reply time limit
UNFOLLOWED = {43004, 43019}  # the resident does not follow (any more), or blocked the account
MENU_ITEMS = 10
MEDIA_TYPES = {"photo": "image", "voice": "voice", "video": "video"}
NUMBER = re.compile(r"[A-Z0-9][A-Z0-9-]*-\d{8}-\d{3,}")  # a case number (workflows/numbering.py)
FIELD_LIMITS = {"thing": 20, "character_string": 32, "phrase": 5}  # WeChat's template field lengths


class OutsideWindow(reply_window.OutsideWindow):
    def __init__(self, detail: str) -> None:
        super().__init__(NAME, detail)


def parse_template_fields(spec: str) -> dict[str, str]:
    """`thing1=text,time2=time,character_string3=number` → {template key: what it carries}."""
    out = {}
    for item in spec.split(","):
        key, _, what = item.strip().partition("=")
        if key and what.strip() in ("text", "number", "time"):
            out[key.strip()] = what.strip()
    return out


class WeChatMpAdapter:
    name = NAME
    can_edit = False
    windows = (Window("global", 20, 1.0),)  # the API's frequency; the 48-hour window is kept below

    def __init__(self, api: OfficialAccountAPI, *, template_id: str | None = None,
                 template_fields: str = "thing1=text,time2=time", template_url: str | None = None,
                 timezone: str = "Asia/Shanghai", sessionmaker: async_sessionmaker[AsyncSession] | None = None,
                 clock: Clock | None = None) -> None:
        self.api = api
        self.template_id = template_id
        self.template_fields = parse_template_fields(template_fields)
        self.template_url = template_url
        self.zone = ZoneInfo(timezone)
        self.sessionmaker = sessionmaker
        self.clock = clock or SystemClock()
        self.ref_scope = api.client.appid  # media_ids belong to one 公众号
        self.ref_lifetime = MEDIA_LIFETIME
        self.media = None

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        raise PermanentError("Official Account messages cannot be edited")

    async def download(self, ref: str) -> tuple[bytes, str | None, str | None]:
        """For the media fetcher (bot/media_fetch.py): a resident's file by its media_id (3 days)."""
        return await self.api.download(ref)

    def bodies(self, msg: OutgoingMessage) -> list[tuple[str, dict]]:
        """(part key, custom/send body without recipient) for every part of the row, in order."""
        out: list[tuple[str, dict]] = []
        for n, m in enumerate(msg.media):
            mtype = MEDIA_TYPES.get(m.get("kind", ""))
            if m.get("channel") == NAME and mtype and m.get("ref"):
                out.append((f"m{n}", {"msgtype": mtype, mtype: {"media_id": m["ref"]}}))
        flat = [b for row in msg.buttons for b in row]
        parts = split_text(msg.text) if msg.text else []
        head = parts.pop() if parts and flat else ""
        for n, part in enumerate(parts):
            out.append((f"t{n}", {"msgtype": "text", "text": {"content": part}}))
        for n in range(0, len(flat), MENU_ITEMS):
            out.append((f"menu{n}", {"msgtype": "msgmenu", "msgmenu": {
                "head_content": head if n == 0 else "", "tail_content": "",
                "list": [{"id": b["token"], "content": b["label"]} for b in flat[n:n + MENU_ITEMS]]}}))
        return out

    async def send(self, msg: OutgoingMessage) -> Sent:
        if msg.is_group:
            raise PermanentError("an Official Account has no group chats")
        done = await self._done(msg.id)
        why = await self._closed(msg.chat_id)
        if why:
            await self._outside(msg, done, why)
        last: str | None = None
        for key, body in self.bodies(msg):
            if key in done:
                continue
            try:
                result = await self.api.post("message/custom/send", {"touser": msg.chat_id, **body})
            except WeComError as e:
                if e.errcode in WINDOW_ERRORS:
                    await self._close(msg.chat_id)
                    await self._outside(msg, done, str(e))
                if e.errcode in UNFOLLOWED:
                    raise PermanentError(f"wechat_mp {e} (the resident does not follow the account)") from e
                raise delivery_error(e) from e
            await self._record(msg.id, key)
            last = str(result.get("msgid") or "") or last
        return Sent(last)

    # ------------------------------------------------------------------ outside the window

    async def _outside(self, msg: OutgoingMessage, done: set[str], why: str) -> None:
        """Hold the row; a case notice first goes out as a template message, once."""
        if "tpl" not in done and await self._is_case_notice(msg.id):
            if not self.template_id:
                log.warning("wechat_mp row %s to %s held: outside the 48-hour window and no "
                            "WECHAT_MP_TEMPLATE_ID is configured to tell the resident; it goes out when "
                            "they next write", msg.id, msg.chat_id)
            else:
                await self._template(msg)
                done.add("tpl")
        raise OutsideWindow(why)

    async def _template(self, msg: OutgoingMessage) -> None:
        body = {"touser": msg.chat_id, "template_id": self.template_id, "client_msg_id": f"gb{msg.id}",
                "data": self.template_data(msg.text)}
        if self.template_url:
            body["url"] = self.template_url
        try:
            await self.api.post("message/template/send", body)
        except WeComError as e:
            if e.errcode in UNFOLLOWED:
                raise PermanentError(f"wechat_mp {e} (the resident does not follow the account)") from e
            raise delivery_error(e) from e
        await self._record(msg.id, "tpl")
        log.info("wechat_mp row %s to %s: outside the window, a template message told the resident",
                 msg.id, msg.chat_id)

    def template_data(self, text: str) -> dict:
        first = next((line.strip() for line in text.splitlines() if line.strip()), "")
        number = NUMBER.search(text)
        values = {"text": first, "number": number.group(0) if number else "",
                  "time": self.clock.now().astimezone(self.zone).strftime("%Y-%m-%d %H:%M")}
        out = {}
        for key, what in self.template_fields.items():
            value = values[what]
            limit = next((n for prefix, n in FIELD_LIMITS.items() if key.startswith(prefix)), None)
            if limit and len(value) > limit:
                value = value[:limit - 1] + "…"
            out[key] = {"value": value}
        return out

    # ------------------------------------------------------------------ bookkeeping

    async def _closed(self, chat_id: str) -> str | None:
        if self.sessionmaker is None:
            return None
        async with self.sessionmaker() as session:
            w = await session.get(ReplyWindow, (NAME, chat_id))
        return reply_window.closed_because(w.last_inbound_at if w else None, 0, self.clock.now())

    async def _close(self, chat_id: str) -> None:
        """WeChat says the window is closed (its clock or a session we did not see): believe it."""
        if self.sessionmaker is None:
            return
        async with self.sessionmaker() as session, session.begin():
            w = await session.get(ReplyWindow, (NAME, chat_id))
            if w is not None:
                w.last_inbound_at = self.clock.now() - reply_window.REPLY_WINDOW * 2

    async def _is_case_notice(self, outbox_id: int) -> bool:
        if self.sessionmaker is None:
            return False
        async with self.sessionmaker() as session:
            priority = (await session.execute(select(Outbox.priority).where(Outbox.id == outbox_id))).scalar()
        return priority == CARD

    async def _done(self, outbox_id: int) -> set[str]:
        if self.sessionmaker is None:
            return set()
        async with self.sessionmaker() as session:
            rows = await session.execute(select(SentPart.part).where(SentPart.outbox_id == outbox_id))
            return set(rows.scalars())

    async def _record(self, outbox_id: int, part: str) -> None:
        if self.sessionmaker is None:
            return
        try:
            async with self.sessionmaker() as session, session.begin():
                session.add(SentPart(outbox_id=outbox_id, part=part, at=self.clock.now()))
        except IntegrityError:  # recorded by an earlier attempt that crashed before its mark
            pass
