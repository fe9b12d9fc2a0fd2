"""The 微信客服 (WeChat customer service) channel: residents on personal WeChat, through WeChat Work.

The callback (encrypted like WeChat Work's own) only says that messages are waiting
(`kf_msg_or_event` with a token); the runtime then pulls them with `kf/sync_msg`, page by page,
keeping the cursor in kf_cursor after each page, and hands each resident message to the office
(its msgid is the event id, so a page seen twice has no effect twice). A resident's message opens
their 48-hour reply window and releases the rows held for them. See docs/wechat.md.
"""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import select
from wechatpy.enterprise import WeChatCrypto

from handlers.events import Inbound
from workflows.models import Account, InboundSeen
from workflows.wechat_models import KfCursor, KfWindow

from ..settings import Settings
from . import reply_window
from .wechat_kf_convert import NAME, to_inbound
from .wechat_kf_send import WeChatKfAdapter
from .wecom_api import WeComAPI
from .wecom_callback import EncryptedCallback
from .wecom_validate import Unreadable, excerpt, read_xml, text, unreadable_inbound

log = logging.getLogger(__name__)

PAGE = 1000


class WeChatKfRuntime(EncryptedCallback):
    name = NAME
    summary = "encrypted callback (messages waiting)"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, WeChatCrypto(settings.wechat_kf_token, settings.wechat_kf_aes_key,
                                                settings.wecom_corp_id), settings.wechat_kf_callback_path)
        self.api = WeComAPI(settings.wecom_corp_id, settings.wechat_kf_secret, None, settings.wecom_api_base_url)
        self.adapter = WeChatKfAdapter(self.api, settings.wechat_kf_open_kfid)

    # ------------------------------------------------------------------ HTTP

    async def callback(self, request: web.Request) -> web.Response:
        xml = await self.decrypt(request)
        if isinstance(xml, web.Response):
            return xml
        try:
            event = read_xml(xml)
            if text(event, "Event").strip() != "kf_msg_or_event":
                return web.Response(text="")
            open_kfid = text(event, "OpenKfId").strip() or self.adapter.open_kfid
            token = text(event, "Token").strip()
        except Unreadable as e:  # signed by WeChat Work: an error answer would only bring it back
            log.warning("wechat_kf callback unreadable (%s), acknowledged and skipped: %s", e.reason, excerpt(xml))
            return web.Response(text="")
        # a replayed event only makes us sync again: the cursor and the msgids make that harmless
        self.later(self.sync(open_kfid, token))
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
            msgs = page.get("msg_list") or []
            for msg in msgs if isinstance(msgs, list) else [msgs]:
                try:
                    inbound = to_inbound(msg)
                except Unreadable as e:
                    # logged once and skipped with its page (the cursor moves on), the resident
                    # told it was not understood when they can be made out
                    log.warning("wechat_kf message unreadable (%s) from %s, skipped: %s", e.reason,
                                e.sender or "an unknown sender", excerpt(msg))
                    if e.sender is None:
                        continue
                    inbound = unreadable_inbound(NAME, e.sender, msg)
                if inbound is None:
                    continue
                await self._opened(inbound)
                inbound.unionid = await self._unionid(inbound.user_id)
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

    async def _unionid(self, external_userid: str) -> str | None:
        """The unionid of a resident we do not know yet (kf/customer/batchget), so one who already
        came through the office's 公众号 stays one person; None when WeChat gives none."""
        async with self.office.sessionmaker() as session:
            known = (await session.execute(select(Account.id).where(
                Account.channel == NAME, Account.external_id == external_userid))).first()
        if known is not None:
            return None
        try:
            page = await self.api.post("kf/customer/batchget", {"external_userid_list": [external_userid],
                                                                 "need_enter_session_context": 0})
        except Exception as e:  # no unionid is no reason to leave a resident unanswered
            log.info("wechat_kf customer/batchget for %s failed (%s); going on without a unionid", external_userid, e)
            return None
        for c in page.get("customer_list") or []:
            if c.get("external_userid") == external_userid and c.get("unionid"):
                return str(c["unionid"])
        return None

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
            await reply_window.release(session, NAME, chat_id, now)


def build(settings: Settings) -> WeChatKfRuntime:
    missing = [k for k in ("wecom_corp_id", "wechat_kf_secret", "wechat_kf_token", "wechat_kf_aes_key",
                           "wechat_kf_open_kfid") if not getattr(settings, k)]
    if missing:
        raise ValueError(f"WeChat customer service (kf) is missing settings: {', '.join(m.upper() for m in missing)}")
    return WeChatKfRuntime(settings)
