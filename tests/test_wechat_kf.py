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
from workflows.models import InboundSeen, Outbox
from workflows.wechat_models import KfCursor, KfWindow

from .contract.drivers import WeChatKfDriver
from .contract.test_contract import GRID, LEADER, RESIDENT, count, latest_case, mentions, report, staffed
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


# ---------------------------------------------------------------------- with the grid's staff on WeChat Work


@pytest.fixture
async def grid(sessionmaker):
    d = WeChatKfDriver(sessionmaker)
    await d.start()
    yield d
    await d.close()


async def resident_rows(d: WeChatKfDriver) -> list[Outbox]:
    async with d.sm() as s:
        return list((await s.execute(select(Outbox).where(
            Outbox.chat_id == d.private_chat(RESIDENT)).order_by(Outbox.id))).scalars())


async def test_the_resident_is_told_of_the_48_hour_rule_once_at_report_time(grid: WeChatKfDriver):
    await staffed(grid)
    await report(grid)
    told = mentions(grid.private_texts(RESIDENT), "48 小时")
    assert len(told) == 1 and "上报成功" in told[0]
    # the staff on WeChat Work may always be written to: not told
    assert not mentions(grid.private_texts(LEADER), "48 小时")


async def test_a_notice_after_48_hours_is_held_and_goes_once_when_the_resident_writes(grid: WeChatKfDriver):
    await staffed(grid)
    await report(grid)
    case = await latest_case(grid)
    calls = len(grid.api.calls_of("kf/send_msg"))
    grid.clock.advance(49 * 3600)
    await grid.press(LEADER, "立案", group=GRID)
    assert (await latest_case(grid)).status == "registered"
    assert len(grid.api.calls_of("kf/send_msg")) == calls  # outside the window: WeChat is not even asked
    held = [r for r in await resident_rows(grid) if r.status != "sent"]
    assert len(held) == 1 and held[0].status == "pending" and "已立案" in held[0].payload["text"]
    assert held[0].not_before - grid.clock.now() > timedelta(days=1)

    await grid.say(RESIDENT, "你好")
    assert len(mentions(grid.private_texts(RESIDENT), case.number, "已立案")) == 1
    assert all(r.status == "sent" for r in await resident_rows(grid))
    msgids = [c.body["msgid"] for c in grid.api.calls_of("kf/send_msg", ok=True)]
    assert len(msgids) == len(set(msgids))


@pytest.mark.parametrize("errcode", [45047, 45015])
async def test_a_window_answer_holds_the_message_until_the_resident_writes(grid: WeChatKfDriver, errcode: int):
    grid.api.fail_next("kf/send_msg", errcode, "out of response count limit / reply time limit")
    await grid.say(RESIDENT, "/start")
    assert grid.send_attempts(RESIDENT) == [False]
    (row,) = await resident_rows(grid)
    assert row.status == "pending" and str(errcode) in (row.error or "")  # held, not failed
    assert row.not_before - grid.clock.now() > timedelta(days=1)
    grid.clock.advance(3600)  # time alone does not release it
    await grid.delivery.drain()
    assert grid.send_attempts(RESIDENT) == [False]

    await grid.say(RESIDENT, "/start")  # the resident writes: the held reply goes, and the new one
    assert grid.send_attempts(RESIDENT) == [False, True, True]
    assert len(mentions(grid.private_texts(RESIDENT), "请选择要办理的事项")) == 2
    assert [r.status for r in await resident_rows(grid)] == ["sent", "sent"]


async def test_a_replayed_callback_and_a_repeated_msgid_have_one_effect(grid: WeChatKfDriver):
    token = grid.api.resident_writes(grid.userid(RESIDENT), "text", {"content": "/start"})
    await grid.kf_post(token)
    await grid.settle()
    assert len(grid.office.handled) == 1
    sends = len(grid.api.calls_of("kf/send_msg"))
    syncs = len(grid.api.calls_of("kf/sync_msg"))
    async with grid.sm() as s:
        window = await s.get(KfWindow, grid.userid(RESIDENT))
        opened, used = window.last_inbound_at, window.sent_since
    assert used == 1
    grid.clock.advance(60)

    for _ in range(2):  # WeChat replays the callback: we sync again, and the cursor says nothing is new
        await grid.kf_post(token)
    await grid.settle()
    assert len(grid.api.calls_of("kf/sync_msg")) > syncs
    assert len(grid.office.handled) == 1

    # sync_msg hands out the same msgid again (a cursor that was not saved): seen, no effect
    grid.api.messages.append(dict(grid.api.messages[-1]))
    grid.api.tokens.add("ENC-again")
    await grid.kf_post("ENC-again")
    await grid.settle()
    assert grid.office.handled[1][1].duplicate
    assert len(grid.api.calls_of("kf/send_msg")) == sends
    assert await count(grid, InboundSeen) == 1
    async with grid.sm() as s:  # the repeat did not open the window again (its 5 messages stay counted)
        window = await s.get(KfWindow, grid.userid(RESIDENT))
        assert (window.last_inbound_at, window.sent_since) == (opened, used)


async def test_a_residents_photo_goes_into_the_media_store_after_the_commit(kf: Kf, tmp_path):
    import io

    from PIL import Image

    from bot.media_fetch import MediaFetcher
    from workflows.media_models import MediaItem
    from workflows.media_store import DirectoryStore, sha256_of

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "green").save(buf, "JPEG")
    photo = buf.getvalue()
    await kf.write("wmRes1", "/report")
    await kf.write("wmRes1", "市政设施", menu_id=kf.menu("wmRes1", "市政设施"))
    token = kf.api.resident_writes("wmRes1", "image", {"media_id": kf.api.add_media(photo)})
    assert await kf.post(kf.event(token)) == 200
    await kf.settle()
    store = DirectoryStore(tmp_path / "media")
    assert await MediaFetcher(kf.sm, {"wechat_kf": kf.rt.adapter}, store=store, clock=kf.clock).fetch_due() == 1
    async with kf.sm() as s:
        item = (await s.execute(select(MediaItem))).scalar_one()
    assert item.channel == "wechat_kf" and item.status == "stored" and item.sha256 == sha256_of(photo)
    assert await store.get(item.sha256) == photo
