"""Voice notes between platforms: a WeChat Work voice (AMR) reaches Telegram as a real voice note
(OGG/Opus), a Telegram voice reaches WeChat Work as AMR voice; converted once by ffmpeg (and SoX
for AMR), the conversion kept in the store; without the tools a voice still goes, as a file.

The fake Telegram server refuses a sendVoice that is not OGG/Opus (OggS, OpusHead), the fake WeChat
Work server a voice upload that is not AMR (#!AMR). The test audio is made by ffmpeg and SoX."""

from __future__ import annotations

import logging
import shutil
import subprocess

import pytest
from sqlalchemy import select

from bot.channels.wecom_convert import to_inbound
from bot.voice import VoiceConverter, amr_seconds, format_of
from handlers.events import Inbound, Media
from workflows.media_models import MediaFile, MediaRef, MediaVariant
from workflows.media_store import DirectoryStore, sha256_of, use_store

from .fakes.telegram_api import FakeTelegram
from .fakes.wecom_api import FakeWeCom
from .test_media import GROUP, USER, World, attachment, xml

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("sox")),
                                reason="needs ffmpeg and sox (scripts/test installs them)")


def tone(seconds: float, fmt: str) -> bytes:
    """A spoken-length tone as a platform would send it: AMR-NB (ffmpeg → SoX) or OGG/Opus (ffmpeg)."""
    source = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
              f"sine=frequency=440:duration={seconds}"]
    if fmt == "ogg":
        return subprocess.run([*source, "-c:a", "libopus", "-b:a", "24k", "-f", "ogg", "pipe:1"],
                              check=True, capture_output=True).stdout
    pcm = subprocess.run([*source, "-f", "s16le", "-ac", "1", "-ar", "8000", "pipe:1"],
                         check=True, capture_output=True).stdout
    return subprocess.run(["sox", "-t", "raw", "-r", "8000", "-e", "signed", "-b", "16", "-c", "1", "-",
                           "-t", "amr-nb", "-"], input=pcm, check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def amr() -> bytes:
    return tone(2, "amr")


@pytest.fixture(scope="module")
def ogg() -> bytes:
    return tone(2, "ogg")


@pytest.fixture
async def world(sessionmaker, tmp_path):
    store = DirectoryStore(tmp_path / "media")
    use_store(store)
    wx = await FakeWeCom().start()
    tg = await FakeTelegram().start()
    w = World(sessionmaker, wx, tg, store)
    await w.bot.initialize()
    yield w
    await w.bot.shutdown()
    await tg.stop()
    await wx.stop()
    use_store(None)


async def wecom_voice(world: World, data: bytes, msg_id: int = 7001) -> Inbound:
    media_id = world.wx.add_media(data, "audio/amr")
    inbound, _ = to_inbound(xml(USER, "voice", f"<MediaId><![CDATA[{media_id}]]></MediaId><Format>amr</Format>",
                                msg_id))
    await world.office.handle(inbound)
    assert await world.fetcher.fetch_due() == 1
    return inbound


async def telegram_voice(world: World, data: bytes, event: str = "v1") -> Inbound:
    file_id = world.tg.add_file(data)
    inbound = Inbound(channel="telegram", chat_id="501", user_id="501", event_id=event,
                      media=[Media("voice", file_id, "telegram", size=len(data), mime="audio/ogg")])
    await world.office.handle(inbound)
    assert await world.fetcher.fetch_due() == 1
    return inbound


async def variants(world: World) -> list[MediaVariant]:
    async with world.sm() as s:
        return list((await s.execute(select(MediaVariant))).scalars())


def test_the_test_audio_is_what_the_platforms_send(amr: bytes, ogg: bytes):
    assert format_of(amr) == "amr" and format_of(ogg) == "ogg"
    assert amr_seconds(amr) == pytest.approx(2.0, abs=0.05)
    assert format_of(b"RIFF....WAVEfmt ") is None


async def test_a_wecom_voice_reaches_a_telegram_group_as_a_voice_note(world: World, amr: bytes):
    inbound = await wecom_voice(world, amr)
    await world.send("telegram", str(GROUP), [attachment(inbound)], is_group=True)
    (sent,) = world.tg.calls_of("sendVoice", "sendDocument", chat=GROUP)
    assert sent.method == "sendVoice" and sent.status == 200  # the fake checked OggS and OpusHead
    (upload,) = world.tg.uploads
    assert format_of(upload[1]) == "ogg" and upload[1] != amr

    # the conversion is stored, content-addressed and linked to the original
    (v,) = await variants(world)
    assert v.source_sha256 == sha256_of(amr) and v.format == "ogg" and v.sha256 == sha256_of(upload[1])
    assert await world.store.get(v.sha256) == upload[1]
    async with world.sm() as s:
        assert (await s.get(MediaFile, v.sha256)).mime == "audio/ogg"
        assert (await s.get(MediaRef, (v.sha256, "telegram", world.telegram.ref_scope))).ref == upload[0]

    # the next group gets Telegram's file_id: no second conversion, no second upload
    await world.send("telegram", "-100888", [attachment(inbound)], is_group=True)
    (again,) = world.tg.calls_of("sendVoice", "sendDocument", chat=-100888)
    assert again.method == "sendVoice" and again.params["voice"] == upload[0]
    assert len(world.tg.uploads) == 1 and len(await variants(world)) == 1


async def test_a_telegram_voice_reaches_wecom_as_amr_voice(world: World, ogg: bytes):
    inbound = await telegram_voice(world, ogg)
    await world.send("wecom", "zhangwei", [attachment(inbound)])
    (sent,) = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype in ("voice", "file")]
    assert sent.msgtype == "voice" and sent.ok
    ((utype, mid, data),) = world.wx.uploads
    assert utype == "voice" and data.startswith(b"#!AMR") and sent.body["voice"]["media_id"] == mid
    assert amr_seconds(data) == pytest.approx(2.0, abs=0.1)
    (v,) = await variants(world)
    assert v.source_sha256 == sha256_of(ogg) and v.format == "amr" and v.sha256 == sha256_of(data)

    # the uploaded media_id is kept for its 3 days: the next person gets it without an upload
    await world.send("wecom", "sunli", [attachment(inbound)])
    (to_sunli,) = [c for c in world.wx.sent_to_user("sunli") if c.msgtype in ("voice", "file")]
    assert to_sunli.msgtype == "voice" and to_sunli.body["voice"]["media_id"] == mid and len(world.wx.uploads) == 1

    # four days later the media_id has expired: uploaded again from the stored AMR, not converted again
    world.wx.expire_media()
    world.clock.advance(4 * 24 * 3600)
    await world.send("wecom", "liuyang", [attachment(inbound)])
    (later,) = [c for c in world.wx.sent_to_user("liuyang") if c.msgtype in ("voice", "file")]
    assert later.msgtype == "voice" and [u[0] for u in world.wx.uploads] == ["voice", "voice"]
    assert world.wx.uploads[1][2] == data and len(await variants(world)) == 1


