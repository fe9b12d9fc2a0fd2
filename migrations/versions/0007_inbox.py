"""inbox: raw Telegram updates stored before they are confirmed (inbox_update)

Revision ID: 0007
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import workflows.models

revision = "0007"
down_revision = "0018"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table('inbox_update',
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('update_id', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('payload', Json, nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('received_at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'update_id')
    )


def downgrade() -> None:
    op.drop_table('inbox_update')
