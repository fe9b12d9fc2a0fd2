"""cases: where a declined reporter can turn instead (category.referral); an index for team tasks

Revision ID: 0012
Revises: 0003 (the lead re-chains it at merge)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("category") as batch:
        batch.add_column(sa.Column("referral", sa.String(length=300), nullable=True))
    op.create_index("ix_case_file_team_id", "case_file", ["team_id"])


def downgrade() -> None:
    op.drop_index("ix_case_file_team_id", table_name="case_file")
    with op.batch_alter_table("category") as batch:
        batch.drop_column("referral")
