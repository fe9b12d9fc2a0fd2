"""Storage models: the grid tree, people, cases and their audit trail, the outbox.

Times are stored in UTC. Everything here is platform neutral: a chat account is just
(channel, external id), a group binding is (node, channel, chat id).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.orm.attributes import set_committed_value

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit ids.
BigId = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class Level(enum.StrEnum):
    city = "city"
    district = "district"
    street = "street"
    community = "community"
    grid = "grid"
    micro_grid = "micro_grid"
    special_grid = "special_grid"


class Role(enum.StrEnum):
    worker = "worker"
    leader = "leader"
    standin = "standin"  # named by the leader to press the leader's buttons
    team_member = "team_member"
    centre_staff = "centre_staff"
    helper = "helper"
    admin = "admin"


class Split(enum.StrEnum):
    public = "public"  # 公家事
    shared = "shared"  # 大家事
    private = "private"  # 自家事


class Urgency(enum.StrEnum):
    normal = "normal"
    urgent = "urgent"
    major = "major"


class CaseStatus(enum.StrEnum):
    reported = "reported"  # 待立案
    needs_info = "needs_info"  # 待补充
    registered = "registered"  # 已立案, waiting for dispatch at its current level
    dispatched = "dispatched"  # 已派遣, waiting for the assignee to accept
    in_progress = "in_progress"  # 处置中
    resolved = "resolved"  # 待核查
    closed = "closed"  # 已结案
    declined = "declined"  # 不予立案
    cancelled = "cancelled"  # 已撤销
    merged = "merged"  # 已合并


OPEN_STATUSES = (
    CaseStatus.reported,
    CaseStatus.needs_info,
    CaseStatus.registered,
    CaseStatus.dispatched,
    CaseStatus.in_progress,
    CaseStatus.resolved,
)


class Node(Base):
    __tablename__ = "node"
    __table_args__ = (Index("ix_node_path", "path", postgresql_ops={"path": "varchar_pattern_ops"}),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    level: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"), index=True)
    # materialized path "/<root id>/…/<own id>/", kept by workflows.tree on insert and re-parenting;
    # a subtree is `path LIKE '<node path>%'` (ix_node_path, varchar_pattern_ops on PostgreSQL)
    path: Mapped[str | None] = mapped_column(String(255))
    case_prefix: Mapped[str | None] = mapped_column(String(16))
    boundary: Mapped[dict | None] = mapped_column(Json)  # GeoJSON geometry
    notice: Mapped[str | None] = mapped_column(Text)  # 网格公示牌
    timezone: Mapped[str | None] = mapped_column(String(64))
    patrol_times: Mapped[list | None] = mapped_column(Json)  # ["09:00", "15:00"]
    checklist: Mapped[list | None] = mapped_column(Json)
    # 小区、楼栋、路名 a typed address may name: a report's address picks the grid by them
    address_keywords: Mapped[list | None] = mapped_column(Json)
    parent: Mapped[Node | None] = relationship(remote_side=[id], lazy="raise")


def _parent_path(conn: Any, parent_id: int | None) -> str:
    if parent_id is None:
        return "/"
    path = conn.execute(sa.select(Node.path).where(Node.id == parent_id)).scalar()
    return path or "/"


@sa.event.listens_for(Node, "after_insert")
def _path_on_insert(_mapper: Any, conn: Any, node: Node) -> None:
    path = f"{_parent_path(conn, node.parent_id)}{node.id}/"
    conn.execute(sa.update(Node).where(Node.id == node.id).values(path=path))
    set_committed_value(node, "path", path)


@sa.event.listens_for(Node, "after_update")
def _path_on_move(_mapper: Any, conn: Any, node: Node) -> None:
    """A node moved under another parent: its path and every path below it get the new prefix."""
    if not sa.inspect(node).attrs.parent_id.history.has_changes():
        return
    old = conn.execute(sa.select(Node.path).where(Node.id == node.id)).scalar()
    new = f"{_parent_path(conn, node.parent_id)}{node.id}/"
    if old and old != new:
        conn.execute(sa.update(Node).where(Node.path.like(old + "%"))
                     .values(path=sa.literal(new) + sa.func.substr(Node.path, len(old) + 1)))
    elif not old:
        conn.execute(sa.update(Node).where(Node.id == node.id).values(path=new))
    set_committed_value(node, "path", new)


class Person(Base):
    __tablename__ = "person"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str | None] = mapped_column(String(64), unique=True)  # staff have codes; residents don't
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(10))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))  # A/B post
    preferred_channel: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Account(Base):
    """A chat identity: who (channel, external user id) is."""

    __tablename__ = "account"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    external_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str | None] = mapped_column(String(128))  # private chat to write to
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    undeliverable: Mapped[str | None] = mapped_column(String(200))  # last permanent failure
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # WeChat's id of the person across an office's 公众号 and 微信客服 (one Open Platform account):
    # a new door with a known unionid joins the person who already has it (workflows/wechat_people.py)
    unionid: Mapped[str | None] = mapped_column(String(64), index=True)


class Team(Base):
    """A handler team (业务团队); one team may serve many grids."""

    __tablename__ = "team"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("department.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))


class Department(Base):
    __tablename__ = "department"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))


class TeamMember(Base):
    __tablename__ = "team_member"
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), primary_key=True)


class TeamGrid(Base):
    __tablename__ = "team_grid"
    team_id: Mapped[int] = mapped_column(ForeignKey("team.id"), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"), primary_key=True)


class Assignment(Base):
    """A person's role on a node."""

    __tablename__ = "assignment"
    __table_args__ = (UniqueConstraint("person_id", "node_id", "role"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"), index=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"), index=True)
    role: Mapped[str] = mapped_column(String(20))


