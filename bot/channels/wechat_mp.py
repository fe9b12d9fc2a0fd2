"""The 公众号 (Official Account) channel: residents on personal WeChat, following the office's account.

WeChat calls one URL on the one web server (bot/web.py): a GET to verify it (signature over
token, timestamp and nonce; we answer the echostr), and a POST per message or event — plain XML
(明文模式, checked by `signature`) or encrypted (安全模式, `encrypt_type=aes`, checked by
`msg_signature`). Every POST is answered at once with "success" (WeChat retries after 5 seconds,
and an empty answer tells it not to show "该公众号暂时无法提供服务") and handled in the background;
the answers go out as 客服消息 through the outbox, never as a passive reply, so the outbox stays the
one sender and a reply with choices (a msgmenu, which a passive reply cannot carry) works the same.

A resident's message opens their 48-hour window (reply_window.py) and releases what was held for
them, and — if they had unfollowed — what failed with 43004. A first message from an unknown openid
asks `user/info` for the unionid, so a resident already known through 微信客服 stays one person.
See docs/wechat.md.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import UnsubscribeEvent
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.utils import check_signature

from handlers.events import Inbound
from handlers.office import LOCK_RETRY_SECONDS, _locked
from workflows.models import Account, InboundSeen, Outbox
from workflows.wechat_mp_models import ReplyWindow
from workflows.wechat_people import unfollowed

from ..settings import Settings
from . import reply_window
from .wechat_mp_api import OfficialAccountAPI
from .wechat_mp_convert import NAME, event_id, to_inbound
from .wechat_mp_send import UNFOLLOWED, WeChatMpAdapter
from .wecom_api import WeComError
from .wecom_callback import EncryptedCallback

log = logging.getLogger(__name__)

SUCCESS = "success"


class WeChatMpRuntime(EncryptedCallback):
    name = NAME
    summary = "message and event callback (plain or encrypted)"

    def __init__(self, settings: Settings) -> None:
        crypto = (WeChatCrypto(settings.wechat_mp_token, settings.wechat_mp_aes_key, settings.wechat_mp_app_id)
                  if settings.wechat_mp_aes_key else None)
        super().__init__(settings, crypto, settings.wechat_mp_callback_path)
        self.token = settings.wechat_mp_token
        self.api = OfficialAccountAPI(settings.wechat_mp_app_id, settings.wechat_mp_secret,
                                      settings.wechat_mp_api_base_url)
        self.adapter = WeChatMpAdapter(self.api, template_id=settings.wechat_mp_template_id,
                                       template_fields=settings.wechat_mp_template_fields,
                                       template_url=settings.wechat_mp_template_url, timezone=settings.timezone)

    # ------------------------------------------------------------------ HTTP

    def _signed(self, request: web.Request) -> bool:
        q = request.query
        try:
            check_signature(self.token, q["signature"], q["timestamp"], q["nonce"])
        except (KeyError, InvalidSignatureException):
            log.warning("wechat_mp request with a bad or missing signature from %s", request.remote)
            return False
        return True

    async def verify_url(self, request: web.Request) -> web.Response:
        """服务器配置 → 提交: WeChat's GET, answered with its echostr when the signature is ours."""
        if not self._signed(request) or "echostr" not in request.query:
            return web.Response(status=403, text="bad signature")
        return web.Response(text=request.query["echostr"])

    async def decrypt(self, request: web.Request) -> str | web.Response:
        """The callback's XML: decrypted in safe mode, as sent in plain mode; 403 on a bad signature."""
        q = request.query
        body = await request.text()
        if not self._signed(request):
            return web.Response(status=403, text="bad signature")
        if q.get("encrypt_type", "raw") != "aes":
            if self.crypto is not None:  # safe mode configured: a plain message is not from WeChat
                log.warning("wechat_mp plain callback while safe mode is configured, from %s", request.remote)
                return web.Response(status=403, text="encryption required")
            return body
        if self.crypto is None:
            log.warning("wechat_mp encrypted callback but WECHAT_MP_AES_KEY is not set")
            return web.Response(status=400, text="bad request")
        try:
            return self.crypto.decrypt_message(body, q.get("msg_signature", ""), q["timestamp"], q["nonce"])
        except InvalidSignatureException:
            log.warning("wechat_mp callback with a bad msg_signature from %s", request.remote)
            return web.Response(status=403, text="bad signature")
        except Exception as e:
            log.warning("wechat_mp callback could not be decrypted: %r", e)
            return web.Response(status=400, text="bad request")

    async def callback(self, request: web.Request) -> web.Response:
        xml = await self.decrypt(request)
        if isinstance(xml, web.Response):
            return xml
        try:
            msg = parse_message(xml)
            user = str(msg.source or "")
        except Exception as e:
            log.warning("wechat_mp callback could not be read: %r", e)
            return web.Response(status=400, text="bad request")
        if isinstance(msg, UnsubscribeEvent):
            self.later(self._unfollowed(user))
        else:
            inbound = to_inbound(msg)
            if inbound is not None:
                self.later(self.receive(inbound))
            else:
                log.debug("wechat_mp %s from %s needs no answer", event_id(msg), user)
        return web.Response(text=SUCCESS)

    # ------------------------------------------------------------------ handling

    async def receive(self, inbound: Inbound) -> None:
        assert self.office is not None
        async with self._locks[inbound.chat_id]:  # one resident's messages in the order they came
            try:
                await self._retrying(self._opened, inbound)
                inbound.unionid = await self._retrying(self._unionid, inbound.user_id)
                before = await self._retrying(self._last_outbox_id)
                reply = await self.office.handle(inbound)
                if reply.alert and not reply.duplicate and not reply.alert_in_chat:
                    await self._retrying(self._say_alert, inbound, reply.alert, before)
            except Exception:
                log.exception("wechat_mp message %s could not be handled", inbound.event_id)

    async def _retrying(self, fn, *args):
        """A write of our own, retried while the database is locked (SQLite's one writer, a
        PostgreSQL deadlock) as the office retries its own: the callback was acknowledged, so
        giving up here would lose the message."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + LOCK_RETRY_SECONDS, 0.05
        while True:
            try:
                return await fn(*args)
            except OperationalError as e:
                if not _locked(e) or loop.time() > deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)

    async def _opened(self, inbound: Inbound) -> None:
        """The resident wrote: a fresh window; what was held for them, and what failed because they
        had unfollowed, is due now. A repeated event opens nothing."""
        now, chat_id = self.office.clock.now(), inbound.chat_id
        async with self.office.sessionmaker() as session, session.begin():
            if await session.get(InboundSeen, (NAME, inbound.event_id)) is not None:
                return
            w = await session.get(ReplyWindow, (NAME, chat_id))
            if w is None:
                session.add(ReplyWindow(channel=NAME, chat_id=chat_id, last_inbound_at=now, sent_since=0))
            else:
                w.last_inbound_at, w.sent_since = now, 0
            await reply_window.release(session, NAME, chat_id, now)
            for code in UNFOLLOWED:
                await session.execute(update(Outbox).where(
                    Outbox.channel == NAME, Outbox.chat_id == chat_id, Outbox.status == "failed",
                    Outbox.error.like(f"%{code}%")).values(status="pending", not_before=now))

    async def _unionid(self, openid: str) -> str | None:
        """The unionid of a resident we do not know yet (user/info), or None."""
        async with self.office.sessionmaker() as session:
            known = (await session.execute(select(Account.id).where(
                Account.channel == NAME, Account.external_id == openid))).first()
        if known is not None:
            return None
        try:
            info = await self.api.user_info(openid)
        except (WeComError, Exception) as e:  # no unionid is no reason to leave a resident unanswered
            log.info("wechat_mp user/info for %s failed (%s); going on without a unionid", openid, e)
            return None
        return str(info.get("unionid") or "") or None

    async def _unfollowed(self, openid: str) -> None:
        await self._retrying(self._mark_unfollowed, openid)
        log.info("wechat_mp %s unfollowed the account; messages to them are held until they follow again", openid)

    async def _mark_unfollowed(self, openid: str) -> None:
        async with self.office.sessionmaker() as session, session.begin():
            await unfollowed(self.office.ctx(session), NAME, openid)


def build(settings: Settings) -> WeChatMpRuntime:
    missing = [k for k in ("wechat_mp_app_id", "wechat_mp_secret", "wechat_mp_token") if not getattr(settings, k)]
    if missing:
        raise ValueError(f"The Official Account (WECHAT_MP_*) is missing settings: {', '.join(m.upper() for m in missing)}")
    return WeChatMpRuntime(settings)
