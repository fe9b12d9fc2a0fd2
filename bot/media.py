"""Media for the senders: the configured store, and for one attachment dict either a
platform id still valid for this platform or the bytes to upload (remembered afterwards).

A WeChat Work media_id lives 3 days (received or uploaded); a Telegram file_id belongs to one
bot. A sender asks `ref_for` first and `blob` only when it has to upload, then `remember`s
the id the platform gave back, so each stored file is uploaded once per platform and bot.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows import media
from workflows.clock import Clock, SystemClock
from workflows.media_store import DirectoryStore, MediaStore, current_store, sha256_of, use_store

from .channels.base import RetryLater
from .settings import Settings
from .voice import AMR, MIMES, WECOM_VOICE_SECONDS, VoiceConverter, amr_seconds, format_of

# a platform id this close to its expiry is not used: the send might arrive after it
MARGIN = timedelta(minutes=10)
# a message waits this long for an attachment that has just arrived and is being fetched;
# after that it goes without it (the card still counts it)
FETCH_WAIT = timedelta(minutes=2)
RETRY_SECONDS = 3.0


def media_dir(settings: Settings) -> Path:
    if settings.media_dir:
        return Path(settings.media_dir)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve().parent / "media"
    return Path("media").resolve()


def build_store(settings: Settings) -> MediaStore:
    if settings.media_store == "s3":
        from .media_s3 import S3Store

        return S3Store.from_settings(settings)
    if settings.media_store != "dir":
        raise ValueError("MEDIA_STORE must be dir or s3")
    return DirectoryStore(media_dir(settings))


def converter(settings: Settings) -> VoiceConverter:
    return VoiceConverter(settings.ffmpeg_binary, settings.sox_binary)


def configure(settings: Settings) -> MediaStore:
    store = build_store(settings)
    use_store(store)
    return store


@dataclass
class Blob:
    data: bytes
    kind: str
    name: str
    mime: str | None
    sha256: str | None  # None for inline data (nothing to remember a platform id for)


class MediaLibrary:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], store: MediaStore | None = None,
                 clock: Clock | None = None, voice: VoiceConverter | None = None) -> None:
        self.sessionmaker = sessionmaker
        self._store = store
        self.clock = clock or SystemClock()
        self.voice = voice or VoiceConverter()

    @property
    def store(self) -> MediaStore:
        return self._store or current_store()

    async def ref_for(self, m: dict, channel: str, scope: str, lifetime: timedelta | None) -> str | None:
        """This platform's id for the attachment when it has a valid one, else None (upload)."""
        now = self.clock.now()
        async with self.sessionmaker() as session:
            if m.get("channel") == channel and m.get("ref"):
                item = await media.item_of(session, m)
                # an arrival's id is taken as this bot's: a different bot's id fails to send
                # and the sender then uploads from the store
                if item is None or lifetime is None or item.received_at + lifetime > now + MARGIN:
                    return m["ref"]
            sha = await media.sha_of(session, m)
            if sha is None:
                return None
            return await media.cached_ref(session, sha, channel, scope, now + MARGIN)

    async def blob_or_wait(self, m: dict) -> Blob | None:
        """The bytes to upload; RetryLater while a just-arrived attachment is being fetched
        (Delivery then holds the message a few seconds); None when it cannot be had."""
        item = None
        if m.get("item"):
            async with self.sessionmaker() as session:
                item = await media.item_of(session, m)
        # the bytes are looked for after the status: a fetch that finishes in between is found
        # here (read the other way round, the photo was missed and the card went without it)
        blob = await self.blob(m)
        if blob is None and item is not None and item.status == "pending" \
                and item.received_at > self.clock.now() - FETCH_WAIT:
            raise RetryLater(RETRY_SECONDS, f"attachment {item.id} not fetched yet")
        return blob

    async def blob(self, m: dict) -> Blob | None:
        """The bytes to upload, or None when the file is not in the store (yet)."""
        kind = m.get("kind") or "file"
        if m.get("data"):
            return inline_blob(m)
        async with self.sessionmaker() as session:
            sha = await media.sha_of(session, m)
            item = await media.item_of(session, m)
        if sha is None:
            return None
        data = await self.store.get(sha)
        if data is None:
            return None
        mime = m.get("mime") or (item.mime if item else None)
        name = m.get("name") or (item.name if item else None) or default_name(kind, mime, sha)
        return Blob(data, kind, name, mime, sha)

    async def voice_ref(self, m: dict, fmt: str, channel: str, scope: str,
                        lifetime: timedelta | None) -> str | None:
        """This platform's id for the attachment's voice converted to fmt, when it was sent so before."""
        async with self.sessionmaker() as session:
            sha = await media.sha_of(session, m)
            converted = await media.variant_of(session, sha, fmt) if sha else None
        if converted is None:
            return None
        return await self.ref_for({"sha256": converted}, channel, scope, lifetime)

    async def voice_as(self, m: dict, fmt: str) -> Blob | None:
        """The attachment's voice in fmt (amr, ogg), converted once and kept in the store linked to
        the original; None when it cannot be (not stored, no converter, a failed conversion, or
        longer than WeChat Work's 60 s as AMR): the sender then sends it as a file."""
        blob = await self.blob_or_wait(m)
        if blob is None or blob.sha256 is None:
            return None
        if format_of(blob.data) == fmt:
            return blob
        async with self.sessionmaker() as session:
            converted = await media.variant_of(session, blob.sha256, fmt)
        data = await self.store.get(converted) if converted else None
        if data is None:
            data = await self.voice.convert(blob.data, fmt)
            if data is None:
                return None
            converted = sha256_of(data)
            await self.store.put(converted, data)  # before the commit, as every stored file
            async with self.sessionmaker() as session, session.begin():
                await media.add_variant(session, blob.sha256, fmt, converted, len(data), MIMES[fmt], self.clock.now())
        if fmt == AMR and amr_seconds(data) > WECOM_VOICE_SECONDS:
            return None  # WeChat Work refuses longer voice; cutting the evidence short is worse than a file
        stem = blob.name.rsplit(".", 1)[0] if blob.name else f"voice-{converted[:12]}"
        return Blob(data, "voice", f"{stem}.{fmt}", MIMES[fmt], converted)

    async def remember(self, sha: str | None, channel: str, scope: str, ref: str,
                       lifetime: timedelta | None) -> None:
        if not sha or not ref:
            return
        expires = self.clock.now() + lifetime if lifetime else None
        async with self.sessionmaker() as session, session.begin():
            await media.remember_ref(session, sha, channel, scope, ref, expires)

    async def where(self, m: dict) -> str | None:
        """Where the stored file is (the terminal shows it)."""
        async with self.sessionmaker() as session:
            sha = await media.sha_of(session, m)
        return self.store.where(sha) if sha else None


def inline_blob(m: dict) -> Blob | None:
    """An attachment carried in the payload itself (the weekly charts): base64 bytes."""
    kind = m.get("kind") or "file"
    try:
        data = base64.b64decode(m["data"], validate=True)
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    return Blob(data, kind, m.get("name") or f"{kind}.png", m.get("mime") or "image/png", None)


EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "audio/amr": "amr", "audio/ogg": "ogg",
              "video/mp4": "mp4", "application/pdf": "pdf",
              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx"}


def default_name(kind: str, mime: str | None, sha: str) -> str:
    ext = EXTENSIONS.get(mime or "", {"photo": "jpg", "voice": "amr", "video": "mp4"}.get(kind, "bin"))
    return f"{kind}-{sha[:12]}.{ext}"
