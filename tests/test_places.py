"""Addresses a platform gives with a location, and map links with the right datum on the cards."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from telegram import Update

from bot.channels.telegram_convert import to_inbound as telegram_inbound
from bot.channels.wecom_convert import to_inbound as wecom_inbound
from workflows import geo
from workflows.maps import amap_link

from .support import Desk

POINT = (30.285, 120.115)  # WGS-84, inside 翠苑 in the demo street


def amap_position(url: str) -> tuple[float, float]:
    q = parse_qs(urlsplit(url).query)
    lon, lat = (float(x) for x in q["position"][0].split(","))
    return lat, lon


def test_the_amap_link_is_in_gcj02():
    url = amap_link(*POINT, "翠苑菜场")
    assert url.startswith("https://uri.amap.com/marker?") and "coordinate=gaode" in url
    assert amap_position(url) == pytest.approx(geo.from_wgs84(*POINT, "gcj02"), abs=1e-6)
    assert amap_position(url) != pytest.approx(POINT, abs=1e-4)  # the offset is hundreds of metres
    assert parse_qs(urlsplit(url).query)["name"] == ["翠苑菜场"]


def test_channels_keep_the_address_given_with_a_location():
    xml = ("<xml><ToUserName><![CDATA[ww]]></ToUserName><FromUserName><![CDATA[u1]]></FromUserName>"
           "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[location]]></MsgType>"
           "<Location_X>30.2826</Location_X><Location_Y>120.1198</Location_Y><Scale>15</Scale>"
           "<Label><![CDATA[浙江省杭州市西湖区文一西路翠苑菜场]]></Label><MsgId>77</MsgId><AgentID>1</AgentID></xml>")
    inbound, _ = wecom_inbound(xml)
    assert inbound.address == "浙江省杭州市西湖区文一西路翠苑菜场" and inbound.location is not None

    update = Update.de_json({"update_id": 5, "message": {
        "message_id": 1, "date": 0, "chat": {"id": 9, "type": "private"},
        "from": {"id": 9, "is_bot": False, "first_name": "王"},
        "venue": {"location": {"latitude": POINT[0], "longitude": POINT[1]}, "title": "翠苑菜场",
                  "address": "文一西路 88 号"}}}, None)
    inbound = telegram_inbound(update)
    assert inbound.address == "文一西路 88 号" and inbound.location == POINT


@pytest.fixture
async def desk(sessionmaker, clock) -> Desk:
    d = Desk(sessionmaker, clock)
    await d.setup_chats()
    return d


async def _report_at(desk: Desk, user: str, address: str | None) -> None:
    await desk.send(user, "/report")
    await desk.press(user, "环境卫生")
    await desk.send(user, "菜场门口垃圾没人清")
    await desk.press(user, "下一步")
    await desk.send(user, location=POINT, address=address)
    assert "所在网格" in await desk.last_text(user)
    await desk.press(user, "跳过")
    await desk.press(user, "提交")


@pytest.mark.demo
async def test_the_card_shows_the_address_with_a_map_link(desk: Desk):
    await _report_at(desk, "r1", "文一西路翠苑菜场")
    case = await desk.case()
    assert case.address == "文一西路翠苑菜场"
    card = next(m for m in await desk.messages("g:" + (await desk.node_of(case)).code) if case.number in m.text)
    assert "地址：文一西路翠苑菜场" in card.text and "位置：" not in card.text
    link = next(line for line in card.text.splitlines() if line.startswith("地图："))[3:]
    assert amap_position(link) == pytest.approx(geo.from_wgs84(case.latitude, case.longitude, "gcj02"), abs=1e-6)


@pytest.mark.demo
async def test_without_an_address_the_card_shows_coordinates(desk: Desk):
    await _report_at(desk, "r2", None)
    case = await desk.case()
    card = next(m for m in await desk.messages("g:" + (await desk.node_of(case)).code) if case.number in m.text)
    assert "位置：30.28500, 120.11500" in card.text and "地图：https://uri.amap.com/marker?" in card.text
