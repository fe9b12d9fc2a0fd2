"""delivery_sender: the live delivery workers of a bot, which split its chats and overall window

Revision ID: 0029
Revises: 0020
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0029"
down_revision = "0020"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("delivery_sender",
                    sa.Column("sender_id", sa.String(length=64), primary_key=True),
                    sa.Column("host", sa.String(length=200), nullable=False),
                    sa.Column("started_at", TS, nullable=False),
                    sa.Column("seen_at", TS, nullable=False))


def downgrade() -> None:
    op.drop_table("delivery_sender")
