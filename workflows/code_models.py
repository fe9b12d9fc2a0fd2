"""The audit trail of one-time codes: issued, used, refused, locked out."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, UTCDateTime


class CodeEvent(Base):
    """One event of a one-time code (/bindaccount, /link, /bind). Wrong tries are counted from
    here, per chat account and per chat, for the lock-out; the code itself is never stored here."""

    __tablename__ = "code_event"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    purpose: Mapped[str] = mapped_column(String(20))  # acct | link | bind
    event: Mapped[str] = mapped_column(String(12))  # issued | used | failed | locked
    channel: Mapped[str | None] = mapped_column(String(20))
    user_id: Mapped[str | None] = mapped_column(String(128))
    chat_id: Mapped[str | None] = mapped_column(String(128))
    person_id: Mapped[int | None] = mapped_column(BigInteger)
    node_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_code_event_user", "channel", "user_id", "at"),
        Index("ix_code_event_chat", "channel", "chat_id", "at"),
    )
