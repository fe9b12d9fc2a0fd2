"""微信客服: residents on personal WeChat, through the real callback server (encrypted with wechatpy's
own crypto), `kf/sync_msg` and `kf/send_msg` on a fake WeChat Work server."""

from __future__ import annotations

import time
from datetime import timedelta

import aiohttp
import pytest
import xmltodict
from sqlalchemy import select
from wechatpy.enterprise import WeChatCrypto

from bot.app import build_channels
from bot.delivery import Delivery
from bot.ratelimit import Limiter
from bot.settings import Settings
from workflows.models import Outbox
from workflows.wechat_models import KfCursor

from .fakes.wechat_kf import KF_SECRET, OPEN_KFID, FakeWeChatKf
from .fakes.wecom_api import CORP_ID
from .support import MovingClock, TrackingOffice, free_port

pytestmark = pytest.mark.demo
TOKEN, AES_KEY = "kftoken", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


class Kf:
    def __init__(self, sm, api: FakeWeChatKf) -> None:
        self.sm, self.api, self.port = sm, api, free_port()
        self.clock = MovingClock()
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
        self.n = 0

    async def start(self) -> None:
        s = Settings(_env_file=None, wecom_corp_id=CORP_ID, wechat_kf_secret=KF_SECRET, wechat_kf_token=TOKEN,
                     wechat_kf_aes_key=AES_KEY, wechat_kf_open_kfid=OPEN_KFID, http_host="127.0.0.1",
                     http_port=self.port, wecom_api_base_url=self.api.base_url)
        (self.rt,) = build_channels(s)
        self.delivery = Delivery(self.sm, {"wechat_kf": self.rt.adapter}, clock=self.clock, poll_seconds=0.05)
        self.delivery.limiters["wechat_kf"] = Limiter(())
        self.office = TrackingOffice(self.sm, clock=self.clock, channels=frozenset({"wechat_kf"}))
        await self.rt.start(self.office)

    async def stop(self) -> None:
        await self.rt.stop()

    async def post(self, plain: str, *, forge: bool = False) -> int:
        self.n += 1
        nonce, ts = f"n{self.n}", str(int(time.time()))
        d = xmltodict.parse(self.crypto.encrypt_message(plain, nonce, ts))["xml"]
        body = f"<xml><ToUserName>{CORP_ID}</ToUserName><Encrypt><![CDATA[{d['Encrypt']}]]></Encrypt></xml>"
        sig = "0" * 40 if forge else d["MsgSignature"]
        url = f"http://127.0.0.1:{self.port}/wechat/kf/callback"
        async with aiohttp.ClientSession() as http, http.post(
                url, params={"msg_signature": sig, "timestamp": ts, "nonce": nonce}, data=body.encode()) as r:
            return r.status

    def event(self, token: str) -> str:
        return (f"<xml><ToUserName>{CORP_ID}</ToUserName><CreateTime>{int(time.time())}</CreateTime>"
                f"<MsgType>event</MsgType><Event>kf_msg_or_event</Event><Token>{token}</Token>"
                f"<OpenKfId>{OPEN_KFID}</OpenKfId></xml>")

    async def write(self, user: str, text: str, *, menu_id: str | None = None) -> None:
        body = {"content": text, **({"menu_id": menu_id} if menu_id else {})}
        assert await self.post(self.event(self.api.resident_writes(user, "text", body))) == 200
        await self.settle()

    async def settle(self) -> None:
        await self.rt.idle()
        await self.delivery.drain()

    def texts(self, user: str) -> list[str]:
        out = []
        for c in self.api.sent_to(user):
            b = c.body
            out.append(b["text"]["content"] if b["msgtype"] == "text" else b.get("msgmenu", {}).get("head_content", ""))
        return out

    def menu(self, user: str, label: str) -> str:
        for c in reversed(self.api.sent_to(user)):
            for item in c.body.get("msgmenu", {}).get("list", []):
                if item["click"]["content"] == label:
                    return item["click"]["id"]
        raise AssertionError(f"no menu item {label!r}")


@pytest.fixture
async def kf(sessionmaker):
    api = await FakeWeChatKf().start()
    k = Kf(sessionmaker, api)
    await k.start()
    yield k
    await k.stop()
    await api.stop()


async def test_forged_signature_is_rejected_and_nothing_is_fetched(kf: Kf):
    token = kf.api.resident_writes("wmRes1", "text", {"content": "/report"})
    assert await kf.post(kf.event(token), forge=True) == 403
    await kf.settle()
    assert kf.api.calls_of("kf/sync_msg") == [] and kf.office.handled == []


async def test_report_starts_menus_press_and_cursor_survives_a_restart(kf: Kf):
    await kf.write("wmRes1", "/report")
    assert any("请选择问题类别" in t for t in kf.texts("wmRes1"))
    token = kf.menu("wmRes1", "市政设施")
    await kf.write("wmRes1", "市政设施", menu_id=token)
    handled = len(kf.office.handled)
    async with kf.sm() as s:
        assert (await s.get(KfCursor, OPEN_KFID)).cursor == "2"
    # a restart, then the same event replayed: the stored cursor means nothing is fetched twice
    await kf.stop()
    await kf.start()
    await kf.post(kf.event(next(iter(kf.api.tokens))))
    await kf.settle()
    assert len(kf.office.handled) == 0 and handled == 2
    sent = [c.body["msgid"] for c in kf.api.calls_of("kf/send_msg", ok=True)]
    assert len(sent) == len(set(sent))


async def test_outside_the_48_hour_window_notices_are_held_until_the_resident_writes(kf: Kf):
    await kf.write("wmRes1", "/start")
    before = len(kf.api.sent_to("wmRes1"))
    kf.clock.advance(49 * 3600)
    await kf.write("wmRes2", "/start")  # someone else writes: wmRes1's window is still closed
    from workflows.context import Ctx
    from workflows.outbox import Msg, to_chat
    async with kf.sm() as s, s.begin():
        await to_chat(Ctx(session=s, clock=kf.clock, channels=frozenset({"wechat_kf"})), "wechat_kf", "wmRes1",
                      Msg("您的诉求已结案"))
    await kf.delivery.drain()
    assert len(kf.api.sent_to("wmRes1")) == before  # held, no API call
    async with kf.sm() as s:
        row = (await s.execute(select(Outbox).where(Outbox.chat_id == "wmRes1", Outbox.status == "pending"))).scalar_one()
        assert row.not_before - kf.clock.now() > timedelta(days=1)
    await kf.write("wmRes1", "你好")
    assert any("已结案" in t for t in kf.texts("wmRes1"))


async def test_45047_holds_the_message_and_it_goes_once(kf: Kf):
    kf.api.fail_next("kf/send_msg", 45047, "out of response count limit")
    await kf.write("wmRes1", "/start")
    attempts = kf.api.calls_of("kf/send_msg")
    assert [c.ok for c in attempts] == [False]
    await kf.write("wmRes1", "/start")  # the resident writes again: the held reply goes now
    assert kf.api.calls_of("kf/send_msg", ok=False) and len(kf.api.sent_to("wmRes1")) >= 2
