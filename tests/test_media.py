"""The media store: attachments fetched after the commit into a directory or an S3 bucket (moto's
server), sent on to other platforms from the store, checked by `gridbot media check`.

The channels are real: WeChat Work through wechatpy to the fake WeChat Work server, Telegram
through python-telegram-bot to the fake Bot API; the office handles what their converters make."""

from __future__ import annotations

import base64
import io
from datetime import timedelta

import boto3
import pytest
from PIL import Image
from sqlalchemy import func, select
from telegram import Bot

from bot.channels.base import OutgoingMessage
from bot.channels.telegram_ptb import file_url
from bot.channels.telegram_send import TelegramAdapter
from bot.channels.wecom_api import WeComAPI
from bot.channels.wecom_convert import to_inbound
from bot.channels.wecom_send import WeComAdapter
from bot.delivery import Delivery
from bot.media import MediaLibrary
from bot.media_fetch import MediaFetcher
from bot.media_s3 import S3Store
from bot.ratelimit import Limiter
from handlers.events import Inbound, Media
from handlers.office import Office
from workflows import media
from workflows.context import Ctx
from workflows.media_models import MediaFile, MediaItem, MediaRef
from workflows.media_store import DirectoryStore, key_of, sha256_of, use_store
from workflows.models import Conversation, Outbox

from .fakes.telegram_api import FakeTelegram
from .fakes.wecom_api import CORP_ID, SECRET, FakeWeCom
from .support import MovingClock, free_port

USER = "wangxm"
GROUP = -100777


def jpeg(colour: str = "red", size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "JPEG")
    return buf.getvalue()


def xml(user: str, msgtype: str, body: str, msg_id: int) -> str:
    return (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
            f"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[{msgtype}]]></MsgType>{body}"
            f"<MsgId>{msg_id}</MsgId><AgentID>1000002</AgentID></xml>")


# ---------------------------------------------------------------- the two stores


@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class Stores:
    """Removes a file behind gridbot's back, whichever store holds it."""

    def __init__(self, store, remove) -> None:
        self.store = store
        self.remove = remove


@pytest.fixture(params=["dir", "s3"])
def stores(request, tmp_path):
    if request.param == "dir":
        store = DirectoryStore(tmp_path / "media")
        out = Stores(store, lambda sha: store.path(sha).unlink())
    else:
        endpoint = request.getfixturevalue("s3_server")
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test")
        bucket = f"gridbot-{request.node.name.lower().replace('[', '-').replace(']', '').replace('_', '-')}"[:60]
        client.create_bucket(Bucket=bucket)
        store = S3Store(client, bucket, "media/")
        out = Stores(store, lambda sha: client.delete_object(Bucket=bucket, Key=f"media/{key_of(sha)}"))
    use_store(out.store)
    yield out
    use_store(None)


# ---------------------------------------------------------------- the platforms


class World:
    """WeChat Work and Telegram adapters over their fakes, the office, delivery and the fetcher."""

    def __init__(self, sm, wx: FakeWeCom, tg: FakeTelegram, store) -> None:
        self.sm, self.wx, self.tg, self.store = sm, wx, tg, store
        self.clock = MovingClock()
        self.wecom = WeComAdapter(WeComAPI(CORP_ID, SECRET, "1000002", wx.base_url), sm, self.clock)
        self.bot = Bot(tg.token, base_url=tg.base_url, base_file_url=file_url(tg.base_url))
        self.telegram = TelegramAdapter(self.bot)
        adapters = {"wecom": self.wecom, "telegram": self.telegram}
        self.library = MediaLibrary(sm, store, self.clock)
        self.wecom.media = self.telegram.media = self.library
        self.delivery = Delivery(sm, adapters, clock=self.clock)
        for name in adapters:
            self.delivery.limiters[name] = Limiter(())
        self.fetcher = MediaFetcher(sm, adapters, store=store, clock=self.clock)
        self.office = Office(sm, clock=self.clock, channels=frozenset(adapters))
        self._ids = iter(range(9_000_000, 10_000_000))

    async def wecom_photo(self, data: bytes, user: str = USER) -> Inbound:
        """A member sends a photo to the app: the callback the converter makes of it, handled."""
        media_id = self.wx.add_media(data)
        inbound, _ = to_inbound(xml(user, "image", f"<PicUrl><![CDATA[http://x/p.jpg]]></PicUrl>"
                                                   f"<MediaId><![CDATA[{media_id}]]></MediaId>", next(self._ids)))
        await self.office.handle(inbound)
        return inbound

    async def item(self, item_id: int) -> MediaItem:
        async with self.sm() as s:
            return await s.get(MediaItem, item_id)

    async def send(self, channel: str, chat_id: str, media_: list[dict], *, is_group: bool = False) -> None:
        async with self.sm() as s, s.begin():
            s.add(Outbox(created_at=self.clock.now(), channel=channel, chat_id=chat_id, is_group=is_group,
                         payload={"text": "事件 XH-1 的照片", "media": media_}, status="pending", attempts=0,
                         not_before=self.clock.now()))
        await self.delivery.drain()

    async def count(self, model) -> int:
        async with self.sm() as s:
            return (await s.execute(select(func.count()).select_from(model))).scalar_one()


