"""公众号 (Official Account): residents on personal WeChat through the office's account — the real
callback server on the one web server, callbacks from a fake 公众号 platform (plain, or encrypted
with wechatpy's own crypto), 客服消息 and 模板消息 to it; the staff on WeChat Work (tests/fakes)."""

from __future__ import annotations

import io
import logging
from datetime import timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import build_channels
from bot.delivery import Delivery
from bot.media_fetch import MediaFetcher
from bot.ratelimit import Limiter
from bot.settings import Settings
from workflows.media_models import MediaItem
from workflows.media_store import DirectoryStore, sha256_of
from workflows.models import Account, Case, InboundSeen, Outbox
from workflows.wechat_mp_models import ReplyWindow, SentPart

from .contract.drivers import WeChatMpDriver, cdata
from .contract.test_contract import (
    GRID,
    LEADER,
    RESIDENT,
    WORKER,
    count,
    latest_case,
    mentions,
    report,
    staffed,
)
from .fakes.wechat_kf import KF_SECRET, OPEN_KFID, FakeWeChatKf
from .fakes.wechat_mp import APP_ID, APP_SECRET, MP_AES_KEY, MP_TOKEN, FakeOfficialAccount
from .fakes.wecom_api import CORP_ID
from .support import MovingClock, TrackingOffice, free_port

pytestmark = pytest.mark.demo
TEMPLATE = "tpl-case-status-0001"


@pytest.fixture
async def grid(sessionmaker):
    d = WeChatMpDriver(sessionmaker)
    await d.start()
    try:
        yield d
    finally:
        await d.close()


def openid(d: WeChatMpDriver, who: str = RESIDENT) -> str:
    return d.userid(who)


async def resident_rows(d: WeChatMpDriver) -> list[Outbox]:
    async with d.sm() as s:
        return list((await s.execute(select(Outbox).where(Outbox.chat_id == openid(d)).order_by(Outbox.id))).scalars())


async def close_the_case(d: WeChatMpDriver) -> None:
    """The staff's part of the loop, on WeChat Work: the resident is asked for a rating at the end."""
    await d.press(LEADER, "派遣", group=GRID)
    await d.press(LEADER, "孙丽", group=GRID)
    await d.press(WORKER, "接收")
    await d.press(WORKER, "办结")
    await d.say(WORKER, "已更换灯泡，恢复照明")
    await d.press(WORKER, "提交结果")
    await d.press(LEADER, "核查通过", group=GRID)


# ====================================================================== the URL and the signatures


async def test_url_verification_answers_the_echostr_and_refuses_a_forged_signature(grid: WeChatMpDriver):
    status, answer = await grid.mp_api.verify(grid.mp_url)
    assert status == 200 and answer.startswith("echo")
    status, answer = await grid.mp_api.verify(grid.mp_url, signature="0" * 40)
    assert status == 403 and "echo" not in answer


async def test_forged_signatures_are_refused_and_change_nothing(grid: WeChatMpDriver):
    plain = grid.mp_api.xml(openid(grid), "text", f"<Content>{cdata('/report')}</Content>")
    # a forged plain signature, a forged msg_signature, and a plain body while safe mode is configured
    assert (await grid.mp_api.push(grid.mp_url, plain, query={"signature": "0" * 40}))[0] == 403
    assert (await grid.mp_api.push(grid.mp_url, plain, query={"msg_signature": "0" * 40}))[0] == 403
    assert (await grid.mp_api.push(grid.mp_url, plain, encrypted=False))[0] == 403
    await grid.settle()
    assert grid.office.handled == [] and await count(grid, InboundSeen) == 0
    assert grid.mp_api.calls_of("message/custom/send") == []


async def test_plain_mode_works_without_an_aes_key(grid: WeChatMpDriver):
    grid.mp_settings = {"wechat_mp_aes_key": None}
    await grid.restart()
    grid.mp_api.crypto = None  # 明文模式 on the platform side too
    await grid.say(RESIDENT, "/report")
    assert mentions(grid.private_texts(RESIDENT), "请选择问题类别")


# ====================================================================== events and odd input


