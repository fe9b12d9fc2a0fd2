"""Tables of the Official Account (公众号) channel: each resident's reply window and the parts of
an outbox row that already went out.

Platform neutral in form: a window is a time and a counter per (channel, chat); a sent part is an
outbox row id and a part key, so a retry after a hold or a restart never sends a part twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, UTCDateTime


class ReplyWindow(Base):
    """A platform that lets us write to a person only for a while after their last message
    (the 公众号's 客服消息: 48 hours): that message's time and how many went out since."""

    __tablename__ = "reply_window"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_since: Mapped[int] = mapped_column(Integer, default=0)


class SentPart(Base):
    """One part (a text piece, a menu, a template notice) of an outbox row that the platform
    accepted; the row id is the idempotency key where the platform offers none of its own."""

    __tablename__ = "sent_part"
    outbox_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    part: Mapped[str] = mapped_column(String(32), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
