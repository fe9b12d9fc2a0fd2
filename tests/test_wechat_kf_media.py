"""微信客服 media into the store: a resident's photo (a media_id from kf/sync_msg, kept 3 days by
WeChat) is fetched after the commit like the app's, and still sendable after the fake expired it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.media import MediaLibrary
from bot.media_fetch import MediaFetcher
from workflows.context import Ctx
from workflows.media_models import MediaItem
from workflows.media_store import DirectoryStore, sha256_of, use_store
from workflows.outbox import Msg, to_chat

from .fakes.wechat_kf import FakeWeChatKf
from .test_media import jpeg
from .test_wechat_kf import Kf

pytestmark = pytest.mark.demo


@pytest.fixture
async def kf(sessionmaker, tmp_path):
    store = DirectoryStore(tmp_path / "media")
    use_store(store)
    api = await FakeWeChatKf().start()
    k = Kf(sessionmaker, api)
    await k.start()
    k.rt.adapter.media = MediaLibrary(sessionmaker, store, k.clock)
    k.fetcher = MediaFetcher(sessionmaker, {"wechat_kf": k.rt.adapter}, store=store, clock=k.clock)
    k.store = store
    yield k
    await k.stop()
    await api.stop()
    use_store(None)


async def resident_sends_photo(kf: Kf, user: str, data: bytes) -> MediaItem:
    media_id = kf.api.add_media(data, "image/jpeg")
    assert await kf.post(kf.event(kf.api.resident_writes(user, "image", {"media_id": media_id}))) == 200
    await kf.settle()
    async with kf.sm() as s:
        return (await s.execute(select(MediaItem).where(MediaItem.ref == media_id))).scalar_one()


async def test_a_kf_photo_is_stored_and_outlives_its_media_id(kf: Kf):
    photo = jpeg("orange")
    item = await resident_sends_photo(kf, "wmRes1", photo)
    assert item.channel == "wechat_kf" and item.status == "pending"  # recorded with the message, not fetched in it
    assert await kf.fetcher.fetch_due() == 1
    async with kf.sm() as s:
        item = await s.get(MediaItem, item.id)
    assert item.status == "stored" and item.sha256 == sha256_of(photo) and await kf.store.get(item.sha256) == photo
    assert [c.query["media_id"] for c in kf.api.calls_of("media/get")] == [item.ref]

    # four days later WeChat has forgotten the media_id; the resident writes again, and a message
    # carrying the photo goes out uploaded from the store under a new media_id
    kf.api.expire_media()
    kf.clock.advance(4 * 24 * 3600)
    await kf.write("wmRes1", "你好")
    async with kf.sm() as s, s.begin():
        await to_chat(Ctx(session=s, clock=kf.clock, channels=frozenset({"wechat_kf"})), "wechat_kf", "wmRes1",
                      Msg("您上报的照片", media=[{"kind": "photo", "channel": "wechat_kf", "ref": item.ref,
                                                 "item": item.id}]))
    await kf.delivery.drain()
    images = [c for c in kf.api.sent_to("wmRes1") if c.body["msgtype"] == "image"]
    assert len(images) == 1 and images[0].ok
    ((utype, mid, data),) = kf.api.uploads
    assert utype == "image" and data == photo and images[0].body["image"]["media_id"] == mid != item.ref


async def test_a_kf_photo_sent_back_within_three_days_uses_its_own_media_id(kf: Kf):
    item = await resident_sends_photo(kf, "wmRes2", jpeg("teal"))
    await kf.fetcher.fetch_due()
    async with kf.sm() as s, s.begin():
        await to_chat(Ctx(session=s, clock=kf.clock, channels=frozenset({"wechat_kf"})), "wechat_kf", "wmRes2",
                      Msg("收到", media=[{"kind": "photo", "channel": "wechat_kf", "ref": item.ref, "item": item.id}]))
    await kf.delivery.drain()
    images = [c for c in kf.api.sent_to("wmRes2") if c.body["msgtype"] == "image"]
    assert [c.body["image"]["media_id"] for c in images] == [item.ref] and kf.api.uploads == []


async def test_a_kf_media_id_expired_before_the_fetch_is_failed_and_the_resident_asked_again(kf: Kf):
    item = await resident_sends_photo(kf, "wmRes3", jpeg("navy"))
    kf.api.expire_media()
    await kf.fetcher.fetch_due()
    async with kf.sm() as s:
        item = await s.get(MediaItem, item.id)
    assert item.status == "failed" and "40007" in item.error
    await kf.delivery.drain()
    assert any("照片没能保存" in t for t in kf.texts("wmRes3"))