async def test_a_follow_is_greeted_once_even_when_replayed(grid: WeChatMpDriver):
    event = grid.mp_api.xml(openid(grid), "event", f"<Event>{cdata('subscribe')}</Event>"
                                                    f"<EventKey>{cdata('')}</EventKey>")
    await grid._resident(RESIDENT, event, times=2)
    assert len(mentions(grid.private_texts(RESIDENT), "请选择要办理的事项")) == 1
    assert await count(grid, InboundSeen) == 1


async def test_the_menu_entries_run_their_commands(grid: WeChatMpDriver):
    click = grid.mp_api.xml(openid(grid), "event", f"<Event>{cdata('CLICK')}</Event>"
                                                    f"<EventKey>{cdata('GB_REPORT')}</EventKey>")
    await grid._resident(RESIDENT, click)
    assert mentions(grid.private_texts(RESIDENT)[-2:], "请选择问题类别")  # 14 categories: two menus


async def test_an_unknown_message_type_is_answered_and_an_unknown_event_ignored(grid: WeChatMpDriver):
    link = grid.mp_api.xml(openid(grid), "link", f"<Title>{cdata('看看')}</Title><Url>{cdata('http://x')}</Url>")
    await grid._resident(RESIDENT, link)
    assert mentions(grid.private_texts(RESIDENT), "暂不支持这种消息")
    sent = len(grid.private_texts(RESIDENT))
    odd = grid.mp_api.xml(openid(grid), "event", f"<Event>{cdata('some_future_event')}</Event>")
    status, answer = await grid.mp_api.push(grid.mp_url, odd)
    await grid.settle()
    assert (status, answer) == (200, "success") and len(grid.private_texts(RESIDENT)) == sent
    # signed and encrypted, but no message inside: refused as unreadable, nothing handled
    handled = len(grid.office.handled)
    assert (await grid.mp_api.push(grid.mp_url, "<xml><not-closed>"))[0] == 400
    await grid.settle()
    assert len(grid.office.handled) == handled


async def test_a_photo_goes_into_the_media_store_after_the_commit(grid: WeChatMpDriver, tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "orange").save(buf, "JPEG")
    photo = buf.getvalue()
    media_id = grid.mp_api.add_media(photo, "image/jpeg")
    await grid.say(RESIDENT, "/report")
    await grid.press(RESIDENT, "市政设施")
    await grid.say(RESIDENT, "路灯坏了")
    await grid._resident(RESIDENT, grid.mp_api.xml(openid(grid), "image",
                                                   f"<PicUrl>{cdata('http://mmbiz/p.jpg')}</PicUrl>"
                                                   f"<MediaId>{cdata(media_id)}</MediaId>"))
    store = DirectoryStore(tmp_path / "media")
    fetcher = MediaFetcher(grid.sm, {"wechat_mp": grid.mp.adapter}, store=store, clock=grid.clock)
    assert await fetcher.fetch_due() == 1
    async with grid.sm() as s:
        item = (await s.execute(select(MediaItem))).scalar_one()
    assert item.channel == "wechat_mp" and item.status == "stored" and item.sha256 == sha256_of(photo)
    assert await store.get(item.sha256) == photo


# ====================================================================== the 48-hour window


