"""lease: a job one process of a bot does at a time (polling Telegram and handling its inbox)

Revision ID: 0030
Revises: 0029
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("lease",
                    sa.Column("name", sa.String(length=60), primary_key=True),
                    sa.Column("holder", sa.String(length=64), nullable=False),
                    sa.Column("host", sa.String(length=200), nullable=False),
                    sa.Column("until", sa.DateTime(timezone=True), nullable=False))


def downgrade() -> None:
    op.drop_table("lease")