@pytest.fixture
async def world(sessionmaker, stores):
    wx = await FakeWeCom().start()
    tg = await FakeTelegram().start()
    w = World(sessionmaker, wx, tg, stores.store)
    await w.bot.initialize()
    yield w
    await w.bot.shutdown()
    await tg.stop()
    await wx.stop()


def attachment(inbound: Inbound) -> dict:
    return inbound.media[0].as_dict()


# ---------------------------------------------------------------- tests


async def test_wecom_photo_is_fetched_after_the_commit_and_viewable_after_its_media_id_expired(world: World):
    photo = jpeg("red")
    inbound = await world.wecom_photo(photo)
    item = await world.item(inbound.media[0].item)
    assert item.status == "pending" and item.sha256 is None  # recorded with the event, not fetched in it

    assert await world.fetcher.fetch_due() == 1
    item = await world.item(item.id)
    assert item.status == "stored" and item.sha256 == sha256_of(photo) and item.size == len(photo)
    assert await world.store.get(item.sha256) == photo

    # four days later WeChat Work has forgotten the media_id: the photo is uploaded from the store
    world.wx.expire_media()
    world.clock.advance(4 * 24 * 3600)
    await world.send("wecom", "zhangwei", [attachment(inbound)])
    images = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype == "image"]
    assert len(images) == 1 and world.wx.sent_media(images[0].body["image"]["media_id"]) == photo
    assert [u[0] for u in world.wx.uploads] == ["image"]

    # the uploaded media_id is kept for its three days: the next card does not upload again
    await world.send("wecom", "sunli", [attachment(inbound)])
    assert len(world.wx.uploads) == 1 and len([c for c in world.wx.sent_to_user("sunli") if c.msgtype == "image"]) == 1


async def test_a_native_media_id_refused_by_wecom_is_replaced_by_an_upload(world: World):
    photo = jpeg("green")
    inbound = await world.wecom_photo(photo)
    await world.fetcher.fetch_due()
    world.wx.expire_media()  # WeChat Work dropped it early: the send falls back to the store
    await world.send("wecom", "zhangwei", [attachment(inbound)])
    images = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype == "image"]
    assert len(images) == 1 and world.wx.sent_media(images[0].body["image"]["media_id"]) == photo


async def test_wecom_photo_shown_in_a_telegram_group_and_a_telegram_photo_back_on_wecom(world: World):
    photo = jpeg("blue")
    inbound = await world.wecom_photo(photo)
    await world.fetcher.fetch_due()
    await world.send("telegram", str(GROUP), [attachment(inbound)], is_group=True)
    sent = world.tg.calls_of("sendPhoto", chat=GROUP)
    assert len(sent) == 1 and world.tg.uploads[0][1] == photo  # uploaded: Telegram cannot use a media_id
    # Telegram's file_id for it is remembered: the next group gets it without an upload
    await world.send("telegram", "-100888", [attachment(inbound)], is_group=True)
    assert len(world.tg.uploads) == 1
    assert world.tg.calls_of("sendPhoto", chat=-100888)[0].params["photo"] == world.tg.uploads[0][0]

    # and back: a photo a worker sends on Telegram appears on WeChat Work
    after = jpeg("yellow", 16)
    file_id = world.tg.add_file(after)
    tg_in = Inbound(channel="telegram", chat_id="501", user_id="501", event_id="u1",
                    media=[Media("photo", file_id, "telegram", size=len(after), mime="image/jpeg")])
    await world.office.handle(tg_in)
    assert await world.fetcher.fetch_due() == 1
    await world.send("wecom", "zhangwei", [attachment(tg_in)])
    images = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype == "image"]
    assert len(images) == 1 and world.wx.sent_media(images[0].body["image"]["media_id"]) == after


