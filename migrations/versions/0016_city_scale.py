"""city scale: node.path (materialized path), patrol figures in stats_day, indexes for windows by time

Revision ID: 0016
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0013"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
INDEXES = [  # (name, table, columns): the raw reference and the sweeps read these by time
    ("ix_case_created_at", "case_file", ["created_at"]),
    ("ix_case_registered_at", "case_file", ["registered_at"]),
    ("ix_case_closed_at", "case_file", ["closed_at"]),
    ("ix_case_event_action_at", "case_event", ["action", "at"]),
    ("ix_patrol_checkin_day", "patrol_checkin", ["day", "node_id"]),
    ("ix_routine_mark_kind_at", "routine_mark", ["kind", "at"]),
    ("ix_stats_day_day", "stats_day", ["day", "grid_id"]),
]


def upgrade() -> None:
    op.add_column("node", sa.Column("path", sa.String(255), nullable=True))
    op.execute("""
        WITH RECURSIVE t(id, path) AS (
            SELECT id, '/' || CAST(id AS VARCHAR(20)) || '/' FROM node WHERE parent_id IS NULL
            UNION ALL
            SELECT n.id, t.path || CAST(n.id AS VARCHAR(20)) || '/' FROM node n JOIN t ON n.parent_id = t.id)
        UPDATE node SET path = (SELECT t.path FROM t WHERE t.id = node.id)""")
    op.create_index("ix_node_path", "node", ["path"], postgresql_ops={"path": "varchar_pattern_ops"})
    for col in ("patrols_done", "patrols_missed"):
        op.add_column("stats_day", sa.Column(col, sa.Integer(), nullable=False, server_default="0"))
    for name, table, cols in INDEXES:
        op.create_index(name, table, cols)
    # patrol figures of existing days: run `gridbot stats rebuild` once after upgrading
    op.create_table("outbox_archive",
                    sa.Column("id", BigId, nullable=False),
                    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
                    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
                    sa.Column("channel", sa.String(20), nullable=False),
                    sa.Column("chat_id", sa.String(128), nullable=False),
                    sa.Column("is_group", sa.Boolean(), nullable=False),
                    sa.Column("person_id", BigId, nullable=True),
                    sa.Column("node_id", BigId, nullable=True),
                    sa.Column("payload", Json, nullable=False),
                    sa.Column("dedupe_key", sa.String(160), nullable=True),
                    sa.Column("message_id", sa.String(64), nullable=True),
                    sa.PrimaryKeyConstraint("id"), sa.UniqueConstraint("dedupe_key"))
    op.create_index("ix_outbox_archive_sent", "outbox_archive", ["sent_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_archive_sent", table_name="outbox_archive")
    op.drop_table("outbox_archive")
    for name, table, _cols in reversed(INDEXES):
        op.drop_index(name, table_name=table)
    for col in ("patrols_missed", "patrols_done"):
        op.drop_column("stats_day", col)
    op.drop_index("ix_node_path", table_name="node")
    op.drop_column("node", "path")
