"""categories: referral_en, the English of where a declined resident should go instead

Revision ID: 0026
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.add_column(sa.Column("referral_en", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.drop_column("referral_en")
