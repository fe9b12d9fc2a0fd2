"""Tables of the intake API (Open311 GeoReport v2): the keys other systems use, and which
case each of their requests became."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, UTCDateTime


class ApiKey(Base):
    """One calling system (the 12345 hotline platform, a district system …). Only a SHA-256 of
    the key is kept; the key itself is printed once when it is created."""

    __tablename__ = "api_key"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # the cases' source, e.g. "hotline"
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_prefix: Mapped[str] = mapped_column(String(12))  # shown in lists, so a key can be recognised
    read_all: Mapped[bool] = mapped_column(Boolean, default=False)
    rate_per_minute: Mapped[int] = mapped_column(Integer, default=60)
    webhook_url: Mapped[str | None] = mapped_column(String(500))
    # the HMAC secret must be readable to sign with; it is not the key and grants no access
    webhook_secret: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiRequest(Base):
    """A service request posted through the API and the case it became."""

    __tablename__ = "api_request"
    __table_args__ = (UniqueConstraint("key_id", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("api_key.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), unique=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    external_id: Mapped[str | None] = mapped_column(String(100))  # the caller's own id (工单号)
    media_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