async def test_outside_the_window_a_case_notice_goes_as_a_template_and_in_full_when_the_resident_writes(
        grid: WeChatMpDriver):
    grid.mp_settings = {"wechat_mp_template_id": TEMPLATE,
                        "wechat_mp_template_fields": "character_string1=number,thing2=text,time3=time"}
    await grid.restart()
    await staffed(grid)
    await report(grid)
    assert mentions(grid.private_texts(RESIDENT), "上报成功", "48 小时内送达")  # told at report time
    grid.clock.advance(49 * 3600)  # two days later the staff close it: the window has closed
    custom = len(grid.mp_api.calls_of("message/custom/send"))
    await close_the_case(grid)
    case = await latest_case(grid)
    assert case.status == "closed"
    assert len(grid.mp_api.calls_of("message/custom/send")) == custom  # nothing tried inside the closed window
    templates = grid.mp_api.templates_to(openid(grid))
    assert templates, "the resident was not told by a template message"
    assert all(t.body["template_id"] == TEMPLATE for t in templates)
    assert any(t.body["data"]["character_string1"]["value"] == case.number for t in templates)
    assert all(len(t.body["data"]["thing2"]["value"]) <= 20 for t in templates)
    held = [r for r in await resident_rows(grid) if r.status == "pending"]
    assert held and all(r.priority == 1 for r in held)

    grid.clock.advance(3600)  # time alone sends nothing twice
    await grid.delivery.drain()
    assert grid.mp_api.templates_to(openid(grid)) == templates
    assert len({t.body["client_msg_id"] for t in templates}) == len(templates)

    await grid.say(RESIDENT, "你好")  # the resident writes: the full notices go out, once
    assert mentions(grid.private_texts(RESIDENT), "请对处理结果进行评价")
    await grid.press(RESIDENT, "满意")
    assert (await latest_case(grid)).rating == "satisfied"
    assert grid.mp_api.templates_to(openid(grid)) == templates
    assert all(r.status == "sent" for r in await resident_rows(grid))


async def test_without_a_template_id_the_notice_is_held_and_the_log_says_so(grid: WeChatMpDriver, caplog):
    await staffed(grid)
    await report(grid)
    grid.clock.advance(49 * 3600)
    with caplog.at_level(logging.WARNING, logger="bot.channels.wechat_mp_send"):
        await close_the_case(grid)
    assert any("no WECHAT_MP_TEMPLATE_ID" in r.getMessage() for r in caplog.records)
    assert grid.mp_api.calls_of("message/template/send") == []
    assert any(r.status == "pending" for r in await resident_rows(grid))
    await grid.say(RESIDENT, "在吗")
    assert mentions(grid.private_texts(RESIDENT), "请对处理结果进行评价")


async def test_wechat_saying_the_window_is_closed_holds_the_row_without_a_failed_attempt(grid: WeChatMpDriver):
    await grid.say(RESIDENT, "/start")
    grid.mp_api.fail_next("message/custom/send", 45047, "out of response count limit")
    await grid.say(RESIDENT, "/help")
    rows = await resident_rows(grid)
    assert rows[-1].status == "pending" and rows[-1].attempts == 0 and "45047" in rows[-1].error
    async with grid.sm() as s:  # WeChat's word is believed: the window is closed until the resident writes
        w = await s.get(ReplyWindow, ("wechat_mp", openid(grid)))
        assert grid.clock.now() - w.last_inbound_at > timedelta(hours=48)
    await grid.say(RESIDENT, "/start")
    assert [r.status for r in await resident_rows(grid)] == ["sent", "sent", "sent"]
    assert grid.send_attempts(RESIDENT) == [True, False, True, True]


async def test_a_part_sent_before_a_rate_limit_is_not_sent_again(grid: WeChatMpDriver):
    await grid.say(RESIDENT, "/start")
    before = len(grid.mp_api.calls_of("message/custom/send"))
    # the categories come as two menus (10 + 4): the second is refused once with a rate limit
    grid.mp_api.fail_next("message/custom/send", 45009, "api freq out of limit", after=1)
    await grid.say(RESIDENT, "/report")
    calls = grid.mp_api.calls_of("message/custom/send")[before:]
    assert [c.ok for c in calls] == [True, False, True]
    assert calls[0].body["msgmenu"]["head_content"].startswith("请选择问题类别")
    assert calls[2].body == calls[1].body  # the refused part again, not the first one
    row = (await resident_rows(grid))[-1]
    assert row.status == "sent" and row.attempts == 1
    async with grid.sm() as s:
        parts = set((await s.execute(select(SentPart.part).where(SentPart.outbox_id == row.id))).scalars())
    assert parts == {"menu0", "menu10"}


# ====================================================================== a resident who unfollowed


