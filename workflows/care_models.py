"""Tables of the care register (结对关爱、定期走访) and of points (积分).

The register is the most sensitive data in the system: care_person holds names and conditions;
every read of it by a person is a care_access row. Points are a ledger (point_entry): a balance
is always a sum, never a stored number.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .models import Base, BigId, Json, UTCDateTime


class CareHousehold(Base):
    """A household on a grid (楼栋/门牌); groups only ever see its short code."""

    __tablename__ = "care_household"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # e.g. CY01-H01, shown in groups
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"), index=True)
    building: Mapped[str | None] = mapped_column(String(100))  # 楼栋
    door: Mapped[str | None] = mapped_column(String(100))  # 门牌
    latitude: Mapped[float | None] = mapped_column()
    longitude: Mapped[float | None] = mapped_column()
    notes: Mapped[str | None] = mapped_column(Text)


class CarePerson(Base):
    """Someone who needs care: type, visit frequency, the responsible worker, a relative to call."""

    __tablename__ = "care_person"
    __table_args__ = (Index("ix_care_person_worker_due", "worker_id", "next_due"),
                      Index("ix_care_person_due", "next_due"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("care_household.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    care_type: Mapped[str] = mapped_column(String(40))  # 独居老人, 空巢老人, 重度残疾, 低保, 困难家庭, 留守儿童 …
    frequency_days: Mapped[int] = mapped_column(Integer)
    worker_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    contact_name: Mapped[str | None] = mapped_column(String(100))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    next_due: Mapped[date] = mapped_column(Date)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CareVisit(Base):
    """One visit (走访): who went, for whose list, what they found, where they were."""

    __tablename__ = "care_visit"
    __table_args__ = (Index("ix_care_visit_person_at", "care_person_id", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    care_person_id: Mapped[int] = mapped_column(ForeignKey("care_person.id"))
    household_id: Mapped[int] = mapped_column(ForeignKey("care_household.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))  # who visited
    for_person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))  # whose list (differs when covering)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)  # local date
    due: Mapped[date] = mapped_column(Date)  # the due date it answered
    situation: Mapped[str] = mapped_column(String(20))  # fine | help | absent
    notes: Mapped[str | None] = mapped_column(Text)
    photos: Mapped[list] = mapped_column(Json, default=list)
    latitude: Mapped[float | None] = mapped_column()
    longitude: Mapped[float | None] = mapped_column()
    distance_m: Mapped[float | None] = mapped_column()
    warning: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"))


class CareAccess(Base):
    """Every look at the register by a person: who, when, what (the audit trail)."""

    __tablename__ = "care_access"
    __table_args__ = (Index("ix_care_access_person", "care_person_id", "at"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    viewer_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))  # None: an operator at the console
    care_person_id: Mapped[int | None] = mapped_column(ForeignKey("care_person.id"))
    what: Mapped[str] = mapped_column(String(40))  # list, detail, visit, reminder, import, export
    channel: Mapped[str | None] = mapped_column(String(20))


class PointRule(Base):
    """A way to earn (or lose) points, with caps so points cannot be farmed; imported as data."""

    __tablename__ = "point_rule"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)  # report_registered, case_rated, award …
    name: Mapped[str] = mapped_column(String(100))
    points: Mapped[int] = mapped_column(Integer)  # per event; for awards the largest single award
    daily_cap: Mapped[int | None] = mapped_column(Integer)  # per person and local day
    monthly_cap: Mapped[int | None] = mapped_column(Integer)  # per person and month
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class PointEntry(Base):
    """One change of a person's points: who, why, which case. Never updated; the balance is a sum."""

    __tablename__ = "point_entry"
    __table_args__ = (UniqueConstraint("rule_code", "source_key", name="uq_point_entry_source"),
                      Index("ix_point_entry_person", "person_id", "day"),
                      Index("ix_point_entry_month", "month", "person_id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    day: Mapped[date] = mapped_column(Date)  # local date, for the daily cap
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM, for the monthly cap and ranking
    points: Mapped[int] = mapped_column(Integer)
    rule_code: Mapped[str] = mapped_column(String(40))
    reason: Mapped[str | None] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))  # the grid it was earned in (ranking)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))  # None: the system
    source_key: Mapped[str | None] = mapped_column(String(80))  # e.g. case event id: the same event pays once


class PointProfile(Base):
    """A person's choice to appear by name in the public ranking (masked otherwise)."""

    __tablename__ = "point_profile"
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)
    show_name: Mapped[bool] = mapped_column(Boolean, default=False)
