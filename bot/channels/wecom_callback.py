"""What WeChat Work's encrypted callbacks have in common — the self-built app's and 微信客服's:
the routes on the one web server (or a server of their own when used alone), URL verification,
decrypting a POST, and the background tasks that handle what was acknowledged."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from aiohttp import web
from sqlalchemy import func, select
from wechatpy.enterprise import WeChatCrypto
from wechatpy.exceptions import InvalidSignatureException

from handlers.events import Inbound
from handlers.office import Office
from workflows.models import Outbox
from workflows.outbox import Msg, to_chat

from ..settings import Settings

log = logging.getLogger(__name__)


class EncryptedCallback:
    """A channel runtime behind one encrypted callback path. Subclasses set `name`, `adapter`,
    `crypto` and `callback_path`, and answer POSTs in `callback` (with `decrypt`)."""

    name: str
    summary: str = "encrypted callback"

    def __init__(self, settings: Settings, crypto: WeChatCrypto, callback_path: str) -> None:
        self.settings = settings
        self.crypto = crypto
        self.callback_path = callback_path
        self.office: Office | None = None
        self._server = None  # bot.web.WebServer: the shared one (routes) or our own (start)
        self._own_server = False
        self._tasks: set[asyncio.Task] = set()
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    # ------------------------------------------------------------------ lifecycle

    def routes(self, server) -> None:
        """Puts the callback on the process's one web server (bot/web.py), before it starts."""
        server.add("GET", self.callback_path, self.verify_url, summary=f"{self.name} URL verification",
                   tag=self.name)
        server.add("POST", self.callback_path, self.callback, summary=f"{self.name} {self.summary}", tag=self.name)
        self._server = server

    async def start(self, office: Office) -> None:
        self.office = office
        self.adapter.sessionmaker = office.sessionmaker
        self.adapter.clock = office.clock
        if self._server is None:  # used on its own (tests, embedding): serve the callback alone
            from ..web import WebServer

            self.routes(WebServer(self.settings.web_host, self.settings.web_port, office.sessionmaker,
                                  office.clock))
            self._own_server = True
            await self._server.start()

    async def stop(self) -> None:
        if self._own_server and self._server is not None:
            await self._server.stop()
            self._server, self._own_server = None, False
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def idle(self) -> None:
        """Waits until every accepted callback has been handled (tests use this)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def later(self, job) -> None:
        """Handles an acknowledged callback in the background (WeChat Work retries after 5 s)."""
        task = asyncio.create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ HTTP

    async def verify_url(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            echo = self.crypto.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        except InvalidSignatureException:
            log.warning("%s URL verification with a bad signature from %s", self.name, request.remote)
            return web.Response(status=403, text="bad signature")
        except Exception as e:
            log.warning("%s URL verification failed: %r", self.name, e)
            return web.Response(status=400, text="bad request")
        return web.Response(text=echo.decode() if isinstance(echo, bytes) else str(echo))

    async def decrypt(self, request: web.Request) -> str | web.Response:
        """The callback's XML, or the refusal to answer with (403 bad signature, 400 unreadable)."""
        q = request.query
        body = await request.text()
        try:
            return self.crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"])
        except InvalidSignatureException:
            log.warning("%s callback with a bad signature from %s", self.name, request.remote)
            return web.Response(status=403, text="bad signature")
        except Exception as e:
            log.warning("%s callback could not be decrypted: %r", self.name, e)
            return web.Response(status=400, text="bad request")

    async def callback(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    # ------------------------------------------------------------------ answers

    async def _last_outbox_id(self) -> int:
        async with self.office.sessionmaker() as session:
            return (await session.execute(select(func.max(Outbox.id)))).scalar() or 0

    async def _say_alert(self, inbound: Inbound, alert: str, before: int) -> None:
        """WeChat has no pop-up answer to a button or menu press: the alert becomes a message,
        unless the dialogue already wrote the same words to this chat."""
        async with self.office.sessionmaker() as session, session.begin():
            rows = await session.execute(
                select(Outbox.payload).where(Outbox.id > before, Outbox.channel == self.name,
                                             Outbox.chat_id == inbound.chat_id))
            if any(p.get("text") == alert for p in rows.scalars()):
                return
            await to_chat(self.office.ctx(session, inbound), self.name, inbound.chat_id, Msg(alert))
        if self.office.on_commit:
            self.office.on_commit()