class Category(Base):
    __tablename__ = "category"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    name_en: Mapped[str | None] = mapped_column(String(100))
    time_limit_hours: Mapped[int] = mapped_column(Integer, default=72)
    default_team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"))
    split: Mapped[str] = mapped_column(String(20), default=Split.public)
    urgency: Mapped[str] = mapped_column(String(20), default=Urgency.normal)
    sort: Mapped[int] = mapped_column(Integer, default=0)
    # where a declined reporter can turn instead: the department or hotline, or for 自家事 the guidance
    referral: Mapped[str | None] = mapped_column(String(300))
    referral_en: Mapped[str | None] = mapped_column(String(300))


class Case(Base):
    __tablename__ = "case_file"
    __table_args__ = (
        Index("ix_case_reporter", "reporter_id"),
        # windows by time (the raw statistics, partial days of the rollup)
        Index("ix_case_created_at", "created_at"),
        Index("ix_case_registered_at", "registered_at"),
        Index("ix_case_closed_at", "closed_at"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("node.id"), index=True)  # where it happened
    level_node_id: Mapped[int] = mapped_column(ForeignKey("node.id"), index=True)  # who holds it now
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"))
    description: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), index=True)
    urgency: Mapped[str] = mapped_column(String(20), default=Urgency.normal)
    source: Mapped[str] = mapped_column(String(20), default="resident")
    reporter_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    address: Mapped[str | None] = mapped_column(String(300))
    attachments: Mapped[list] = mapped_column(Json, default=list)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"), index=True)
    team_id: Mapped[int | None] = mapped_column(ForeignKey("team.id"), index=True)  # a team's open tasks
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    rework_count: Mapped[int] = mapped_column(Integer, default=0)
    reopen_count: Mapped[int] = mapped_column(Integer, default=0)
    rating: Mapped[str | None] = mapped_column(String(20))
    rating_comment: Mapped[str | None] = mapped_column(Text)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("case_file.id"))
    card_nodes: Mapped[list] = mapped_column(Json, default=list)  # nodes whose group shows its card
    version: Mapped[int] = mapped_column(Integer, default=1)


