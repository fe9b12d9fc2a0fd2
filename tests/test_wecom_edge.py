"""WeChat Work's inbound edge: malformed-but-possible fields in the app's decrypted callbacks and in
微信客服's sync_msg pages get a clear log line, no traceback, no change but the answer "not
understood" to a sender who can be made out, and are acknowledged (an error answer would bring
the same body back). A seeded fuzz of both at a modest size (`python -m bench.fuzz --channel
wecom` runs it at size)."""

from __future__ import annotations

import logging

import pytest

from bench.fuzz_wecom import fuzz_app, fuzz_kf
from bot.channels.wechat_kf_convert import to_inbound as kf_inbound
from bot.channels.wecom_convert import to_inbound
from bot.channels.wecom_validate import Unreadable
from workflows.models import InboundSeen
from workflows.wechat_models import KfCursor

from .fakes.wechat_kf import OPEN_KFID, FakeWeChatKf
from .fakes.wecom_api import FakeWeCom
from .test_wechat_kf import Kf
from .test_wecom import RESIDENT, WeGrid, cdata


def app_xml(inner: str, user: str = "u1") -> str:
    return (f"<xml><ToUserName>c</ToUserName><FromUserName>{cdata(user)}</FromUserName><CreateTime>100</CreateTime>"
            f"{inner}<AgentID>1</AgentID></xml>")


@pytest.mark.parametrize(("xml", "reason", "sender"), [
    (app_xml("<MsgType>text</MsgType><Content>a&#0;b</Content><MsgId>1</MsgId>"), "not well-formed XML", None),
    (app_xml("<MsgType>text</MsgType><Content><a>1</a><a>2</a></Content><MsgId>1</MsgId>"),
     "Content is dict, not text", "u1"),
    (app_xml("<MsgType>text</MsgType><Content>hi</Content><MsgId>12x</MsgId>"), "MsgId is '12x', not a number",
     "u1"),
    (app_xml("<Content>hi</Content><MsgId>1</MsgId>"), "MsgType is missing", "u1"),
    (app_xml("<MsgType><a/></MsgType><MsgId>1</MsgId>"), "MsgType is dict, not text", "u1"),
    (app_xml("<MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId>", user="<a>1</a>"),
     "FromUserName", None),
    ("<xml><ToUserName>c</ToUserName><MsgType>text</MsgType><Content>hi</Content></xml>",
     "FromUserName is missing", None),
    (app_xml("<MsgType>image</MsgType><MsgId>1</MsgId>"), "without MediaId", "u1"),
    # found by the fuzz on PostgreSQL: a 20,000-character MediaId, too long for media_item.ref
    (app_xml(f"<MsgType>image</MsgType><MediaId>{'长' * 20_000}</MediaId><MsgId>1</MsgId>"), "no media id",
     "u1"),
    (app_xml("<MsgType>location</MsgType><Location_X>abc</Location_X><Location_Y>1</Location_Y><MsgId>1</MsgId>"),
     "readable coordinates", "u1"),
    (app_xml("<MsgType>location</MsgType><Location_X>nan</Location_X><Location_Y>1</Location_Y><MsgId>1</MsgId>"),
     "outside the earth", "u1"),
    (app_xml("<MsgType>voice</MsgType><MediaId>m</MediaId><Format><a/></Format><MsgId>1</MsgId>"),
     "Format is dict", "u1"),
    (app_xml("<MsgType>event</MsgType><Event>click</Event><EventKey><a>1</a></EventKey>"), "EventKey is dict",
     "u1"),
    ("", "empty callback", None),
    ("<foo><a>1</a></foo>", "no <xml> element", None),
])
def test_unreadable_app_callbacks_name_what_is_wrong(xml: str, reason: str, sender: str | None):
    with pytest.raises(Unreadable) as e:
        to_inbound(xml)
    assert reason in e.value.reason and e.value.sender == sender


def test_storable_text_and_what_is_nothing_for_the_office():
    # a raw NUL, a lone surrogate or a control character (not XML) become U+FFFD and the text is read
    for odd in ("a\x00b", "a\ud800b", "a\x01b"):
        inbound, _ = to_inbound(app_xml(f"<MsgType>text</MsgType><Content>{cdata(odd)}</Content><MsgId>5</MsgId>"))
        assert inbound.text == "a\ufffdb"
    long, _ = to_inbound(app_xml(f"<MsgType>text</MsgType><Content>{'长' * 50_000}</Content><MsgId>6</MsgId>"))
    assert len(long.text) == 50_000  # the router answers "too long" (tested below over HTTP)
    key, _ = to_inbound(app_xml(f"<MsgType>event</MsgType><Event>click</Event><EventKey>{'k' * 5000}</EventKey>"))
    assert key.kind == "button" and len(key.event_id) <= 128  # inbound_seen keeps 128
    unknown, _ = to_inbound(app_xml("<MsgType>hologram</MsgType><MsgId>7</MsgId>"))
    assert unknown.kind == "unsupported"
    event, _ = to_inbound(app_xml("<MsgType>event</MsgType><Event>quantum</Event><EventKey>k</EventKey>"))
    assert event.kind == "unsupported"
    assert to_inbound(app_xml("<MsgType>event</MsgType><Event>quantum</Event>"))[0] is None


