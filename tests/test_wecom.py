"""The WeChat Work channel: encrypted callbacks POSTed over HTTP to the real callback server,
replies sent by the real adapter (wechatpy) to a fake WeChat Work API, with the office and the
delivery worker running as in `gridbot run`."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import aiohttp
import pytest
from sqlalchemy import func, select
from wechatpy.crypto import _get_signature
from wechatpy.enterprise import WeChatCrypto
from wechatpy.enterprise.crypto import PrpCrypto

from bot.channels import wecom
from bot.channels.base import OutgoingMessage, PermanentError, RetryLater
from bot.channels.wecom_convert import to_inbound
from bot.channels.wecom_send import MAX_BYTES, split_text
from bot.delivery import Delivery
from bot.ratelimit import Limiter
from bot.settings import Settings
from bot.wecom_cli import create_group, sync_groups
from workflows import geo
from workflows.channel_models import ChannelChoice
from workflows.context import Ctx
from workflows.errors import Invalid
from workflows.models import (
    Account,
    Assignment,
    CaseEvent,
    Category,
    GroupBinding,
    InboundSeen,
    Node,
    Outbox,
    Person,
)

from .conftest import START
from .fakes.wecom_api import CORP_ID, SECRET, FakeWeCom
from .support import Desk, MovingClock, Reads, TrackingOffice, free_port

TOKEN = "callbacktoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as WeChat Work issues
AGENT = "1000002"
LEADER, WORKER, OTHER, RESIDENT = "zhangwei", "sunli", "machao", "wangxm"


def cdata(v: object) -> str:
    return f"<![CDATA[{v}]]>"


class WeGrid(Reads):
    """A street → community → grid, a leader and two workers with WeChat Work userids; the channel over it."""

    def __init__(self, sm, api: FakeWeCom) -> None:
        self.sm = sm
        self.api = api
        self.clock = MovingClock()
        self.port = free_port()
        self.settings = Settings(_env_file=None, wecom_corp_id=CORP_ID, wecom_agent_id=AGENT, wecom_secret=SECRET,
                                 wecom_token=TOKEN, wecom_aes_key=AES_KEY, wecom_callback_host="127.0.0.1",
                                 wecom_callback_port=self.port, wecom_api_base_url=api.base_url)
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
        self.ids: dict[str, int] = {}
        self.runtime: wecom.WeComRuntime | None = None
        self.office: TrackingOffice | None = None
        self.delivery: Delivery | None = None
        self._seq = itertools.count(1)
        self._ts = itertools.count(int(START.timestamp()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/wecom/callback"

    def ctx(self, session) -> Ctx:
        return Ctx(session=session, clock=self.clock, channels=frozenset({"wecom", "test"}))

    async def build_tree(self) -> WeGrid:
        now = self.clock.now()
        async with self.sm() as s, s.begin():
            street = Node(code="XH", name="西湖街道", level="street", case_prefix="XH")
            s.add(street)
            await s.flush()
            community = Node(code="CY", name="翠苑社区", level="community", parent_id=street.id)
            s.add(community)
            await s.flush()
            grid = Node(code="CY-01", name="翠苑一网格", level="grid", parent_id=community.id)
            s.add_all([grid, Category(code="SZ", name="市政设施", time_limit_hours=72, sort=1),
                       Category(code="HJ", name="环境卫生", time_limit_hours=24, sort=2)])
            staff = [Person(code="CY01-L", name="张伟", created_at=now),
                     Person(code="CY01-W1", name="孙丽", created_at=now),
                     Person(code="CY01-W2", name="马超", created_at=now)]
            s.add_all(staff)
            await s.flush()
            for p, role, userid in zip(staff, ("leader", "worker", "worker"), (LEADER, WORKER, OTHER), strict=True):
                s.add(Assignment(person_id=p.id, node_id=grid.id, role=role))
                s.add(Account(channel="wecom", external_id=userid, chat_id=userid, person_id=p.id, created_at=now))
            self.ids = {"grid": grid.id, "L": staff[0].id, "W1": staff[1].id, "W2": staff[2].id}
        return self

    async def create_group(self) -> str:
        async with self.sm() as s, s.begin():
            return await create_group(s, self.runtime.api if self.runtime else wecom.build(self.settings).api,
                                      "CY-01", self.clock)

    async def start(self) -> None:
        self.runtime = wecom.build(self.settings)
        self.delivery = Delivery(self.sm, {"wecom": self.runtime.adapter}, clock=self.clock, poll_seconds=0.05)
        self.delivery.limiters["wecom"] = Limiter(())  # the windows are checked on their own
        self.office = TrackingOffice(self.sm, clock=self.clock, channels=frozenset({"wecom", "test"}),
                                     on_commit=self.delivery.wake)
        await self.runtime.start(self.office)
        # the delivery worker runs between callbacks (settle), not beside them: on SQLite a write
        # racing the office's read-then-write transaction fails with "database is locked"
        # (reported for bot/db.py)

    async def stop(self) -> None:
        if self.runtime is not None:
            await self.runtime.stop()
        self.runtime = self.delivery = None

    # ------------------------------------------------------------------ callbacks

    def xml(self, user: str, msgtype: str, body: str, *, msg_id: int | None = None) -> str:
        ts = next(self._ts)
        mid = f"<MsgId>{msg_id if msg_id is not None else 7_000_000 + next(self._seq)}</MsgId>" \
            if msgtype != "event" else ""
        return (f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><FromUserName>{cdata(user)}</FromUserName>"
                f"<CreateTime>{ts}</CreateTime><MsgType>{cdata(msgtype)}</MsgType>{body}{mid}"
                f"<AgentID>{AGENT}</AgentID></xml>")

    def encrypted(self, plain: str) -> tuple[str, dict]:
        nonce, ts = f"n{next(self._seq)}", str(int(time.time()))
        enc = self.crypto.encrypt_message(plain, nonce, ts)
        import xmltodict

        d = xmltodict.parse(enc)["xml"]
        body = f"<xml><ToUserName>{cdata(CORP_ID)}</ToUserName><Encrypt>{cdata(d['Encrypt'])}</Encrypt>" \
               f"<AgentID>{cdata(AGENT)}</AgentID></xml>"
        return body, {"msg_signature": d["MsgSignature"], "timestamp": ts, "nonce": nonce}

    async def post(self, plain: str, *, tamper: Callable[[str, dict], tuple[str, dict]] | None = None) -> int:
        body, params = self.encrypted(plain)
        if tamper:
            body, params = tamper(body, params)
        async with aiohttp.ClientSession() as http, http.post(self.url, params=params, data=body.encode()) as r:
            await r.read()
            return r.status

    async def quiet(self) -> bool:
        async with self.sm() as s:
            n = await s.execute(select(func.count()).select_from(Outbox).where(
                Outbox.channel == "wecom", Outbox.status.in_(["pending", "sending"])))
            return n.scalar_one() == 0

    async def settle(self) -> None:
        await self.runtime.idle()
        await self.delivery.drain()
        assert await self.quiet()

    async def send(self, plain: str) -> None:
        assert await self.post(plain) == 200
        await self.settle()

    async def say(self, user: str, text: str) -> None:
        await self.send(self.xml(user, "text", f"<Content>{cdata(text)}</Content>"))

    async def click(self, user: str, key: str) -> None:
        await self.send(self.xml(user, "event", f"<Event>{cdata('template_card_event')}</Event>"
                                                f"<EventKey>{cdata(key)}</EventKey><TaskId>{cdata('t')}</TaskId>"
                                                f"<CardType>{cdata('button_interaction')}</CardType>"
                                                f"<ResponseCode>{cdata('rc')}</ResponseCode>"))

    def find(self, user: str, label: str) -> str:
        for call in reversed(self.api.sent_to_user(user)):
            for text, key in call.buttons():
                if text == label:
                    return key
        raise AssertionError(f"no button {label!r} sent to {user}: {[c.content()[:40] for c in self.api.sent_to_user(user)]}")

    async def press(self, user: str, label: str) -> None:
        await self.click(user, self.find(user, label))

    def last(self, user: str) -> str:
        return self.api.last_to_user(user).content()


@pytest.fixture
async def api():
    server = await FakeWeCom().start()
    yield server
    await server.stop()


@pytest.fixture
async def grid(sessionmaker, api):
    g = await WeGrid(sessionmaker, api).build_tree()
    yield g
    await g.stop()


@pytest.fixture
async def running(grid: WeGrid):
    await grid.start()
    await grid.create_group()
    return grid


# ====================================================================== URL verification, bad requests


async def test_url_verification_and_bad_requests_are_rejected(running: WeGrid, api: FakeWeCom):
    g = running
    echo = PrpCrypto(g.crypto.key).encrypt("echo-4711", CORP_ID).decode()
    params = {"timestamp": "1700000000", "nonce": "abc", "echostr": echo,
              "msg_signature": _get_signature(TOKEN, "1700000000", "abc", echo)}
    async with aiohttp.ClientSession() as http:
        async with http.get(g.url, params=params) as r:
            assert r.status == 200 and await r.text() == "echo-4711"
        async with http.get(g.url, params={**params, "msg_signature": "0" * 40}) as r:
            assert r.status == 403
        async with http.get(g.url, params={"echostr": "x"}) as r:
            assert r.status == 400

    plain = g.xml(RESIDENT, "text", f"<Content>{cdata('/start')}</Content>")
    # a wrong signature: rejected, no effect
    assert await g.post(plain, tamper=lambda b, p: (b, {**p, "msg_signature": "f" * 40})) == 403
    # a body that is not our encryption (signed correctly, so only decryption can fail)

    def garbage(body: str, params: dict) -> tuple[str, dict]:
        enc = "bm90LWVuY3J5cHRlZA=="
        sig = _get_signature(TOKEN, params["timestamp"], params["nonce"], enc)
        return f"<xml><Encrypt>{cdata(enc)}</Encrypt></xml>", {**params, "msg_signature": sig}

    assert await g.post(plain, tamper=garbage) == 400
    assert await g.post(plain, tamper=lambda b, p: ("not xml at all", p)) in (400, 403)
    await g.runtime.idle()
    assert await g.count(InboundSeen) == 0 and not api.sent_to_user(RESIDENT)


# ====================================================================== the loop on WeChat Work


async def test_resident_report_leader_card_worker_verify_and_rating(running: WeGrid, api: FakeWeCom):
    g = running
    chat = f"grid{g.ids['grid']}"
    assert api.chats[chat]["owner"] == LEADER and set(api.chats[chat]["userlist"]) == {LEADER, WORKER, OTHER}

    # an unknown userid writing privately becomes a resident and is answered
    await g.say(RESIDENT, "你好")
    assert "请选择要办理的事项" in g.last(RESIDENT)
    assert {"上报问题", "我的事件"} <= {t for t, _ in api.last_to_user(RESIDENT).buttons()}

    await g.press(RESIDENT, "上报问题")
    await g.press(RESIDENT, "市政设施")
    await g.say(RESIDENT, "小区门口路灯坏了三天")
    await g.send(g.xml(RESIDENT, "image", f"<PicUrl>{cdata('http://x/p.jpg')}</PicUrl><MediaId>{cdata('MEDIA-1')}</MediaId>"))
    await g.press(RESIDENT, "下一步")
    await g.send(g.xml(RESIDENT, "location", "<Location_X>30.29</Location_X><Location_Y>120.105</Location_Y>"
                                            "<Scale>15</Scale><Label>翠苑</Label>"))
    await g.press(RESIDENT, "选择网格")
    await g.press(RESIDENT, "翠苑一网格")
    await g.press(RESIDENT, "跳过")
    assert "请确认上报内容" in "\n".join(c.content() for c in api.sent_to_user(RESIDENT)[-2:])
    await g.press(RESIDENT, "提交")
    case = await g.case()
    assert case is not None and case.status == "reported" and case.description == "小区门口路灯坏了三天"
    # WeChat Work sends GCJ-02; the case keeps WGS-84
    assert (case.latitude, case.longitude) == pytest.approx(geo.to_wgs84(30.29, 120.105, "gcj02")) and [a["ref"] for a in case.attachments] == ["MEDIA-1"]

    # the group gets the card as markdown (with the photo first); the leader gets the buttons privately
    group = api.sent_to_chat(chat)
    cards = [c for c in group if c.msgtype == "markdown" and case.number in c.content()]
    assert len(cards) == 1 and "请网格长在应用内操作" in cards[0].content()
    assert any(c.msgtype == "image" and c.body["image"]["media_id"] == "MEDIA-1" for c in group)
    leader_card = api.last_to_user(LEADER)
    assert leader_card.msgtype == "template_card" and case.number in leader_card.content()
    assert {"立案", "派遣", "要求补充", "不予立案"} <= {t for t, _ in leader_card.buttons()}
    assert not api.sent_to_user(WORKER)  # workers are in the group, not given the leader's buttons

    # the worker presses the leader's button (a forwarded key): refused, nothing changes
    await g.click(WORKER, g.find(LEADER, "立案"))
    assert "只有" in g.last(WORKER) and (await g.case()).status == "reported"

    # the leader dispatches from the private card
    await g.press(LEADER, "派遣")
    await g.press(LEADER, "孙丽")
    case = await g.case()
    assert case.status == "dispatched" and case.assignee_id == g.ids["W1"]
    assert any(case.number in c.content() and "【待办】" in c.content() for c in api.sent_to_user(WORKER))
    # WeChat Work cannot edit: the group gets the short update line, not the whole card again
    updates = [c.content() for c in api.sent_to_chat(chat) if c.msgtype == "markdown"][1:]
    assert updates and all("—— 进展 ——" not in u for u in updates) and "已派遣" in updates[-1]

    # the stale 立案 key from the first card
    await g.click(LEADER, leader_card.buttons()[0][1])
    assert "已有新进展" in g.last(LEADER)

    await g.press(WORKER, "接收")
    assert (await g.case()).status == "in_progress"
    await g.press(WORKER, "办结")
    await g.say(WORKER, "已更换灯泡，恢复照明")
    await g.press(WORKER, "提交结果")
    case = await g.case()
    assert case.status == "resolved" and case.result == "已更换灯泡，恢复照明"

    await g.press(LEADER, "核查通过")
    assert (await g.case()).status == "closed"
    assert "核查通过，已结案。" in g.last(LEADER)  # the pop-up answer arrives as a message

    assert "请对处理结果进行评价" in "\n".join(c.content() for c in api.sent_to_user(RESIDENT)[-3:])
    await g.press(RESIDENT, "满意")
    assert (await g.case()).rating == "satisfied"
    async with g.sm() as s:
        actions = list((await s.execute(select(CaseEvent.action).where(CaseEvent.case_id == case.id)
                                        .order_by(CaseEvent.id))).scalars())
    assert actions == ["reported", "registered", "dispatched", "accepted", "resolved", "verified", "rated"]
    assert not [c for c in api.calls if not c.ok]


# ====================================================================== repeats, unknown input, token expiry


async def test_duplicate_msgid_has_one_effect_and_unknown_types_get_an_answer(running: WeGrid, api: FakeWeCom):
    g = running
    plain = g.xml(RESIDENT, "text", f"<Content>{cdata('/report')}</Content>", msg_id=42)
    for _ in range(3):  # WeChat Work retries a callback it thinks was not answered
        assert await g.post(plain) == 200
    await g.settle()
    assert len([c for c in api.sent_to_user(RESIDENT) if "请选择问题类别" in c.content()]) == 1
    assert await g.count(InboundSeen) == 1

    await g.send(g.xml(RESIDENT, "link", f"<Title>{cdata('t')}</Title><Url>{cdata('http://x')}</Url>"))
    assert "暂不支持这种消息" in g.last(RESIDENT)
    # a button key nobody issued
    await g.click(RESIDENT, "forged-key-000")
    assert "按钮已失效" in g.last(RESIDENT)
    # entering the app is no message to answer
    before = len(api.sent_to_user(RESIDENT))
    await g.send(g.xml(RESIDENT, "event", f"<Event>{cdata('enter_agent')}</Event><EventKey>{cdata('')}</EventKey>"))
    assert len(api.sent_to_user(RESIDENT)) == before


async def test_expired_token_is_refreshed_once_and_the_message_delivered_once(running: WeGrid, api: FakeWeCom):
    g = running
    issued = api.tokens_issued
    api.expire_tokens()
    await g.say(RESIDENT, "/help")
    sends = api.calls_of("message/send")
    assert [c.result["errcode"] for c in sends[-2:]] == [42001, 0]
    assert api.tokens_issued == issued + 1
    assert len(api.sent_to_user(RESIDENT)) == 1 and "可用命令" in g.last(RESIDENT)


# ====================================================================== the adapter on its own


async def test_adapter_splits_long_text_numbers_many_buttons_and_maps_errors(running: WeGrid, api: FakeWeCom):
    g = running
    adapter = g.runtime.adapter
    # > 2,048 UTF-8 bytes (Chinese characters are 3 bytes each): several parts, nothing lost
    long = "\n".join(f"第{n}行 " + "网格" * 10 for n in range(60))
    assert len(long) < MAX_BYTES < len(long.encode())
    await adapter.send(OutgoingMessage(1, "wecom", RESIDENT, False, {"text": long}))
    parts = [c.content() for c in api.sent_to_user(RESIDENT)]
    assert len(parts) >= 3 and all(len(p.encode()) <= MAX_BYTES for p in parts)
    assert "\n".join(parts) == long
    assert all(len(p.encode()) <= 100 for p in split_text("字" * 500, 100))

    # more than 6 buttons: numbered text; a reply "7" presses the seventh
    async with g.sm() as s, s.begin():
        from workflows.outbox import button

        ctx = g.ctx(s)
        buttons = [[await button(ctx, f"选项{n}", "menu.help")] for n in range(1, 8)]
    payload = {"text": "请选择：", "buttons": [[{"label": b.label, "token": b.token} for b in row] for row in buttons]}
    await adapter.send(OutgoingMessage(2, "wecom", RESIDENT, False, payload))
    text = g.last(RESIDENT)
    assert "7. 选项7" in text and "回复数字选择" in text
    async with g.sm() as s:
        assert (await s.get(ChannelChoice, ("wecom", RESIDENT))).tokens[6] == buttons[6][0].token
    await g.say(RESIDENT, "7")
    assert "可用命令" in g.last(RESIDENT)  # menu.help answered

    # errors: rate limit → retry later; unknown user → permanent; a retry does not repeat parts
    api.fail_next("message/send", 45009, "api freq out of limit")
    with pytest.raises(RetryLater) as e:
        await adapter.send(OutgoingMessage(3, "wecom", RESIDENT, False, {"text": "hi"}))
    assert e.value.seconds == 60
    api.fail_next("message/send", 81013, "user & party & tag all invalid")
    with pytest.raises(PermanentError):
        await adapter.send(OutgoingMessage(4, "wecom", "nobody", False, {"text": "hi"}))
    before = len(api.sent_to_user(RESIDENT))
    api.fail_next("message/send", 45009, after=1)  # the second part fails after the first went out
    msg = OutgoingMessage(5, "wecom", RESIDENT, False, {"text": "甲" * 600 + "\n" + "乙" * 600})
    with pytest.raises(RetryLater):
        await adapter.send(msg)
    await adapter.send(msg)
    got = [c.content() for c in api.sent_to_user(RESIDENT)[before:]]
    assert got == ["甲" * 600, "乙" * 600]  # the first part was not sent twice
    assert adapter.can_edit is False
    assert {(w.scope, w.count, w.seconds) for w in adapter.windows} >= {("private", 28, 60.0), ("private", 950, 3600.0)}


# ====================================================================== groups


async def test_create_group_needs_two_members_and_sync_follows_the_import(grid: WeGrid, api: FakeWeCom):
    async with grid.sm() as s, s.begin():
        await s.execute(Account.__table__.delete().where(Account.external_id.in_([WORKER, OTHER])))
    with pytest.raises(Invalid):
        await grid.create_group()
    async with grid.sm() as s, s.begin():
        now = grid.clock.now()
        s.add(Account(channel="wecom", external_id=WORKER, chat_id=WORKER, person_id=grid.ids["W1"], created_at=now))
    chat = await grid.create_group()
    assert api.chats[chat]["userlist"] == [LEADER, WORKER]
    async with grid.sm() as s:
        b = (await s.execute(select(GroupBinding))).scalar_one()
        assert (b.channel, b.chat_id, b.status) == ("wecom", chat, "active")

    # the import adds 马超 and moves 孙丽 away: sync adds one and removes the other
    async with grid.sm() as s, s.begin():
        s.add(Account(channel="wecom", external_id=OTHER, chat_id=OTHER, person_id=grid.ids["W2"],
                      created_at=grid.clock.now()))
        await s.execute(Assignment.__table__.delete().where(Assignment.person_id == grid.ids["W1"]))
    async with grid.sm() as s, s.begin():
        report = await sync_groups(s, wecom.build(grid.settings).api)
    assert len(report) == 1
    assert set(api.chats[chat]["userlist"]) == {LEADER, OTHER}
    update = api.calls_of("appchat/update")[-1].body
    assert update["add_user_list"] == [OTHER] and update["del_user_list"] == [WORKER]


# ====================================================================== one person on two platforms


async def test_bindaccount_joins_a_wecom_resident_and_a_second_platform(running: WeGrid, api: FakeWeCom, clock):
    g = running
    desk = Desk(g.sm, g.clock, channels=frozenset({"wecom", "test"}))
    # the person first used the 'test' platform and reported there
    await desk.send("r-test", "/start")
    await desk.send("r-test", "/bindaccount")
    code = _code(await desk.last_text("r-test"))
    # the same person writes to the WeChat Work app (a fresh resident there) and sends the code
    await g.say(RESIDENT, "你好")
    await g.say(RESIDENT, f"/bindaccount {code}")
    assert "账号已关联" in g.last(RESIDENT)
    async with g.sm() as s:
        accts = (await s.execute(select(Account).where(Account.external_id.in_(["r-test", RESIDENT])))).scalars().all()
        assert len({a.person_id for a in accts}) == 1
        person = await s.get(Person, accts[0].person_id)
    # the code works once
    await g.say(RESIDENT, f"/bindaccount {code}")
    assert "用过" in g.last(RESIDENT)
    # /prefer on WeChat Work: notices go here
    await g.say(RESIDENT, "/prefer")
    async with g.sm() as s:
        assert (await s.get(Person, person.id)).preferred_channel == "wecom"


def _code(text: str) -> str:
    import re

    m = re.search(r"\b([2-9A-HJKMNP-Z]{8})\b", text)
    assert m, text
    return m.group(1)


def test_callbacks_become_inbound_events():
    def xml(body: str, msgtype: str) -> str:
        return (f"<xml><ToUserName>c</ToUserName><FromUserName>u1</FromUserName><CreateTime>100</CreateTime>"
                f"<MsgType>{msgtype}</MsgType>{body}<MsgId>55</MsgId><AgentID>1</AgentID></xml>")

    voice, _ = to_inbound(xml("<MediaId>v1</MediaId><Format>amr</Format>", "voice"))
    assert [(m.kind, m.ref) for m in voice.media] == [("voice", "v1")] and voice.event_id == "55"
    video, _ = to_inbound(xml("<MediaId>vd</MediaId><ThumbMediaId>t</ThumbMediaId>", "video"))
    assert video.media[0].kind == "video" and not video.is_group and video.chat_id == "u1"
    menu, _ = to_inbound(xml("<Event>click</Event><EventKey>/report</EventKey>", "event"))
    assert menu.kind == "message" and menu.text == "/report" and menu.event_id == "u1:100:click:/report"
    tok, _ = to_inbound(xml("<Event>click</Event><EventKey>abc</EventKey>", "event"))
    assert tok.kind == "button" and tok.button == "abc"
