"""The one rule of WeChat's reply windows, kept by 微信客服 and the 公众号 alike: we may write to
a resident only within 48 hours of their last message (微信客服 also at most 5 messages per
message). Outside it a row is held (RetryLater, HOLD) without calling the API, and the channel's
runtime releases what was held for a resident when they next write (`release`)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from workflows.models import Outbox

from .base import RetryLater

REPLY_WINDOW = timedelta(hours=48)
HOLD = 30 * 24 * 3600.0  # "until the resident writes": the runtime moves not_before to then


class OutsideWindow(RetryLater):
    def __init__(self, channel: str, detail: str) -> None:
        super().__init__(HOLD, f"{channel} held until the resident writes: {detail}")


def closed_because(last_inbound_at: datetime | None, sent_since: int, now: datetime,
                   per_message: int | None = None) -> str | None:
    """Why the window is closed, or None when one more message may go out."""
    if last_inbound_at is None:
        return "the resident has not written yet"
    if now - last_inbound_at > REPLY_WINDOW:
        return "48 hours after the resident's last message"
    if per_message is not None and sent_since >= per_message:
        return f"{per_message} messages since the resident's last message"
    return None


async def release(session: AsyncSession, channel: str, chat_id: str, now: datetime) -> None:
    """The resident wrote: what was held for them is due now."""
    await session.execute(update(Outbox).where(
        Outbox.channel == channel, Outbox.chat_id == chat_id, Outbox.status == "pending",
        Outbox.not_before > now).values(not_before=now))
