"""media store: media_file (by sha256), media_item (each attachment), media_ref (platform ids)

Revision ID: 0018
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.models

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = workflows.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table("media_file",
                    sa.Column("sha256", sa.String(64), nullable=False),
                    sa.Column("size", sa.Integer(), nullable=False),
                    sa.Column("mime", sa.String(100), nullable=True),
                    sa.Column("stored_at", When, nullable=False),
                    sa.PrimaryKeyConstraint("sha256"))
    op.create_table("media_item",
                    sa.Column("id", BigId, autoincrement=True, nullable=False),
                    sa.Column("kind", sa.String(20), nullable=False),
                    sa.Column("sha256", sa.String(64), sa.ForeignKey("media_file.sha256"), nullable=True),
                    sa.Column("size", sa.Integer(), nullable=True),
                    sa.Column("mime", sa.String(100), nullable=True),
                    sa.Column("name", sa.String(255), nullable=True),
                    sa.Column("channel", sa.String(20), nullable=True),
                    sa.Column("ref", sa.String(512), nullable=True),
                    sa.Column("chat_id", sa.String(128), nullable=True),
                    sa.Column("sender_id", BigId, sa.ForeignKey("person.id"), nullable=True),
                    sa.Column("case_id", BigId, sa.ForeignKey("case_file.id"), nullable=True),
                    sa.Column("received_at", When, nullable=False),
                    sa.Column("status", sa.String(20), nullable=False),
                    sa.Column("attempts", sa.Integer(), nullable=False),
                    sa.Column("next_try_at", When, nullable=True),
                    sa.Column("error", sa.Text(), nullable=True),
                    sa.PrimaryKeyConstraint("id"))
    op.create_index("ix_media_item_due", "media_item", ["status", "next_try_at"])
    op.create_index("ix_media_item_sha256", "media_item", ["sha256"])
    op.create_index("ix_media_item_case_id", "media_item", ["case_id"])
    op.create_table("media_ref",
                    sa.Column("sha256", sa.String(64), sa.ForeignKey("media_file.sha256"), nullable=False),
                    sa.Column("channel", sa.String(20), nullable=False),
                    sa.Column("scope", sa.String(64), nullable=False),
                    sa.Column("ref", sa.String(512), nullable=False),
                    sa.Column("expires_at", When, nullable=True),
                    sa.PrimaryKeyConstraint("sha256", "channel", "scope"))


def downgrade() -> None:
    op.drop_table("media_ref")
    op.drop_index("ix_media_item_case_id", "media_item")
    op.drop_index("ix_media_item_sha256", "media_item")
    op.drop_index("ix_media_item_due", "media_item")
    op.drop_table("media_item")
    op.drop_table("media_file")