async def test_a_resident_who_unfollowed_is_marked_and_gets_the_notice_after_following_again(grid: WeChatMpDriver):
    await staffed(grid)
    await report(grid)
    await grid._resident(RESIDENT, grid.mp_api.xml(openid(grid), "event", f"<Event>{cdata('unsubscribe')}</Event>"))
    async with grid.sm() as s:
        acct = (await s.execute(select(Account).where(Account.channel == "wechat_mp"))).scalar_one()
        assert acct.undeliverable
    grid.mp_api.unfollowed.add(openid(grid))
    await close_the_case(grid)
    failed = [r for r in await resident_rows(grid) if r.status == "failed"]
    assert failed and all("43004" in r.error for r in failed)

    grid.mp_api.unfollowed.discard(openid(grid))  # they follow again
    sent_before = len(grid.private_texts(RESIDENT))
    await grid._resident(RESIDENT, grid.mp_api.xml(openid(grid), "event", f"<Event>{cdata('subscribe')}</Event>"
                                                                         f"<EventKey>{cdata('')}</EventKey>"))
    texts = grid.private_texts(RESIDENT)[sent_before:]
    assert len(mentions(texts, "请对处理结果进行评价")) == 1
    assert all(r.status == "sent" for r in await resident_rows(grid))
    async with grid.sm() as s:
        acct = (await s.execute(select(Account).where(Account.channel == "wechat_mp"))).scalar_one()
        assert acct.undeliverable is None


# ====================================================================== one resident, several doors


class TwoDoors:
    """The office's 公众号 and its 微信客服 on one process and one database (no staff needed)."""

    def __init__(self, sm, mp: FakeOfficialAccount, kf: FakeWeChatKf) -> None:
        self.sm, self.mp_api, self.kf_api, self.port = sm, mp, kf, free_port()
        self.clock = MovingClock()

    async def start(self) -> None:
        from bot.web import from_settings

        from .contract.drivers import KF_TOKEN

        s = Settings(_env_file=None, wecom_corp_id=CORP_ID, wechat_kf_secret=KF_SECRET, wechat_kf_token=KF_TOKEN,
                     wechat_kf_aes_key=MP_AES_KEY, wechat_kf_open_kfid=OPEN_KFID, wecom_api_base_url=self.kf_api.base_url,
                     wechat_mp_app_id=APP_ID, wechat_mp_secret=APP_SECRET, wechat_mp_token=MP_TOKEN,
                     wechat_mp_aes_key=MP_AES_KEY, wechat_mp_api_base_url=self.mp_api.base_url,
                     http_host="127.0.0.1", http_port=self.port)
        self.kf, self.mp = build_channels(s)
        names = frozenset({"wechat_kf", "wechat_mp"})
        self.delivery = Delivery(self.sm, {"wechat_kf": self.kf.adapter, "wechat_mp": self.mp.adapter},
                                 clock=self.clock, poll_seconds=0.05)
        for n in names:
            self.delivery.limiters[n] = Limiter(())
        self.office = TrackingOffice(self.sm, clock=self.clock, channels=names, on_commit=self.delivery.wake)
        self.server = from_settings(s, self.sm, self.clock)
        from wechatpy.enterprise import WeChatCrypto

        self.kf_crypto = WeChatCrypto(KF_TOKEN, MP_AES_KEY, CORP_ID)
        for c in (self.kf, self.mp):
            c.routes(self.server)
            await c.start(self.office)
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop()
        for c in (self.kf, self.mp):
            await c.stop()

    async def settle(self) -> None:
        await self.mp.idle()
        await self.kf.idle()
        await self.delivery.drain()

    async def mp_says(self, openid: str, text: str) -> None:
        plain = self.mp_api.xml(openid, "text", f"<Content>{cdata(text)}</Content>")
        assert (await self.mp_api.push(f"http://127.0.0.1:{self.port}/wechat/mp/callback", plain))[0] == 200
        await self.settle()

    async def kf_says(self, userid: str, text: str) -> None:
        import time

        import aiohttp
        import xmltodict

        token = self.kf_api.resident_writes(userid, "text", {"content": text})
        plain = (f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><CreateTime>{int(time.time())}</CreateTime>"
                 f"<MsgType>{cdata('event')}</MsgType><Event>{cdata('kf_msg_or_event')}</Event>"
                 f"<Token>{cdata(token)}</Token><OpenKfId>{cdata(OPEN_KFID)}</OpenKfId></xml>")
        ts, nonce = str(int(time.time())), f"n{token}"
        d = xmltodict.parse(self.kf_crypto.encrypt_message(plain, nonce, ts))["xml"]
        body = f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><Encrypt>{cdata(d['Encrypt'])}</Encrypt></xml>"
        async with aiohttp.ClientSession() as http, http.post(
                f"http://127.0.0.1:{self.port}/wechat/kf/callback",
                params={"msg_signature": d["MsgSignature"], "timestamp": ts, "nonce": nonce}, data=body.encode()) as r:
            assert r.status == 200
        await self.settle()

    async def people(self) -> dict[tuple[str, str], int]:
        async with self.sm() as s:
            rows = await s.execute(select(Account.channel, Account.external_id, Account.person_id))
            return {(c, e): p for c, e, p in rows}


