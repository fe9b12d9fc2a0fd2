"""The inbox: platform updates as they arrived, written before the platform is told we have them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Json, UTCDateTime


class InboxUpdate(Base):
    """One raw update. `pending` until its effect is committed (then the row goes), or
    `unreadable` when it could not be parsed: kept for inspection, never retried."""

    __tablename__ = "inbox_update"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    payload: Mapped[dict] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(12), default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
