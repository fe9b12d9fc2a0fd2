"""Retention: sent outbox rows older than OUTBOX_KEPT move to outbox_archive, and routine marks
that only guarded a long-past slot are deleted, both in small batches.

The outbox is a work queue: delivery scans it, and every sent weekly chart used to stay in it
inline for good (~9 GB a year for a city). What a row said stays findable in the archive — the
text and buttons, with inline media replaced by their names — and the outbox keeps only recent
and unsent rows. Pending, failed and undeliverable rows are never moved. Case events and media
are never deleted.

Routine marks (routine_mark) make a sweep do a thing once per slot: a reminder for "2026-11-23
09:00", a weekly report for "2026-W48". Once the slot is months past no sweep claims it again, so
those marks are deleted after MARKS_KEPT (a 10,000-grid city writes ~150,000 a day). Kept for
good: patrol_missed_60 (the missed-patrol record the statistics, `stats rebuild` and the points
read) and care_overdue_* (they guard a state that can last: a visit overdue for months is still
the same overdue visit, and deleting its mark would remind again).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, insert, select

from ..context import Ctx
from ..models import Outbox
from .models import OutboxArchive, RoutineMark

OUTBOX_KEPT = timedelta(days=90)
BATCH = 2000  # rows per statement: short locks next to a busy delivery worker
MAX_BATCHES = 25  # per sweep run; the hourly housekeeping catches up over a few runs

MARKS_KEPT = timedelta(days=90)
MARK_BATCH = 5000  # marks are small rows
# the kinds that are only "done once for this slot"; any kind not named here is kept
PRUNED_MARKS = ("patrol_remind", "patrol_missed_30", "patrol_missed_pass", "warn_no_workers", "care_due",
                "screening_remind", "weekly_report", "monthly_ranking", "points_ranking")


def _slim(payload: dict) -> dict:
    out = dict(payload or {})
    if out.get("media"):
        out["media"] = [{k: v for k, v in m.items() if k != "data"} for m in out["media"]]
    return out


async def archive_sent(ctx: Ctx, kept: timedelta = OUTBOX_KEPT) -> int:
    """Move sent rows older than `kept`; returns how many moved."""
    cutoff = ctx.now() - kept
    moved = 0
    for _ in range(MAX_BATCHES):
        rows = (await ctx.session.execute(
            select(Outbox.id, Outbox.created_at, Outbox.sent_at, Outbox.channel, Outbox.chat_id, Outbox.is_group,
                   Outbox.person_id, Outbox.node_id, Outbox.payload, Outbox.dedupe_key, Outbox.message_id)
            .where(Outbox.status == "sent", Outbox.sent_at < cutoff).order_by(Outbox.id).limit(BATCH))).all()
        if not rows:
            break
        await ctx.session.execute(insert(OutboxArchive), [
            {"id": r.id, "created_at": r.created_at, "sent_at": r.sent_at, "channel": r.channel,
             "chat_id": r.chat_id, "is_group": r.is_group, "person_id": r.person_id, "node_id": r.node_id,
             "payload": _slim(r.payload), "dedupe_key": r.dedupe_key, "message_id": r.message_id} for r in rows])
        await ctx.session.execute(delete(Outbox).where(Outbox.id.in_([r.id for r in rows])))
        moved += len(rows)
        if len(rows) < BATCH:
            break
    return moved


async def prune_marks(ctx: Ctx, kept: timedelta = MARKS_KEPT) -> int:
    """Delete the once-per-slot marks older than `kept` (ix_routine_mark_kind_at); how many."""
    cutoff = ctx.now() - kept
    pruned = 0
    for _ in range(MAX_BATCHES):
        ids = list((await ctx.session.execute(
            select(RoutineMark.id).where(RoutineMark.kind.in_(PRUNED_MARKS), RoutineMark.at < cutoff)
            .order_by(RoutineMark.id).limit(MARK_BATCH))).scalars())
        if not ids:
            break
        await ctx.session.execute(delete(RoutineMark).where(RoutineMark.id.in_(ids)))
        pruned += len(ids)
        if len(ids) < MARK_BATCH:
            break
    return pruned