async def test_the_same_file_twice_is_stored_once(world: World):
    photo = jpeg("purple")
    first, second = await world.wecom_photo(photo), await world.wecom_photo(photo, user="sunli")
    assert await world.fetcher.fetch_due() == 2
    assert await world.count(MediaItem) == 2 and await world.count(MediaFile) == 1
    async with world.sm() as s:
        ctx = Ctx(session=s, clock=world.clock)
        made = await media.store_bytes(ctx, photo, "photo", "same.jpg", "image/jpeg")
        await s.commit()
    assert made["sha256"] == sha256_of(photo) and await world.count(MediaFile) == 1
    if isinstance(world.store, DirectoryStore):
        files = [p for p in world.store.root.rglob("*") if p.is_file()]
        assert len(files) == 1
    assert first.media[0].item != second.media[0].item


async def test_a_crash_between_download_and_commit_loses_nothing(world: World):
    photo = jpeg("orange")
    inbound = await world.wecom_photo(photo)

    class Crashing(MediaFetcher):
        async def stored(self, *a, **kw):  # the process dies after the bytes are in the store
            raise SystemExit("killed")

    crashing = Crashing(world.sm, {"wecom": world.wecom}, store=world.store, clock=world.clock)
    with pytest.raises(SystemExit):
        await crashing.fetch_due()
    item = await world.item(inbound.media[0].item)
    assert item.status == "pending" and await world.store.exists(sha256_of(photo))

    # after the restart the next round finds it pending and completes it; the file is there once
    assert await world.fetcher.fetch_due() == 1
    item = await world.item(item.id)
    assert item.status == "stored" and await world.store.get(item.sha256) == photo
    assert await world.count(MediaFile) == 1


async def test_media_check_reports_a_removed_file_and_fetch_missing_retries(world: World, stores: Stores):
    photo, other = jpeg("black"), jpeg("white")
    for data in (photo, other):
        await world.wecom_photo(data)
    await world.fetcher.fetch_due()
    async with world.sm() as s:
        checked, problems = await media.check(s, world.store)
    assert checked == 2 and problems == []

    stores.remove(sha256_of(photo))
    async with world.sm() as s:
        checked, problems = await media.check(s, world.store)
    assert [(p.what, p.sha256) for p in problems] == [("missing", sha256_of(photo))]
    assert world.store.where(sha256_of(photo)) in problems[0].detail

    # a fetch that failed for good (WeChat Work had already dropped it) is retried by fetch-missing
    world.wx.expire_media()
    lost = await world.wecom_photo(jpeg("grey"))
    mid = lost.media[0].ref
    world.wx.media.pop(mid)
    assert await world.fetcher.fetch(lost.media[0].item) == "failed"
    await world.delivery.drain()
    assert world.wx.last_to_user(USER).content() == "照片没能保存（平台上已取不到），请重新发送。"
    world.wx.media[mid] = (jpeg("grey"), "image/jpeg")
    assert await world.fetcher.fetch_missing() == (1, 0)


async def test_over_limit_and_corrupt_files_are_refused_with_a_clear_answer(world: World):
    # Telegram tells the size up front: refused at once, the dialogue is not touched
    too_big = Media("photo", "F-big", "telegram", size=11 * media.MB, mime="image/jpeg")
    big = Inbound(channel="telegram", chat_id="501", user_id="501", event_id="u9", media=[too_big])
    await world.office.handle(big)
    async with world.sm() as s:
        texts = [r.payload["text"] for r in (await s.execute(select(Outbox).where(Outbox.chat_id == "501"))).scalars()]
        conversations = (await s.execute(select(func.count()).select_from(Conversation))).scalar_one()
    assert texts == ["照片太大（11.0 MB），上限是 10 MB，没有保存。请压缩后重新发送。"] and conversations == 0
    assert (await world.item(too_big.item)).status == "refused"

    # WeChat Work tells it only when we fetch: a 3 MB voice (limit 2 MB) is refused then
    media_id = world.wx.add_media(b"#!AMR\n" + b"\0" * (3 * media.MB), "audio/amr")
    voice, _ = to_inbound(xml(USER, "voice", f"<MediaId><![CDATA[{media_id}]]></MediaId><Format>amr</Format>", 4242))
    await world.office.handle(voice)
    bad = world.wx.add_media(b"not a picture at all")
    broken, _ = to_inbound(xml(USER, "image", f"<MediaId><![CDATA[{bad}]]></MediaId>", 4243))
    await world.office.handle(broken)
    await world.fetcher.fetch_due()
    assert (await world.item(voice.media[0].item)).status == "refused"
    assert (await world.item(broken.media[0].item)).status == "refused"
    assert await world.count(MediaFile) == 0
    await world.delivery.drain()
    said = [c.content() for c in world.wx.sent_to_user(USER)]
    assert "语音太大（3.0 MB），上限是 2 MB，没有保存。请压缩后重新发送。" in said
    assert "照片已损坏，无法打开，没有保存。请重新发送。" in said