@pytest.mark.parametrize(("msg", "reason", "sender"), [
    ("not a message", "not an object", None),
    ({"origin": 3, "msgid": "m1", "msgtype": "text", "text": {"content": "x"}}, "external_userid is missing", None),
    ({"origin": 3, "msgid": "m1", "external_userid": ["wm1"], "msgtype": "text"}, "external_userid is list", None),
    ({"origin": 3, "external_userid": "wm1", "msgtype": "text", "text": {"content": "x"}}, "msgid is missing",
     "wm1"),
    ({"origin": 3, "msgid": "m1", "external_userid": "wm1", "msgtype": "text", "text": 5}, "text is int", "wm1"),
    ({"origin": 3, "msgid": "m" * 300, "external_userid": "wm1", "msgtype": "text"}, "msgid is 300 characters",
     "wm1"),
    ({"origin": 3, "msgid": "m1", "external_userid": "w" * 300, "msgtype": "text"}, "external_userid is 300",
     None),
    ({"origin": 3, "msgid": "m1", "external_userid": "wm1", "msgtype": "text", "text": {"content": 12345}},
     "text.content is int", "wm1"),
    ({"origin": 3, "msgid": "m1", "external_userid": "wm1", "msgtype": "image", "image": {"media_id": None}},
     "without media_id", "wm1"),
    ({"origin": 3, "msgid": "m1", "external_userid": "wm1", "msgtype": "voice", "voice": {"media_id": "m" * 600}},
     "no media id", "wm1"),
    ({"origin": 3, "msgid": "m1", "external_userid": "wm1", "msgtype": "location",
      "location": {"latitude": "x", "longitude": 1}}, "readable coordinates", "wm1"),
])
def test_unreadable_kf_messages_name_what_is_wrong(msg, reason: str, sender: str | None):
    with pytest.raises(Unreadable) as e:
        kf_inbound(msg)
    assert reason in e.value.reason and e.value.sender == sender


def test_kf_text_is_made_storable_and_origins_other_than_a_resident_are_ignored():
    msg = {"origin": 3, "msgid": 7, "external_userid": "wm1", "msgtype": "text", "text": {"content": "a\x00\ud800"}}
    assert kf_inbound(msg).text == "a\ufffd\ufffd" and kf_inbound(msg).event_id == "kf:7"
    assert kf_inbound({**msg, "origin": True}) is None and kf_inbound({**msg, "origin": "3"}) is None


@pytest.fixture
async def running(sessionmaker):
    api = await FakeWeCom().start()
    g = await WeGrid(sessionmaker, api).build_tree()
    await g.start()
    yield g
    await g.stop()
    await api.stop()


async def test_a_malformed_callback_is_acknowledged_logged_once_and_answered(running: WeGrid, caplog):
    g = running
    caplog.set_level(logging.WARNING)
    nested = g.xml(RESIDENT, "text", "<Content><a>1</a><b>2</b></Content>")
    for _ in range(2):  # WeChat Work sending it again has one effect
        assert await g.post(nested) == 200
    assert await g.post(g.xml(RESIDENT, "text", "<Content>a&#0;b</Content>")) == 200  # no sender to read
    await g.settle()
    lines = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(lines) == 3 and not [r for r in caplog.records if r.exc_info]
    assert "Content is dict, not text" in lines[0].getMessage() and RESIDENT in lines[0].getMessage()
    assert [c.content() for c in g.api.sent_to_user(RESIDENT)] == ["暂不支持这种消息。请发送文字、图片、语音、视频或位置。"]
    assert await g.count(InboundSeen) == 1

    await g.say(RESIDENT, "长" * 30_000)  # over-long: answered, nothing else
    assert "消息太长了" in g.last(RESIDENT)


async def test_a_poison_message_in_a_kf_page_does_not_stop_the_page(sessionmaker, caplog):
    caplog.set_level(logging.WARNING)
    api = await FakeWeChatKf().start()
    api.page_size = 10
    kf = Kf(sessionmaker, api)
    await kf.start()
    try:
        api.messages.append({"msgid": "p1", "origin": 3, "external_userid": "wmRes1", "msgtype": "text",
                             "text": ["not", "an", "object"]})
        api.messages.append(None)
        token = api.resident_writes("wmRes2", "text", {"content": "/start"})
        assert await kf.post(kf.event(token)) == 200
        await kf.settle()
        assert kf.texts("wmRes1") == ["暂不支持这种消息。请发送文字、图片、语音、视频或位置。"]
        assert kf.texts("wmRes2")  # the message after the poison ones was handled
        async with sessionmaker() as s:
            assert (await s.get(KfCursor, OPEN_KFID)).cursor == "3"  # the page is done: not fetched again
        assert not [r for r in caplog.records if r.exc_info]
        assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 2
        # a callback event that is not XML we can read: acknowledged, nothing fetched
        syncs = len(api.calls_of("kf/sync_msg"))
        assert await kf.post("<xml><Event><a/></Event></xml>") == 200
        await kf.settle()
        assert len(api.calls_of("kf/sync_msg")) == syncs
    finally:
        await kf.stop()
        await api.stop()


async def test_seeded_fuzz_of_the_wecom_app(sessionmaker):
    r = await fuzz_app(sessionmaker, 120, seed=14)
    assert r.malformed > 30
    assert (r.tracebacks, r.refused, r.unanswered, r.state_changes) == (0, 0, 0, 0), (r.line(), r.samples)


async def test_seeded_fuzz_of_wechat_kf(sessionmaker):
    r = await fuzz_kf(sessionmaker, 120, seed=14)
    assert r.malformed > 30
    assert (r.tracebacks, r.refused, r.unanswered, r.state_changes) == (0, 0, 0, 0), (r.line(), r.samples)
