"""Pruning what only mattered for a while: old button meanings, seen event ids, stale dialogues.

Nothing of a case is touched: case events are the record and stay. Sent outbox rows past their
retention period move to the archive, and routine marks of long-past slots are deleted
(routines.retention; the missed-patrol marks stay, they are a record). Updates kept as
`unreadable` in the inbox (bot/channels/telegram_inbox.py) go after UNREADABLE_KEPT: long enough
for someone to look at them, not a second log kept for ever.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete

from ..context import Ctx
from ..inbox_models import InboxUpdate
from ..models import ButtonRef, Conversation, InboundSeen
from . import retention
from .common import SweepResult

# a button older than this no longer works anyway (handlers.router.BUTTON_MAX_AGE)
BUTTONS_KEPT = timedelta(days=60)
# platforms repeat an event within minutes (WeChat Work) or until the offset is confirmed (Telegram)
EVENT_IDS_KEPT = timedelta(days=7)
# a report left half-written for a month is not coming back
DIALOGUES_KEPT = timedelta(days=30)
# an update no library could read, kept for inspection (its id and error are in the log too)
UNREADABLE_KEPT = timedelta(days=30)


async def sweep(ctx: Ctx) -> SweepResult:
    result = SweepResult()
    now = ctx.now()
    for key, stmt in (
        ("buttons", delete(ButtonRef).where(ButtonRef.created_at < now - BUTTONS_KEPT)),
        ("event_ids", delete(InboundSeen).where(InboundSeen.at < now - EVENT_IDS_KEPT)),
        ("dialogues", delete(Conversation).where(Conversation.updated_at < now - DIALOGUES_KEPT)),
        # pending rows are never touched: they are updates not yet handled
        ("unreadable_updates", delete(InboxUpdate).where(InboxUpdate.status == "unreadable",
                                                         InboxUpdate.received_at < now - UNREADABLE_KEPT)),
    ):
        result.add(key, (await ctx.session.execute(stmt)).rowcount or 0)
    result.add("outbox_archived", await retention.archive_sent(ctx))
    result.add("marks_pruned", await retention.prune_marks(ctx))
    return result
