"""Web console sessions. The cookie carries a random session id; only its SHA-256 is stored,
so a copy of the database signs nobody in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Case, UTCDateTime

# the console's case list sorted by deadline (migration 0020)
Index("ix_case_deadline_at", Case.deadline_at)


class ConsoleSession(Base):
    __tablename__ = "console_session"
    __table_args__ = (Index("ix_console_session_person", "person_id"),)
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie's id
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    csrf: Mapped[str] = mapped_column(String(64))  # per-session token every state-changing request carries
    language: Mapped[str | None] = mapped_column(String(10))  # the page's language switch
    address: Mapped[str | None] = mapped_column(String(64))  # where the sign-in came from
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # logout
