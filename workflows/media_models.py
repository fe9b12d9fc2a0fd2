"""The media store's tables: one row per stored content (sha256), one per attachment that
arrived or was made, and the platform references a stored file is known by."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, UTCDateTime


class MediaFile(Base):
    """A file in the store, by content: the same bytes arriving twice are stored once."""

    __tablename__ = "media_file"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(Integer)
    mime: Mapped[str | None] = mapped_column(String(100))
    stored_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MediaItem(Base):
    """One attachment: who sent it, from where, for which case, and whether we hold it yet.

    status: pending (not fetched yet; next_try_at says when to try) · stored · refused (over
    the limit for its type) · failed (the platform no longer has it; `media fetch-missing` tries again).
    """

    __tablename__ = "media_item"
    __table_args__ = (Index("ix_media_item_due", "status", "next_try_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # photo | voice | video | file
    sha256: Mapped[str | None] = mapped_column(ForeignKey("media_file.sha256"), index=True)
    size: Mapped[int | None] = mapped_column(Integer)
    mime: Mapped[str | None] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(20))  # where it arrived (None: made here)
    ref: Mapped[str | None] = mapped_column(String(512))  # that platform's id for it
    chat_id: Mapped[str | None] = mapped_column(String(128))
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)


class MediaRef(Base):
    """A platform's id for a stored file, so it is uploaded once per platform (and bot):
    WeChat Work media_ids expire after 3 days, Telegram file_ids belong to one bot."""

    __tablename__ = "media_ref"
    sha256: Mapped[str] = mapped_column(ForeignKey("media_file.sha256"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    scope: Mapped[str] = mapped_column(String(64), primary_key=True)  # bot id, corp:agent
    ref: Mapped[str] = mapped_column(String(512))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class MediaVariant(Base):
    """A stored file converted for a platform that cannot play the original (a WeChat Work AMR
    voice as OGG/Opus for Telegram, a Telegram voice as AMR for WeChat Work): converted once,
    the converted bytes stored like any file, linked to the original here."""

    __tablename__ = "media_variant"
    source_sha256: Mapped[str] = mapped_column(ForeignKey("media_file.sha256"), primary_key=True)
    format: Mapped[str] = mapped_column(String(20), primary_key=True)  # amr | ogg
    sha256: Mapped[str] = mapped_column(ForeignKey("media_file.sha256"))
    made_at: Mapped[datetime] = mapped_column(UTCDateTime())
