"""The WeChat Work (企业微信) self-built app channel: a callback server and the sending adapter.

GET on the callback path answers WeChat Work's URL verification; POST carries an encrypted
message or event. A request whose signature or encryption is wrong gets 403/400 and has no
effect. A good one is acknowledged at once (WeChat Work retries after 5 seconds) and handled
afterwards, one at a time per member, in arrival order. See docs/wecom.md.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from datetime import timedelta

from aiohttp import web
from wechatpy.enterprise import WeChatCrypto

from handlers.events import Inbound
from workflows.channel_models import ChannelChoice

from ..settings import Settings
from .wecom_api import WeComAPI
from .wecom_callback import EncryptedCallback
from .wecom_convert import NAME, to_inbound
from .wecom_send import WeComAdapter
from .wecom_validate import Unreadable, excerpt, unreadable_inbound

log = logging.getLogger(__name__)

CHOICE_MAX_AGE = timedelta(days=2)
RECENT_EVENTS = 2000
NUMBER = re.compile(r"^\s*(\d{1,2})\s*$")


class WeComRuntime(EncryptedCallback):
    name = NAME

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, WeChatCrypto(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id),
                         settings.wecom_callback_path)
        self.api = WeComAPI(settings.wecom_corp_id, settings.wecom_secret, settings.wecom_agent_id,
                            settings.wecom_api_base_url)
        self.adapter = WeComAdapter(self.api)
        self._recent: OrderedDict[str, None] = OrderedDict()

    # ------------------------------------------------------------------ HTTP

    async def callback(self, request: web.Request) -> web.Response:
        xml = await self.decrypt(request)
        if isinstance(xml, web.Response):
            return xml
        try:
            inbound, raw = to_inbound(xml)
        except Unreadable as e:
            # signed by WeChat Work, so an error answer would only bring the same body back:
            # logged once, acknowledged, and the sender (when known) told it was not understood
            log.warning("wecom callback unreadable (%s) from %s, acknowledged and skipped: %s",
                        e.reason, e.sender or "an unknown sender", excerpt(xml))
            if e.sender is None:
                return web.Response(text="")
            inbound = unreadable_inbound(NAME, e.sender, xml)
        if inbound is None:
            return web.Response(text="")
        if inbound.event_id in self._recent:  # a retry of a callback we already took
            return web.Response(text="")
        self._recent[inbound.event_id] = None
        while len(self._recent) > RECENT_EVENTS:
            self._recent.popitem(last=False)
        self.later(self._process(inbound))
        return web.Response(text="")

    # ------------------------------------------------------------------ handling

    async def _process(self, inbound: Inbound) -> None:
        assert self.office is not None
        async with self._locks[inbound.chat_id]:
            try:
                await self._numbered_choice(inbound)
                before = await self._last_outbox_id()
                reply = await self.office.handle(inbound)
                if reply.alert and not reply.duplicate:
                    await self._say_alert(inbound, reply.alert, before)
            except Exception:
                log.exception("wecom event %s failed", inbound.event_id)

    async def _numbered_choice(self, inbound: Inbound) -> None:
        """A reply "2" after a numbered list presses the second button of that list."""
        m = NUMBER.match(inbound.text or "") if inbound.kind == "message" and not inbound.media else None
        if m is None:
            return
        async with self.office.sessionmaker() as session:
            row = await session.get(ChannelChoice, (NAME, inbound.chat_id))
        if row is None or self.office.clock.now() - row.created_at > CHOICE_MAX_AGE:
            return
        n = int(m.group(1))
        if 1 <= n <= len(row.tokens):
            inbound.kind, inbound.button, inbound.text = "button", row.tokens[n - 1], None

def build(settings: Settings) -> WeComRuntime:
    missing = [k for k in ("wecom_corp_id", "wecom_secret", "wecom_token", "wecom_aes_key")
               if not getattr(settings, k)]
    if missing:
        raise ValueError(f"WeChat Work is missing settings: {', '.join(m.upper() for m in missing)}")
    return WeComRuntime(settings)
