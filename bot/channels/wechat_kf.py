"""The 微信客服 (WeChat customer service) channel: residents on personal WeChat, through WeChat Work.

The callback (encrypted like WeChat Work's own) only says that messages are waiting
(`kf_msg_or_event` with a token); the runtime then pulls them with `kf/sync_msg`, page by page,
keeping the cursor in kf_cursor after each page, and hands each resident message to the office
(its msgid is the event id, so a page seen twice has no effect twice). A resident's message opens
their 48-hour reply window and releases the rows held for them. See docs/wechat.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

import xmltodict
from aiohttp import web
from sqlalchemy import func, select, update
from wechatpy.enterprise import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from handlers.events import Inbound
from handlers.office import Office
from workflows.models import InboundSeen, Outbox
from workflows.outbox import Msg, to_chat
from workflows.wechat_models import KfCursor, KfWindow

from ..settings import Settings
from .wechat_kf_convert import NAME, to_inbound
from .wechat_kf_send import WeChatKfAdapter
from .wecom_api import WeComAPI

log = logging.getLogger(__name__)

PAGE = 1000


class WeChatKfRuntime:
    name = NAME

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = WeComAPI(settings.wecom_corp_id, settings.wechat_kf_secret, None, settings.wecom_api_base_url)
        self.adapter = WeChatKfAdapter(self.api, settings.wechat_kf_open_kfid)
        self.crypto = WeChatCrypto(settings.wechat_kf_token, settings.wechat_kf_aes_key, settings.wecom_corp_id)
        self.office: Office | None = None
        self._server = None  # bot.web.WebServer: the shared one (routes) or our own (start)
        self._own_server = False
        self._tasks: set[asyncio.Task] = set()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def routes(self, server) -> None:
        """Puts the callback on the process's one web server (bot/web.py), before it starts."""
        path = self.settings.wechat_kf_callback_path
        server.add("GET", path, self.verify_url, summary="微信客服 URL verification", tag="wechat_kf")
        server.add("POST", path, self.callback, summary="微信客服 encrypted callback (messages waiting)",
                   tag="wechat_kf")
        self._server = server

    async def start(self, office: Office) -> None:
        self.office = office
        self.adapter.sessionmaker = office.sessionmaker
        self.adapter.clock = office.clock
        if self._server is None:  # used on its own (tests, embedding): serve the callback alone
            from ..web import WebServer

            self.routes(WebServer(self.settings.web_host, self.settings.web_port, office.sessionmaker, office.clock))
            self._own_server = True
            await self._server.start()

    async def stop(self) -> None:
        if self._own_server and self._server is not None:
            await self._server.stop()
            self._server, self._own_server = None, False
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ HTTP

    async def verify_url(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            echo = self.crypto.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        except InvalidSignatureException:
            log.warning("wechat_kf URL verification with a bad signature from %s", request.remote)
            return web.Response(status=403, text="bad signature")
        except Exception as e:
            log.warning("wechat_kf URL verification failed: %r", e)
            return web.Response(status=400, text="bad request")
        return web.Response(text=echo.decode() if isinstance(echo, bytes) else str(echo))

    async def callback(self, request: web.Request) -> web.Response:
        q = request.query
        body = await request.text()
        try:
            xml = self.crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
            event = xmltodict.parse(xml)["xml"]
        except InvalidSignatureException:
            log.warning("wechat_kf callback with a bad signature from %s", request.remote)
            return web.Response(status=403, text="bad signature")
        except Exception as e:
            log.warning("wechat_kf callback could not be read: %r", e)
            return web.Response(status=400, text="bad request")
        if event.get("Event") != "kf_msg_or_event":
            return web.Response(text="")
        # a replayed event only makes us sync again: the cursor and the msgids make that harmless
        task = asyncio.create_task(self.sync(str(event.get("OpenKfId") or self.adapter.open_kfid),
                                             str(event.get("Token") or "")))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return web.Response(text="")

    # ------------------------------------------------------------------ pulling

    async def sync(self, open_kfid: str, token: str) -> None:
        assert self.office is not None
        async with self._locks[open_kfid]:
            try:
                await self._sync(open_kfid, token)
            except Exception:
                log.exception("wechat_kf sync of %s failed; the cursor stays where it was", open_kfid)

    async def _sync(self, open_kfid: str, token: str) -> None:
        sm = self.office.sessionmaker
        async with sm() as session:
            row = await session.get(KfCursor, open_kfid)
            cursor = row.cursor if row else ""
        while True:
            page = await self.api.post("kf/sync_msg", {"cursor": cursor, "token": token, "limit": PAGE,
                                                        "open_kfid": open_kfid})
            for msg in page.get("msg_list") or []:
                inbound = to_inbound(msg)
                if inbound is None:
                    continue
                await self._opened(inbound)
                before = await self._last_outbox_id()
                reply = await self.office.handle(inbound)
                if reply.alert and not reply.duplicate:
                    await self._say_alert(inbound, reply.alert, before)
            cursor = page.get("next_cursor") or cursor
            async with sm() as session, session.begin():
                row = await session.get(KfCursor, open_kfid)
                if row is None:
                    session.add(KfCursor(open_kfid=open_kfid, cursor=cursor, updated_at=self.office.clock.now()))
                else:
                    row.cursor, row.updated_at = cursor, self.office.clock.now()
            if not page.get("has_more"):
                return

    async def _last_outbox_id(self) -> int:
        async with self.office.sessionmaker() as session:
            return (await session.execute(select(func.max(Outbox.id)))).scalar() or 0

    async def _say_alert(self, inbound: Inbound, alert: str, before: int) -> None:
        """WeChat has no pop-up answer to a menu press: the alert becomes a message, unless the
        dialogue already wrote the same words to this chat."""
        async with self.office.sessionmaker() as session, session.begin():
            rows = await session.execute(
                select(Outbox.payload).where(Outbox.id > before, Outbox.channel == NAME,
                                             Outbox.chat_id == inbound.chat_id))
            if any(p.get("text") == alert for p in rows.scalars()):
                return
            await to_chat(self.office.ctx(session, inbound), NAME, inbound.chat_id, Msg(alert))
        if self.office.on_commit:
            self.office.on_commit()

    async def _opened(self, inbound: Inbound) -> None:
        """The resident wrote: a fresh window, and what was held for them goes out now. A msgid
        seen before opens nothing (it would reset the 5-per-message count a second time)."""
        now, chat_id = self.office.clock.now(), inbound.chat_id
        async with self.office.sessionmaker() as session, session.begin():
            if await session.get(InboundSeen, (NAME, inbound.event_id)) is not None:
                return
            w = await session.get(KfWindow, chat_id)
            if w is None:
                session.add(KfWindow(chat_id=chat_id, last_inbound_at=now, sent_since=0))
            else:
                w.last_inbound_at, w.sent_since = now, 0
            await session.execute(update(Outbox).where(
                Outbox.channel == NAME, Outbox.chat_id == chat_id, Outbox.status == "pending",
                Outbox.not_before > now).values(not_before=now))


def build(settings: Settings) -> WeChatKfRuntime:
    missing = [k for k in ("wecom_corp_id", "wechat_kf_secret", "wechat_kf_token", "wechat_kf_aes_key",
                           "wechat_kf_open_kfid") if not getattr(settings, k)]
    if missing:
        raise ValueError(f"WeChat customer service (kf) is missing settings: {', '.join(m.upper() for m in missing)}")
    return WeChatKfRuntime(settings)
