"""Sending outbox rows to a resident through 微信客服 (`kf/send_msg`).

- Text within 2,048 UTF-8 bytes per message; buttons become a `msgmenu` (click items whose id is
  our opaque token; the resident's press comes back as a text with that menu_id).
- Media go as image / voice / video / file: by this channel's media id while it is valid (3 days),
  else uploaded from the media store (a voice from Telegram converted to AMR, as for WeChat Work).
- The platform's rules: a reply only within 48 hours of the resident's last message, and at most
  5 per message. The adapter keeps the window (kf_window) and, outside it, holds the row
  (RetryLater, HOLD) without calling the API; the runtime releases held rows when the resident
  next writes. 45047/45015/95018 answers hold the same way.
- Every send carries `msgid` = outbox row id and part, so WeChat refuses a repeat of the same part.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows.clock import Clock, SystemClock
from workflows.wechat_models import KfWindow

from ..voice import AMR
from . import reply_window
from .base import OutgoingMessage, PermanentError, Sent, Window
from .reply_window import HOLD, REPLY_WINDOW  # noqa: F401  (kept importable from here)
from .wechat_kf_convert import NAME
from .wecom_api import WeComAPI, WeComError, delivery_error
from .wecom_send import MEDIA_LIFETIME, split_text, upload_type

PER_MESSAGE = 5
WINDOW_ERRORS = {45047, 45015, 95018}  # window exceeded, reply time limit, session state forbids sending
DUPLICATE_MSGID = 95016
MENU_ITEMS = 10
MEDIA_TYPES = {"photo": "image", "voice": "voice", "video": "video", "file": "file", "document": "file"}


class OutsideWindow(reply_window.OutsideWindow):
    def __init__(self, detail: str) -> None:
        super().__init__(NAME, detail)


class WeChatKfAdapter:
    name = NAME
    can_edit = False
    windows = (Window("global", 20, 1.0),)  # the API's own frequency; the 48 h / 5 rule is kept below
    ref_lifetime = MEDIA_LIFETIME  # media_ids received or uploaded, as for the WeChat Work app

    def __init__(self, api: WeComAPI, open_kfid: str, sessionmaker: async_sessionmaker[AsyncSession] | None = None,
                 clock: Clock | None = None) -> None:
        self.api = api
        self.open_kfid = open_kfid
        self.sessionmaker = sessionmaker
        self.clock = clock or SystemClock()
        self.media = None  # bot.media.MediaLibrary, set by the runtime: uploads from the store
        self.ref_scope = f"{api.client.corp_id}:kf"  # media_ids belong to the corp's kf secret

    async def edit(self, msg: OutgoingMessage, message_id: str) -> None:
        raise PermanentError("WeChat customer service messages cannot be edited")

    def bodies(self, msg: OutgoingMessage) -> list[tuple[str, dict]]:
        """(part key, send_msg body without recipient) for every part of the row, in order."""
        out: list[tuple[str, dict]] = []
        for n, m in enumerate(msg.media):
            mtype = MEDIA_TYPES.get(m.get("kind", ""))
            if mtype and self.media is not None:
                out.append((f"m{n}", {"msgtype": mtype, "attachment": m}))  # resolved when it is sent
            elif m.get("channel") == NAME and mtype and m.get("ref"):
                out.append((f"m{n}", {"msgtype": mtype, mtype: {"media_id": m["ref"]}}))
        flat = [b for row in msg.buttons for b in row]
        parts = split_text(msg.text) if msg.text else []
        if flat:
            head = parts.pop() if parts else ""
            for n, part in enumerate(parts):
                out.append((f"t{n}", {"msgtype": "text", "text": {"content": part}}))
            for n in range(0, len(flat), MENU_ITEMS):
                chunk = flat[n:n + MENU_ITEMS]
                out.append((f"menu{n}", {"msgtype": "msgmenu", "msgmenu": {
                    "head_content": head if n == 0 else "",
                    "list": [{"type": "click", "click": {"id": b["token"], "content": b["label"]}} for b in chunk]}}))
        else:
            for n, part in enumerate(parts):
                out.append((f"t{n}", {"msgtype": "text", "text": {"content": part}}))
        return out

    async def send(self, msg: OutgoingMessage) -> Sent:
        last: str | None = None
        extra: list[str] = []
        for key, body in self.bodies(msg):
            if "attachment" in body:
                body = await self._media_body(body["msgtype"], body["attachment"])
                if body is None:
                    continue  # not in the store (yet): the text still goes
            await self._use_window(msg.chat_id)
            data = {"touser": msg.chat_id, "open_kfid": self.open_kfid, "msgid": f"gb{msg.id}{key}", **body}
            try:
                result = await self.api.post("kf/send_msg", data)
            except WeComError as e:
                if e.errcode == DUPLICATE_MSGID:  # this part went out before a retry: not again
                    continue
                await self._give_back(msg.chat_id)
                if e.errcode in WINDOW_ERRORS:
                    raise OutsideWindow(str(e)) from e
                raise delivery_error(e) from e
            if last:
                extra.append(last)
            last = result.get("msgid") or last
        return Sent(last, extra)

    async def _media_body(self, mtype: str, m: dict) -> dict | None:
        """The send_msg body for one attachment: our media_id while valid, else an upload from the
        store (remembered 3 days); another platform's voice as AMR when it can be converted."""
        lib = self.media
        if mtype == "voice" and m.get("channel") != NAME:
            ref = await lib.voice_ref(m, AMR, NAME, self.ref_scope, self.ref_lifetime)
            if ref:
                return {"msgtype": "voice", "voice": {"media_id": ref}}
            blob = await lib.voice_as(m, AMR)
            if blob is not None:
                mid = await self._upload("voice", blob)
                return {"msgtype": "voice", "voice": {"media_id": mid}}
        ref = await lib.ref_for(m, NAME, self.ref_scope, self.ref_lifetime)
        if ref:
            return {"msgtype": mtype, mtype: {"media_id": ref}}
        blob = await lib.blob_or_wait(m)
        if blob is None:
            return None
        utype = upload_type(mtype, blob.mime)
        return {"msgtype": utype, utype: {"media_id": await self._upload(utype, blob)}}

    async def _upload(self, utype: str, blob) -> str:
        mid = await self.api.upload(utype, blob.data, blob.name, blob.mime)
        await self.media.remember(blob.sha256, NAME, self.ref_scope, mid, self.ref_lifetime)
        return mid

    async def download(self, ref: str) -> tuple[bytes, str | None, str | None]:
        """For the media fetcher: a resident's attachment from sync_msg, by its media_id (3 days)."""
        return await self.api.download(ref)

    async def _use_window(self, chat_id: str) -> None:
        """Count one message against the resident's window, or hold the row when it is closed."""
        if self.sessionmaker is None:
            return
        async with self.sessionmaker() as session, session.begin():
            w = await session.get(KfWindow, chat_id, with_for_update=True)
            why = reply_window.closed_because(w.last_inbound_at if w else None, w.sent_since if w else 0,
                                              self.clock.now(), PER_MESSAGE)
            if why:
                raise OutsideWindow(why)
            w.sent_since += 1

    async def _give_back(self, chat_id: str) -> None:
        if self.sessionmaker is None:
            return
        async with self.sessionmaker() as session, session.begin():
            w = await session.get(KfWindow, chat_id)
            if w is not None and w.sent_since > 0:
                w.sent_since -= 1
