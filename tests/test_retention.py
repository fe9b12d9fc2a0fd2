"""Outbox retention: sent rows past the period move to the archive without their inline media;
recent, pending and failed rows stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from workflows.models import Outbox
from workflows.routines import retention
from workflows.routines.models import OutboxArchive
from workflows.routines.sweeps import run_sweep


def _row(clock, key: str, status: str, age_days: float, media: bool = False) -> Outbox:
    at = clock.now() - timedelta(days=age_days)
    payload = {"text": f"消息 {key}"}
    if media:
        payload["media"] = [{"kind": "photo", "data": "iVBORw0KGgo=" * 100, "mime": "image/png", "name": "stats.png"}]
    return Outbox(created_at=at, channel="test", chat_id="g:1", is_group=True, payload=payload, dedupe_key=key,
                  status=status, attempts=1, not_before=at, sent_at=at if status == "sent" else None,
                  message_id="7" if status == "sent" else None)


async def test_sent_rows_past_the_period_move_to_the_archive(sessionmaker, clock, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 2)  # several batches in one run
    async with sessionmaker() as s, s.begin():
        s.add_all([_row(clock, f"old-sent-{i}", "sent", 100 + i, media=True) for i in range(5)]
                  + [_row(clock, "new-sent", "sent", 10), _row(clock, "old-pending", "pending", 100),
                     _row(clock, "old-failed", "failed", 100)])
    result = await run_sweep(sessionmaker, "housekeeping", clock=clock)
    assert result.counts.get("outbox_archived") == 5
    async with sessionmaker() as s:
        left = set((await s.execute(select(Outbox.dedupe_key))).scalars())
        archived = list((await s.execute(select(OutboxArchive).order_by(OutboxArchive.id))).scalars())
    assert left == {"new-sent", "old-pending", "old-failed"}
    assert [a.dedupe_key for a in archived] == [f"old-sent-{i}" for i in range(5)]
    assert archived[0].payload["text"] == "消息 old-sent-0" and archived[0].message_id == "7"
    assert archived[0].payload["media"] == [{"kind": "photo", "mime": "image/png", "name": "stats.png"}]
    # nothing more to do the next hour
    assert "outbox_archived" not in (await run_sweep(sessionmaker, "housekeeping", clock=clock)).counts


async def test_routine_marks_of_long_past_slots_are_deleted_and_the_records_kept(sessionmaker, clock, monkeypatch):
    from workflows.routines.models import RoutineMark

    monkeypatch.setattr(retention, "MARK_BATCH", 2)  # several batches in one run

    def mark(kind: str, subject: int, age_days: float) -> RoutineMark:
        at = clock.now() - timedelta(days=age_days)
        return RoutineMark(kind=kind, subject_id=subject, slot=f"{at:%Y-%m-%d} 09:00", node_id=1, at=at)

    async with sessionmaker() as s, s.begin():
        s.add_all([mark("patrol_remind", i, 100 + i) for i in range(3)]
                  + [mark("weekly_report", 1, 200), mark("care_due", 9, 95),
                     mark("patrol_remind", 50, 10),  # recent: kept
                     mark("patrol_missed_60", 1, 300),  # the missed-patrol record: kept for good
                     mark("care_overdue_1", 7, 300)])  # still guards a visit that may be overdue
    result = await run_sweep(sessionmaker, "housekeeping", clock=clock)
    assert result.counts.get("marks_pruned") == 5
    async with sessionmaker() as s:
        left = sorted((m.kind, m.subject_id) for m in (await s.execute(select(RoutineMark))).scalars())
    assert left == [("care_overdue_1", 7), ("patrol_missed_60", 1), ("patrol_remind", 50)]
    assert "marks_pruned" not in (await run_sweep(sessionmaker, "housekeeping", clock=clock)).counts