@pytest.fixture
async def doors(sessionmaker):
    mp, kf = await FakeOfficialAccount().start(), await FakeWeChatKf().start()
    d = TwoDoors(sessionmaker, mp, kf)
    await d.start()
    yield d
    await d.stop()
    await mp.stop()
    await kf.stop()


async def test_one_unionid_through_the_official_account_and_customer_service_is_one_person(doors: TwoDoors):
    doors.mp_api.unionids["oWang"] = "uWANG"
    doors.kf_api.unionids["wmWang"] = "uWANG"
    doors.kf_api.unionids["wmLi"] = "uLI"  # someone else
    await doors.mp_says("oWang", "/report")
    await doors.kf_says("wmWang", "/my")
    await doors.kf_says("wmLi", "/my")
    people = await doors.people()
    assert people[("wechat_mp", "oWang")] == people[("wechat_kf", "wmWang")]
    assert people[("wechat_kf", "wmLi")] != people[("wechat_mp", "oWang")]
    async with doors.sm() as s:
        acct = (await s.execute(select(Account).where(Account.external_id == "wmWang"))).scalar_one()
        assert acct.unionid == "uWANG"
    # user/info and batchget are asked once per new resident, not per message
    await doors.mp_says("oWang", "/cancel")
    assert len(doors.mp_api.calls_of("user/info")) == 1


async def test_without_a_unionid_the_one_time_code_joins_the_two_doors(doors: TwoDoors):
    await doors.mp_says("oZhao", "/bindaccount")
    code_text = next(c.body["text"]["content"] for c in doors.mp_api.sent_to("oZhao")
                     if "/bindaccount" in c.body.get("text", {}).get("content", ""))
    code = code_text.split("/bindaccount ")[-1].split()[0]
    await doors.kf_says("wmZhao", f"/bindaccount {code}")
    people = await doors.people()
    assert people[("wechat_mp", "oZhao")] == people[("wechat_kf", "wmZhao")]
    async with doors.sm() as s:
        assert (await s.execute(select(func.count()).select_from(Case))).scalar_one() == 0


# ====================================================================== the custom menu


async def test_gridbot_wechat_mp_menu_pushes_the_three_entries(sessionmaker):
    from bot.wechat_mp_cli import menu, push_menu

    api = await FakeOfficialAccount().start()
    try:
        s = Settings(_env_file=None, wechat_mp_app_id=APP_ID, wechat_mp_secret=APP_SECRET,
                     wechat_mp_api_base_url=api.base_url, wechat_kf_link="https://work.weixin.qq.com/kfid/kfcTEST")
        await push_menu(s, menu(s))
        (pushed,) = api.menus
        names = [b["name"] for b in pushed["button"]]
        assert names == ["报事", "我的事件", "联系网格员"]
        assert pushed["button"][2] == {"type": "view", "name": "联系网格员", "url": "https://work.weixin.qq.com/kfid/kfcTEST"}
        # without 微信客服 the third entry shows the help; every click key is one the channel knows
        plain = menu(Settings(_env_file=None))
        from bot.channels.wechat_mp_convert import MENU_COMMANDS

        assert [b["key"] for b in plain["button"]] == list(MENU_COMMANDS)
    finally:
        await api.stop()
