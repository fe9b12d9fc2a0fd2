"""The office's rules for media: what is kept, the limits per type, and the payload forms.

Every attachment that arrives is recorded as a `MediaItem` in the inbound transaction and
fetched into the store afterwards (bot/media_fetch.py), so the case never waits for a download.
Nothing here deletes a stored file: a case's evidence is kept for good.

Attachment dicts (in Case.attachments, CaseEvent.attachments, outbox payload "media"):

- arrived on a platform: {"kind", "channel", "ref", "item": <media_item id>, …}
- made here (a chart, a ledger): {"kind", "sha256", "name", "mime", "size", "item"}
- inline (older weekly charts): {"kind": "photo", "data": <base64>, …}

A sender resolves any of them to bytes or to its own platform's id (bot/media.py).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from .context import Ctx
from .i18n import T, _
from .media_models import MediaFile, MediaItem, MediaRef, MediaVariant
from .media_store import MediaStore, current_store, sha256_of

MB = 1024 * 1024
KINDS = ("photo", "voice", "video", "file")
# WeChat Work's upload limits (image 10 MB, voice 2 MB AMR, video 10 MB, file 20 MB) are the
# tightest of our platforms, and a file we could not pass on to the other platform is no use
# as evidence there: they are the limits for every channel. Telegram bots may fetch 20 MB.
LIMITS = {"photo": 10 * MB, "voice": 2 * MB, "video": 10 * MB, "file": 20 * MB}
KIND_LABELS = {"photo": _("照片"), "voice": _("语音"), "video": _("视频"), "file": _("文件")}


def limit_of(kind: str) -> int:
    return LIMITS.get(kind, LIMITS["file"])


def too_big_text(t: T, kind: str, size: int) -> str:
    return t("{kind}太大（{size} MB），上限是 {limit} MB，没有保存。请压缩后重新发送。",
             kind=t(KIND_LABELS.get(kind, KIND_LABELS["file"])),
             size=f"{size / MB:.1f}", limit=limit_of(kind) // MB)


@dataclass
class Arrival:
    """What a channel hands in for one attachment (handlers.events.Media has these fields)."""

    kind: str
    ref: str
    channel: str
    size: int | None = None
    mime: str | None = None
    name: str | None = None


async def arrived(ctx: Ctx, media: list, *, chat_id: str, sender_id: int | None) -> list:
    """Records each attachment of an inbound event (pending: fetched after the commit) and
    sets its `item`; returns those refused at once because the platform said they are too big."""
    refused = []
    for m in media:
        over = bool(m.size and m.size > limit_of(m.kind))
        item = MediaItem(kind=m.kind if m.kind in KINDS else "file", size=m.size, mime=m.mime,
                         name=(m.name or None) and m.name[:255], channel=m.channel, ref=m.ref, chat_id=chat_id,
                         sender_id=sender_id, received_at=ctx.now(), status="refused" if over else "pending",
                         attempts=0, next_try_at=None if over else ctx.now(),
                         error="over the size limit" if over else None)
        ctx.session.add(item)
        await ctx.session.flush()
        m.item = item.id
        if over:
            refused.append(m)
    return refused


def item_ids(attachments: list | None) -> list[int]:
    return [int(a["item"]) for a in attachments or [] if isinstance(a, dict) and a.get("item")]


async def link(ctx: Ctx, case_id: int, attachments: list | None) -> None:
    """Marks the attachments as evidence of a case (called with every case event)."""
    ids = item_ids(attachments)
    if ids:
        await ctx.session.execute(update(MediaItem).where(MediaItem.id.in_(ids), MediaItem.case_id.is_(None))
                                  .values(case_id=case_id))


async def add_file(session: AsyncSession, sha: str, size: int, mime: str | None, now: datetime) -> None:
    """The media_file row, once per content, even when two processes store the same bytes."""
    await add_files(session, [{"sha256": sha, "size": size, "mime": mime, "stored_at": now}])


async def add_files(session: AsyncSession, rows: list[dict]) -> None:
    """media_file rows (sha256, size, mime, stored_at), a content already known left as it is;
    a statement per 1,000."""
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    for i in range(0, len(rows), 1000):
        await session.execute(insert(MediaFile).values(rows[i:i + 1000]).on_conflict_do_nothing(index_elements=["sha256"]))


async def store_files(ctx: Ctx, files: dict[str, bytes], mime: str) -> None:
    """Many files made here, keyed by their sha256 (a sweep's charts), into the store and
    media_file: written a few at a time in parallel (each write is fsynced), then one statement
    for their rows. As with store_bytes, the bytes are in the store before the caller's commit."""
    if not files:
        return
    store = current_store()
    limit = asyncio.Semaphore(8)

    async def put(sha: str, data: bytes) -> None:
        async with limit:
            await store.put(sha, data)

    await asyncio.gather(*(put(sha, data) for sha, data in files.items()))
    await add_files(ctx.session, [{"sha256": sha, "size": len(data), "mime": mime, "stored_at": ctx.now()}
                                  for sha, data in files.items()])


async def store_bytes(ctx: Ctx, data: bytes, kind: str, name: str, mime: str, *,
                      case_id: int | None = None, sender_id: int | None = None) -> dict:
    """Stores a file made here (a chart, a ledger) and returns the attachment dict to put in a
    message's media or a case's attachments. The bytes are written before the caller's commit:
    a rollback leaves an unreferenced file (harmless, the same bytes reuse it), never a reference
    to a missing one."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    sha = sha256_of(data)
    await current_store().put(sha, data)
    await add_file(ctx.session, sha, len(data), mime, ctx.now())
    item = MediaItem(kind=kind, sha256=sha, size=len(data), mime=mime, name=name[:255], channel=None, ref=None,
                     sender_id=sender_id, case_id=case_id, received_at=ctx.now(), status="stored", attempts=0)
    ctx.session.add(item)
    await ctx.session.flush()
    return {"kind": kind, "sha256": sha, "name": name, "mime": mime, "size": len(data), "item": item.id}


# ---------------------------------------------------------------- for senders and the operator


async def sha_of(session: AsyncSession, m: dict) -> str | None:
    """The stored file behind an attachment dict, or None while it is not (yet) in the store."""
    if m.get("sha256"):
        return m["sha256"]
    if m.get("item"):
        return (await session.execute(select(MediaItem.sha256).where(MediaItem.id == int(m["item"]))
                                      )).scalar_one_or_none()
    return None


async def item_of(session: AsyncSession, m: dict) -> MediaItem | None:
    return await session.get(MediaItem, int(m["item"])) if m.get("item") else None


async def cached_ref(session: AsyncSession, sha: str, channel: str, scope: str, now: datetime) -> str | None:
    row = await session.get(MediaRef, (sha, channel, scope))
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    return row.ref


async def remember_ref(session: AsyncSession, sha: str, channel: str, scope: str, ref: str,
                       expires_at: datetime | None) -> None:
    row = await session.get(MediaRef, (sha, channel, scope))
    if row is None:
        session.add(MediaRef(sha256=sha, channel=channel, scope=scope, ref=ref, expires_at=expires_at))
    else:
        row.ref, row.expires_at = ref, expires_at


async def variant_of(session: AsyncSession, sha: str, fmt: str) -> str | None:
    """The stored conversion of a file to a format (a voice as AMR or OGG/Opus), if made before."""
    row = await session.get(MediaVariant, (sha, fmt))
    return row.sha256 if row else None


async def add_variant(session: AsyncSession, source: str, fmt: str, sha: str, size: int, mime: str,
                      now: datetime) -> None:
    """Records a conversion whose bytes are in the store already; a second process converting the
    same file at the same time makes the same bytes, and the first link stays."""
    await add_file(session, sha, size, mime, now)
    insert = pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(insert(MediaVariant).values(source_sha256=source, format=fmt, sha256=sha, made_at=now)
                          .on_conflict_do_nothing(index_elements=["source_sha256", "format"]))


# ---------------------------------------------------------------- `gridbot media check`


@dataclass
class Problem:
    what: str  # missing | corrupt | not_fetched
    sha256: str | None
    item_id: int | None
    case_id: int | None
    detail: str = ""


async def check(session: AsyncSession, store: MediaStore) -> tuple[int, list[Problem]]:
    """Every stored file present with the right hash, and every case's attachment fetched:
    (files checked, problems). Reads each file once; nothing is changed."""
    problems: list[Problem] = []
    files = (await session.execute(select(MediaFile.sha256).order_by(MediaFile.sha256))).scalars().all()
    for sha in files:
        data = await store.get(sha)
        if data is None or sha256_of(data) != sha:
            case = (await session.execute(select(func.min(MediaItem.case_id)).where(MediaItem.sha256 == sha)
                                          )).scalar()
            problems.append(Problem("missing" if data is None else "corrupt", sha, None, case, store.where(sha)))
    waiting = await session.execute(select(MediaItem).where(MediaItem.status.in_(["pending", "failed"]),
                                                            MediaItem.case_id.is_not(None)).order_by(MediaItem.id))
    for item in waiting.scalars():
        problems.append(Problem("not_fetched", None, item.id, item.case_id,
                                f"{item.channel} {item.status}: {item.error or 'waiting'}"))
    return len(files), problems