async def test_a_fetch_that_fails_is_tried_later_and_the_case_does_not_wait(world: World):
    inbound = await world.wecom_photo(jpeg("red"))
    world.wx.fail_next("media/get", -1, "system busy")
    assert await world.fetcher.fetch_due() == 1
    item = await world.item(inbound.media[0].item)
    assert item.status == "pending" and item.attempts == 1 and item.next_try_at > world.clock.now()
    assert await world.fetcher.fetch_due() == 0  # not due yet
    world.clock.advance(120)
    assert await world.fetcher.fetch_due() == 1
    assert (await world.item(item.id)).status == "stored"


async def test_store_bytes_makes_a_file_payload_every_platform_can_send(world: World):
    sheet = b"PK\x03\x04 a ledger"
    async with world.sm() as s, s.begin():
        payload = await media.store_bytes(Ctx(session=s, clock=world.clock), sheet, "file", "台账.xlsx",
                                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    assert set(payload) == {"kind", "sha256", "name", "mime", "size", "item"} and payload["kind"] == "file"
    await world.send("telegram", "501", [payload])
    await world.send("wecom", "zhangwei", [payload])
    assert world.tg.uploads[0][1] == sheet and len(world.tg.calls_of("sendDocument")) == 1
    assert [(t, data) for t, _, data in world.wx.uploads] == [("file", sheet)]
    async with world.sm() as s:
        refs = {r.channel for r in (await s.execute(select(MediaRef))).scalars()}
    assert refs == {"telegram", "wecom"}


def test_the_uploaded_media_id_lifetime_is_three_days():
    assert WeComAdapter.ref_lifetime == timedelta(days=3)


async def test_an_inline_chart_goes_to_telegram_and_wecom(world: World):
    chart = jpeg("cyan", 32)
    payload = {"kind": "photo", "data": base64.b64encode(chart).decode(), "name": "week.png", "mime": "image/png"}
    await world.send("telegram", str(GROUP), [payload], is_group=True)
    await world.send("wecom", "zhangwei", [payload])
    assert world.tg.uploads[0][1] == chart and len(world.tg.calls_of("sendPhoto", chat=GROUP)) == 1
    assert [(t, data) for t, _, data in world.wx.uploads] == [("image", chart)]


async def test_a_report_chart_is_stored_once_and_uploaded_once_per_platform(world: World):
    """A sweep's charts (reports.ChartCache): the outbox rows refer to one stored file; Telegram
    gets it uploaded once and its file_id for every other group, WeChat Work one upload too."""
    from workflows.routines.reports import ChartCache
    from workflows.routines.stats import Stats

    drawn = ChartCache()
    same = [drawn.stats(Stats(reported=3, closed=1), "week 2026-W48") for _ in range(3)]
    async with world.sm() as s, s.begin():
        await drawn.save(Ctx(session=s, clock=world.clock))
    assert same[0] is same[1] and "data" not in same[0] and await world.count(MediaFile) == 1
    for chat in (str(GROUP), "-100888", "-100889"):
        await world.send("telegram", chat, [same[0]], is_group=True)
    await world.send("wecom", "zhangwei", [same[0]])
    await world.send("wecom", "sunli", [same[0]])
    png = await world.store.get(same[0]["sha256"])
    assert png[:4] == b"\x89PNG" and [u[1] for u in world.tg.uploads] == [png]
    assert all(len(world.tg.calls_of("sendPhoto", chat=c)) == 1 for c in (GROUP, -100888, -100889))
    assert [(t, data) for t, _, data in world.wx.uploads] == [("image", png)]


async def test_housekeeping_keeps_every_case_photo(world: World):
    from workflows.routines import housekeeping

    inbound = await world.wecom_photo(jpeg("red"))
    await world.fetcher.fetch_due()
    world.clock.advance(400 * 24 * 3600)
    async with world.sm() as s, s.begin():
        await housekeeping.sweep(Ctx(session=s, clock=world.clock))
    item = await world.item(inbound.media[0].item)
    assert item.status == "stored" and await world.store.exists(item.sha256)
    assert await world.count(MediaFile) == 1


async def test_the_terminal_stores_a_local_file_and_shows_its_path(sessionmaker, stores, tmp_path):
    from bot.channels.terminal import TerminalAdapter

    out = io.StringIO()
    adapter = TerminalAdapter(out)
    clock = MovingClock()
    adapter.media = MediaLibrary(sessionmaker, stores.store, clock)
    fetcher = MediaFetcher(sessionmaker, {"terminal": adapter}, store=stores.store, clock=clock)
    office = Office(sessionmaker, clock=clock)
    photo = tmp_path / "垃圾.jpg"
    photo.write_bytes(jpeg("red"))
    inbound = Inbound(channel="terminal", chat_id="dm:1", user_id="1", event_id="t1",
                      media=[Media("photo", str(photo), "terminal")])
    await office.handle(inbound)
    assert await fetcher.fetch_due() == 1
    delivery = Delivery(sessionmaker, {"terminal": adapter}, clock=clock)
    async with sessionmaker() as s, s.begin():
        s.add(Outbox(created_at=clock.now(), channel="terminal", chat_id="dm:2", is_group=False,
                     payload={"text": "照片", "media": [attachment(inbound)]}, status="pending", attempts=0,
                     not_before=clock.now()))
    await delivery.drain()
    assert f"(photo: {stores.store.where(sha256_of(jpeg('red')))})" in out.getvalue()


def test_the_media_commands(tmp_path, monkeypatch, capsys):
    """`gridbot media check` on the default store (media/ next to the SQLite file)."""
    import asyncio

    from bot import cli
    from bot.db import make_engine, make_sessionmaker
    from bot.media import configure
    from bot.settings import Settings

    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/g.db")
    for name in [k for k in __import__("os").environ if k.startswith(("TELEGRAM_", "WECOM_", "MEDIA_"))]:
        monkeypatch.delenv(name)
    cli.get_settings.cache_clear()
    assert cli.main(["db", "upgrade"]) == 0
    settings = Settings(_env_file=None)
    store = configure(settings)
    assert store.root == tmp_path / "media"

    async def add() -> str:
        engine = make_engine(settings.database_url)
        async with make_sessionmaker(engine)() as s, s.begin():
            made = await media.store_bytes(Ctx(session=s), b"ledger bytes", "file", "a.xlsx", "application/x")
        await engine.dispose()
        return made["sha256"]

    sha = asyncio.run(add())
    capsys.readouterr()
    assert cli.main(["media", "check"]) == 0
    assert "1 files checked, 0 problems" in capsys.readouterr().out
    (tmp_path / "media" / key_of(sha)).unlink()
    assert cli.main(["media", "check"]) == 1
    out = capsys.readouterr().out
    assert f"missing\t{sha}" in out and "1 problems" in out
    assert cli.main(["media", "fetch-missing"]) == 2
    assert "no chat channel" in capsys.readouterr().out
    use_store(None)


async def test_aiogram_transport_downloads_and_uploads_too(world: World):
    from bot.channels import telegram_aiogram
    from bot.settings import Settings

    settings = Settings(_env_file=None, telegram_bot_token=world.tg.token, telegram_api_base_url=world.tg.base_url,
                        telegram_framework="aiogram")
    channel = telegram_aiogram.build(settings)
    adapter = channel.adapter
    adapter.media = world.library
    try:
        photo = jpeg("magenta", 12)
        file_id = world.tg.add_file(photo)
        data, _, name = await adapter.download(file_id)
        assert data == photo and name == file_id
        made = await world.wecom_photo(jpeg("navy"))
        await world.fetcher.fetch_due()
        await adapter.send(OutgoingMessage(77, "telegram", str(GROUP), True,
                                           {"text": "照片", "media": [attachment(made)]}))
        assert world.tg.uploads[-1][1] == jpeg("navy")
    finally:
        await channel.bot.session.close()


@pytest.mark.demo
async def test_a_reported_photo_is_linked_to_its_case(sessionmaker, clock):
    from .support import Desk

    desk = Desk(sessionmaker, clock)
    await desk.setup_chats()
    await desk.send("r1", "/report")
    await desk.press("r1", "环境卫生")
    await desk.send("r1", "垃圾堆在路边")
    await desk.photo("r1", ref="ph-1")
    await desk.press("r1", "下一步")
    await desk.send("r1", location=(30.285, 120.115))
    await desk.press("r1", "跳过")
    await desk.press("r1", "提交")
    case = await desk.case()
    (att,) = case.attachments
    async with sessionmaker() as s:
        item = await s.get(MediaItem, att["item"])
    assert item.case_id == case.id and item.ref == "ph-1" and item.sender_id == case.reporter_id


async def test_a_card_waits_briefly_for_a_photo_being_fetched(world: World):
    photo = jpeg("teal")
    inbound = await world.wecom_photo(photo)
    async with world.sm() as s, s.begin():
        s.add(Outbox(created_at=world.clock.now(), channel="telegram", chat_id=str(GROUP), is_group=True,
                     payload={"text": "【事件 XH-2】", "media": [attachment(inbound)]}, status="pending",
                     attempts=0, not_before=world.clock.now()))
    await world.delivery.deliver_due()  # the photo is not in the store yet: the card is held
    assert not world.tg.calls_of("sendPhoto", "sendMessage", chat=GROUP)
    await world.fetcher.fetch_due()
    world.clock.advance(5)
    await world.delivery.drain()
    assert world.tg.uploads[-1][1] == photo and len(world.tg.calls_of("sendMessage", chat=GROUP)) == 1

    # one that cannot be fetched holds the card only so long, then the card goes without it
    lost = await world.wecom_photo(jpeg("grey"))
    world.wx.media.pop(lost.media[0].ref)
    world.wx.fail_next("media/get", -1, "busy", times=10)
    await world.send("telegram", "-100888", [attachment(lost)], is_group=True)
    assert not world.tg.calls_of("sendMessage", chat=-100888)
    world.clock.advance(180)
    await world.delivery.drain()
    assert len(world.tg.calls_of("sendMessage", chat=-100888)) == 1 and not world.tg.calls_of("sendPhoto", chat=-100888)


@pytest.mark.demo
async def test_a_photo_reported_on_wecom_is_on_the_card_in_the_telegram_work_group(world: World):
    from workflows.models import Case, GroupBinding, Node

    async with world.sm() as s, s.begin():  # every node's work group is a Telegram group
        for n, node in enumerate((await s.execute(select(Node).order_by(Node.id))).scalars()):
            s.add(GroupBinding(node_id=node.id, channel="telegram", chat_id=str(-1000 - n), status="active",
                               title=node.name, bound_at=world.clock.now()))
    seq = iter(range(1, 1000))

    async def say(**kw) -> None:
        await world.office.handle(Inbound(channel="wecom", chat_id=USER, user_id=USER, user_name="王小明",
                                          event_id=f"w{next(seq)}", **kw))

    async def press(label: str) -> None:
        async with world.sm() as s:
            rows = (await s.execute(select(Outbox).where(Outbox.chat_id == USER).order_by(Outbox.id.desc()))).scalars()
            token = next(b["token"] for r in rows for row in r.payload.get("buttons", []) for b in row
                         if b["label"] == label)
        await say(kind="button", button=token)

    await say(text="/report")
    await press("环境卫生")
    await say(text="菜场门口垃圾没人清")
    photo = jpeg("olive", 24)
    await world.wecom_photo(photo)
    await press("下一步")
    await say(location=(30.285, 120.115))
    await press("跳过")
    await press("提交")
    async with world.sm() as s:
        case = (await s.execute(select(Case).order_by(Case.id.desc()).limit(1))).scalar_one()
        group = (await s.execute(select(GroupBinding.chat_id).where(GroupBinding.node_id == case.grid_id))).scalar_one()
    assert await world.fetcher.fetch_due() == 1
    await world.delivery.drain()
    photos = world.tg.calls_of("sendPhoto", chat=group)
    cards = [c for c in world.tg.sent_to(group) if case.number in c.params["text"]]
    assert len(photos) == 1 and world.tg.files[photos[0].params["photo"]] == photo and len(cards) == 1
