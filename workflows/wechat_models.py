"""Tables of the WeChat customer-service channel (微信客服): the sync cursor and each resident's reply window.

Platform neutral in form: a cursor is a string per account, a window is a time and a counter per chat.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, UTCDateTime


class KfCursor(Base):
    """Where `kf/sync_msg` stopped for one customer-service account, so a restart neither loses
    nor repeats a message (repeats are also caught by the inbound event ids)."""

    __tablename__ = "kf_cursor"
    open_kfid: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(String(128))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KfWindow(Base):
    """微信客服 may answer a resident only within 48 hours of their last message, and at most
    5 messages per message: the last message's time and how many went out since."""

    __tablename__ = "kf_window"
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_since: Mapped[int] = mapped_column(Integer, default=0)
