"""Tables a chat channel needs beyond the neutral ones (still platform neutral in form)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, Json, UTCDateTime


class ChannelChoice(Base):
    """Numbered choices shown as text where a platform cannot show all buttons (WeChat Work
    cards hold at most 6): a reply "2" in that chat means the second token. One row per chat,
    replaced by the next numbered list, so it survives a restart."""

    __tablename__ = "channel_choice"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tokens: Mapped[list] = mapped_column(Json, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GroupStranger(Base):
    """Someone in a bound work group who is not staff of its node: the group was told once when
    they joined (handlers.admin.member_joined); they get no answers there."""

    __tablename__ = "group_stranger"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    told_at: Mapped[datetime] = mapped_column(UTCDateTime())
