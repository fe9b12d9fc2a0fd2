"""Tables of the routines: what the sweeps did, patrols, diaries, leave, screening, notices."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..models import Base, BigId, Json, UTCDateTime


class RoutineMark(Base):
    """One thing a sweep did, claimed by a unique (kind, subject, slot): the second claim fails.

    kind: patrol_remind, patrol_missed_30, patrol_missed_60, weekly_report, monthly_ranking,
    screening_remind, warn_no_workers …; subject: an assignment, node or person id; slot: the
    local day/time or period it is for ("2026-11-23 09:00", "2026-W48", "2026-11").
    """

    __tablename__ = "routine_mark"
    __table_args__ = (UniqueConstraint("kind", "subject_id", "slot", name="uq_routine_mark"),
                      Index("ix_routine_mark_node", "node_id", "kind", "at"),
                      Index("ix_routine_mark_kind_at", "kind", "at"))  # missed patrols by time
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[int] = mapped_column(BigId)
    slot: Mapped[str] = mapped_column(String(40))
    node_id: Mapped[int | None] = mapped_column(BigId)
    person_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    note: Mapped[str | None] = mapped_column(Text)


class SweepRun(Base):
    """Each run of a sweep: when it ran, for which time, what it did."""

    __tablename__ = "sweep_run"
    __table_args__ = (Index("ix_sweep_run_name", "name", "started_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())  # the clock's "now" the sweep saw
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    host: Mapped[str | None] = mapped_column(String(100))
    acted: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict] = mapped_column(Json, default=dict)  # counts and warnings
    error: Mapped[str | None] = mapped_column(Text)


class PatrolCheckin(Base):
    """A patrol done (巡查打卡): where, what the checklist found, which cases it raised."""

    __tablename__ = "patrol_checkin"
    __table_args__ = (Index("ix_patrol_checkin_duty", "for_person_id", "node_id", "day", "slot"),
                      Index("ix_patrol_checkin_node_at", "node_id", "at"),
                      Index("ix_patrol_checkin_day", "day", "node_id"))  # the missed-patrol sweep
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))  # who walked it
    for_person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))  # whose duty (differs when covering)
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"))
    day: Mapped[str] = mapped_column(String(10))  # local date YYYY-MM-DD
    slot: Mapped[str] = mapped_column(String(5))  # "09:00"
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    latitude: Mapped[float | None] = mapped_column()
    longitude: Mapped[float | None] = mapped_column()
    distance_m: Mapped[float | None] = mapped_column()  # 0 inside the boundary
    warning: Mapped[str | None] = mapped_column(Text)  # e.g. far from the grid, no location
    answers: Mapped[list] = mapped_column(Json, default=list)  # [{"item","ok","note"}]
    photos: Mapped[list] = mapped_column(Json, default=list)
    case_ids: Mapped[list] = mapped_column(Json, default=list)


class DiaryEntry(Base):
    """民情日记: a worker's daily log."""

    __tablename__ = "diary_entry"
    __table_args__ = (Index("ix_diary_person_at", "person_id", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)


class Leave(Base):
    """请销假: a worker's leave; while approved, the A/B partner covers."""

    __tablename__ = "leave"
    __table_args__ = (Index("ix_leave_person", "person_id", "status"),
                      Index("ix_leave_dates", "status", "start_date", "end_date"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    cover_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))  # the grid that approves
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)  # inclusive
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # pending | approved | refused | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_note: Mapped[str | None] = mapped_column(Text)


class ScreeningRecord(Base):
    """A screening report (矛盾纠纷/安全隐患排查, 消防安全检查) for one node and period."""

    __tablename__ = "screening_record"
    __table_args__ = (UniqueConstraint("kind", "node_id", "period", name="uq_screening_period"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"))
    period: Mapped[str] = mapped_column(String(20))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    answers: Mapped[list] = mapped_column(Json, default=list)
    issues: Mapped[int] = mapped_column(Integer, default=0)


class Notice(Base):
    """通知公告: an upper level's notice to every group below it."""

    __tablename__ = "notice"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)
    delivered: Mapped[int] = mapped_column(Integer, default=0)  # groups written to
    failed: Mapped[int] = mapped_column(Integer, default=0)  # nodes below with no bound group
    missing: Mapped[list] = mapped_column(Json, default=list)  # their codes


class OutboxArchive(Base):
    """Sent outbox rows past the retention period (routines.retention): who got what and when, the
    text and buttons kept, inline media dropped (a chart is ~2–18 KiB of base64 per row)."""

    __tablename__ = "outbox_archive"
    __table_args__ = (Index("ix_outbox_archive_sent", "sent_at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)  # the outbox row's id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(128))
    is_group: Mapped[bool] = mapped_column(default=False)
    person_id: Mapped[int | None] = mapped_column(BigId)
    node_id: Mapped[int | None] = mapped_column(BigId)
    payload: Mapped[dict] = mapped_column(Json)
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(64))
