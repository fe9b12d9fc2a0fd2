"""Fetching attachments into the store after the inbound transaction has committed.

Each channel's adapter that can download offers `download(ref) -> (bytes, mime, name)`,
`ref_scope` and `ref_lifetime`. An attachment that could not be fetched stays pending with a
later `next_try_at` (backoff); after MAX_ATTEMPTS it is marked failed with the reason, and
`gridbot media fetch-missing` tries again. The bytes are stored before the row is committed: a
crash in between leaves a pending row whose next fetch finds the file already there.
"""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from workflows import media
from workflows.clock import Clock, SystemClock
from workflows.context import Ctx
from workflows.i18n import T
from workflows.media_models import MediaItem
from workflows.media_store import MediaStore, current_store, sha256_of
from workflows.models import Person
from workflows.outbox import Msg, to_chat

from .channels.base import PermanentError

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


def backoff(attempt: int) -> timedelta:
    return timedelta(seconds=min(3600, 30 * 2 ** attempt))


def looks_corrupt(kind: str, data: bytes) -> bool:
    """A photo no image library can open is refused (Pillow comes with matplotlib)."""
    if kind != "photo":
        return False
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return True
    return False


class MediaFetcher:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], adapters: dict, *,
                 store: MediaStore | None = None, clock: Clock | None = None, poll_seconds: float = 30.0,
                 language: str = "zh_CN", timezone: str = "Asia/Shanghai") -> None:
        self.sessionmaker = sessionmaker
        self.downloaders = {name: a for name, a in adapters.items() if hasattr(a, "download")}
        self._store = store
        self.clock = clock or SystemClock()
        self.poll_seconds = poll_seconds
        self.language, self.timezone = language, timezone
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def store(self) -> MediaStore:
        return self._store or current_store()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                done = await self.fetch_due()
            except Exception:
                log.exception("media fetch round failed")
                done = 0
            if done == 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
                except TimeoutError:
                    pass

    async def fetch_due(self, limit: int = 20) -> int:
        """Fetches the attachments due now; the number tried."""
        async with self.sessionmaker() as session:
            ids = list((await session.execute(
                select(MediaItem.id).where(MediaItem.status == "pending",
                                           MediaItem.channel.in_(list(self.downloaders)),
                                           or_(MediaItem.next_try_at.is_(None),
                                               MediaItem.next_try_at <= self.clock.now()))
                .order_by(MediaItem.id).limit(limit))).scalars())
        for item_id in ids:
            await self.fetch(item_id)
        return len(ids)

    async def fetch_missing(self) -> tuple[int, int]:
        """Every pending or failed attachment, now (the operator's retry): (stored, still missing)."""
        async with self.sessionmaker() as session:
            ids = list((await session.execute(
                select(MediaItem.id).where(MediaItem.status.in_(["pending", "failed"]),
                                           MediaItem.channel.in_(list(self.downloaders)))
                .order_by(MediaItem.id))).scalars())
        stored = 0
        for item_id in ids:
            stored += await self.fetch(item_id, force=True) == "stored"
        return stored, len(ids) - stored

    async def fetch(self, item_id: int, *, force: bool = False) -> str:
        """Fetches one attachment; its status afterwards."""
        async with self.sessionmaker() as session:
            item = await session.get(MediaItem, item_id)
            if item is None or item.status not in ("pending", "failed") or item.channel not in self.downloaders:
                return item.status if item else "missing"
            channel, ref, kind = item.channel, item.ref, item.kind
        adapter = self.downloaders[channel]
        try:
            data, mime, name = await adapter.download(ref)
        except PermanentError as e:
            return await self._failed(item_id, str(e), permanent=True)
        except Exception as e:  # network trouble, a server error: later
            log.info("media item %s not fetched yet: %r", item_id, e)
            return await self._failed(item_id, f"{type(e).__name__}: {e}", permanent=False, force=force)
        if len(data) > media.limit_of(kind):
            return await self._refuse(item_id, "too_big", len(data))
        if looks_corrupt(kind, data):
            return await self._refuse(item_id, "corrupt", len(data))
        sha = sha256_of(data)
        await self.store.put(sha, data)  # before the commit; the same bytes again write nothing
        await self.stored(item_id, sha, data, mime, name, adapter)
        return "stored"

    async def stored(self, item_id: int, sha: str, data: bytes, mime: str | None, name: str | None,
                     adapter) -> None:
        async with self.sessionmaker() as session, session.begin():
            item = await session.get(MediaItem, item_id)
            await media.add_file(session, sha, len(data), mime or item.mime, self.clock.now())
            item.sha256, item.size, item.status, item.error = sha, len(data), "stored", None
            item.mime = item.mime or mime
            item.name = item.name or ((name or None) and name[:255])
            lifetime = getattr(adapter, "ref_lifetime", None)
            if lifetime is None or item.received_at + lifetime > self.clock.now():
                # the id it arrived with is this platform's id for the stored file too
                await media.remember_ref(session, sha, item.channel, adapter.ref_scope, item.ref,
                                         item.received_at + lifetime if lifetime else None)

    async def _failed(self, item_id: int, error: str, *, permanent: bool, force: bool = False) -> str:
        async with self.sessionmaker() as session, session.begin():
            item = await session.get(MediaItem, item_id)
            item.attempts += 1
            item.error = error[:1000]
            if permanent or item.attempts >= MAX_ATTEMPTS or force:
                item.status = "failed"
                # the sender still has the file: ask once for it again (the case goes on without it)
                await self._tell(session, item, lambda t: t("{kind}没能保存（平台上已取不到），请重新发送。",
                                                            kind=t(media.KIND_LABELS.get(item.kind, "文件"))),
                                 f"media-failed:{item_id}")
            else:
                item.next_try_at = self.clock.now() + backoff(item.attempts)
            return item.status

    async def _tell(self, session: AsyncSession, item: MediaItem, text, dedupe_key: str) -> None:
        if not item.chat_id or not item.channel:
            return
        person = await session.get(Person, item.sender_id) if item.sender_id else None
        t = T(person.language if person and person.language else self.language)
        ctx = Ctx(session=session, clock=self.clock, channels=frozenset(self.downloaders),
                  language=self.language, timezone=self.timezone)
        await to_chat(ctx, item.channel, item.chat_id, Msg(text(t)), person_id=item.sender_id,
                      dedupe_key=dedupe_key)

    async def _refuse(self, item_id: int, why: str, size: int) -> str:
        async with self.sessionmaker() as session, session.begin():
            item = await session.get(MediaItem, item_id)
            item.status, item.size = "refused", size
            item.error = "over the size limit" if why == "too_big" else "not a readable image"
            kind = item.kind
            await self._tell(session, item, lambda t: media.too_big_text(t, kind, size) if why == "too_big"
                             else t("照片已损坏，无法打开，没有保存。请重新发送。"), f"media-refused:{item_id}")
        return "refused"
