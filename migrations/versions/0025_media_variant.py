"""media_variant: a stored voice converted for the other platform (AMR ↔ OGG/Opus), linked to its original

Revision ID: 0025
Revises: 0026
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.models

revision = "0025"
down_revision = "0026"
branch_labels = None
depends_on = None

When = workflows.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table("media_variant",
                    sa.Column("source_sha256", sa.String(64), sa.ForeignKey("media_file.sha256"), nullable=False),
                    sa.Column("format", sa.String(20), nullable=False),
                    sa.Column("sha256", sa.String(64), sa.ForeignKey("media_file.sha256"), nullable=False),
                    sa.Column("made_at", When, nullable=False),
                    sa.PrimaryKeyConstraint("source_sha256", "format"))


def downgrade() -> None:
    op.drop_table("media_variant")