async def test_without_ffmpeg_a_voice_goes_as_a_file_with_one_log_line(world: World, amr: bytes, ogg: bytes,
                                                                      caplog):
    world.library.voice = VoiceConverter(ffmpeg="gridbot-no-such-ffmpeg")
    from_wecom = await wecom_voice(world, amr)
    from_telegram = await telegram_voice(world, ogg)
    with caplog.at_level(logging.WARNING, logger="bot.voice"):
        await world.send("telegram", str(GROUP), [attachment(from_wecom)], is_group=True)
    assert [r.getMessage() for r in caplog.records if r.name == "bot.voice"] == [
        "voice not converted to ogg: gridbot-no-such-ffmpeg not found; it goes as a file"]
    (sent,) = world.tg.calls_of("sendVoice", "sendDocument", chat=GROUP)
    assert sent.method == "sendDocument" and world.tg.uploads[0][1] == amr

    await world.send("wecom", "zhangwei", [attachment(from_telegram)])
    (to_wecom,) = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype in ("voice", "file")]
    assert to_wecom.msgtype == "file" and world.wx.uploads == [("file", to_wecom.body["file"]["media_id"], ogg)]
    assert await variants(world) == []


async def test_a_telegram_voice_over_60_seconds_goes_to_wecom_as_a_file(world: World):
    long = tone(61, "ogg")
    inbound = await telegram_voice(world, long)
    await world.send("wecom", "zhangwei", [attachment(inbound)])
    (sent,) = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype in ("voice", "file")]
    # WeChat Work refuses voice over 60 s: the whole recording goes as a file rather than cut short
    assert sent.msgtype == "file" and [(u[0], u[2]) for u in world.wx.uploads] == [("file", long)]


async def test_a_voice_of_its_own_platform_is_not_converted(world: World, amr: bytes, ogg: bytes):
    from_wecom = await wecom_voice(world, amr)
    await world.send("wecom", "zhangwei", [attachment(from_wecom)])
    (sent,) = [c for c in world.wx.sent_to_user("zhangwei") if c.msgtype == "voice"]
    assert sent.body["voice"]["media_id"] == from_wecom.media[0].ref and world.wx.uploads == []
    from_telegram = await telegram_voice(world, ogg, "v2")
    await world.send("telegram", str(GROUP), [attachment(from_telegram)], is_group=True)
    (voice,) = world.tg.calls_of("sendVoice", chat=GROUP)
    assert voice.params["voice"] == from_telegram.media[0].ref and world.tg.uploads == []
    assert await variants(world) == []