class CaseDeadline(Base):
    """The deadline sweep's bookkeeping for a registered case: the stage reached (0 none, 1 = 50 %,
    2 = 80 %, 3 yellow card, 4 red card) and when it next falls due. Kept apart from case_file so
    that a burst of checkpoints rewrites narrow rows with one index, not wide case rows with all of
    theirs (a case row carries a dozen indexes; issue 15's burst spent most of its database time there)."""

    __tablename__ = "case_deadline"
    __table_args__ = (Index("ix_case_deadline_due", "next_check_at", postgresql_where=text("next_check_at IS NOT NULL"),
                            sqlite_where=text("next_check_at IS NOT NULL")),)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), primary_key=True)
    stage: Mapped[int] = mapped_column(Integer, default=0)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CaseEvent(Base):
    """The append-only audit trail of a case."""

    __tablename__ = "case_event"
    __table_args__ = (Index("ix_case_event_action_at", "action", "at"),)  # card counts by time
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_file.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))  # None: the system
    action: Mapped[str] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    attachments: Mapped[list] = mapped_column(Json, default=list)
    channel: Mapped[str | None] = mapped_column(String(20))
    chat_id: Mapped[str | None] = mapped_column(String(128))
    data: Mapped[dict] = mapped_column(Json, default=dict)


class CaseCounter(Base):
    __tablename__ = "case_counter"
    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class GroupBinding(Base):
    """One work group per node (一个网格一个群)."""

    __tablename__ = "group_binding"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("node.id"), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(128))
    title: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | broken
    bound_at: Mapped[datetime] = mapped_column(UTCDateTime())
    bound_by_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))


class OneTimeToken(Base):
    """Single-use codes: group binding (/bind), account linking."""

    __tablename__ = "one_time_token"
    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ButtonRef(Base):
    """What a button means lives here; the chat only carries the opaque token."""

    __tablename__ = "button_ref"
    token: Mapped[str] = mapped_column(String(32), primary_key=True)
    action: Mapped[str] = mapped_column(String(40))
    args: Mapped[dict] = mapped_column(Json, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Conversation(Base):
    """Dialogue state, keyed by channel, chat and user: survives a restart."""

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "chat_id", "user_id"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    flow: Mapped[str] = mapped_column(String(40))
    step: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(Json, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboundSeen(Base):
    """Platform event ids already handled: a repeat has no effect."""

    __tablename__ = "inbound_seen"
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Outbox(Base):
    """Every message to send, written in the same transaction as the change that causes it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "status", "channel", "not_before"),
                      # a chat's newest messages: a button label typed as text (handlers.router)
                      Index("ix_outbox_chat", "channel", "chat_id", "id"),
                      Index("ix_outbox_chat_queue", "channel", "chat_id", "status"),
                      Index("ix_outbox_claim", "channel", "status", "priority", "id"))
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(20))
    chat_id: Mapped[str] = mapped_column(String(128))
    is_group: Mapped[bool] = mapped_column(Boolean, default=False)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("person.id"))
    node_id: Mapped[int | None] = mapped_column(ForeignKey("node.id"))
    payload: Mapped[dict] = mapped_column(Json)  # text, buttons, media, update_text
    card_key: Mapped[str | None] = mapped_column(String(80))
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    # 0 a reply to a person, 1 a case card or notification, 2 bulk (reminders, reports): see outbox.py
    priority: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")


class DeliverySender(Base):
    """A running delivery worker: the platform's limits are per bot, so the live senders split the
    chats and the overall window between them (bot/senders.py)."""

    __tablename__ = "delivery_sender"
    sender_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Lease(Base):
    """A job only one process of a bot may do at a time (polling Telegram and handling its inbox),
    held by one process until `until` and renewed by it (bot/lease.py)."""

    __tablename__ = "lease"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    host: Mapped[str] = mapped_column(String(200))
    until: Mapped[datetime] = mapped_column(UTCDateTime())


class CardMessage(Base):
    """Where a card was posted, so later versions edit it in place."""

    __tablename__ = "card_message"
    card_key: Mapped[str] = mapped_column(String(80), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64))
