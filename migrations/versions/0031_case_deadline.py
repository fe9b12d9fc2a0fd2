"""case_deadline: the deadline sweep's stage and next check move out of case_file

A burst of checkpoints (issue 15: 200,000 yellow cards at once) rewrote 200,000 wide case rows and
all their indexes; the sweep now rewrites narrow rows with one partial index.

Revision ID: 0031
Revises: 0030
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("case_deadline",
                    sa.Column("case_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                              sa.ForeignKey("case_file.id"), primary_key=True),
                    sa.Column("stage", sa.Integer(), nullable=False),
                    sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("INSERT INTO case_deadline (case_id, stage, next_check_at) "
               "SELECT id, deadline_stage, next_check_at FROM case_file "
               "WHERE deadline_at IS NOT NULL OR next_check_at IS NOT NULL OR deadline_stage > 0")
    op.create_index("ix_case_deadline_due", "case_deadline", ["next_check_at"],
                    postgresql_where=sa.text("next_check_at IS NOT NULL"),
                    sqlite_where=sa.text("next_check_at IS NOT NULL"))
    op.drop_index("ix_case_open_deadline", table_name="case_file")
    with op.batch_alter_table("case_file") as batch_op:
        batch_op.drop_column("next_check_at")
        batch_op.drop_column("deadline_stage")


def downgrade() -> None:
    with op.batch_alter_table("case_file") as batch_op:
        batch_op.add_column(sa.Column("deadline_stage", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE case_file SET deadline_stage = (SELECT stage FROM case_deadline d WHERE d.case_id = case_file.id), "
               "next_check_at = (SELECT next_check_at FROM case_deadline d WHERE d.case_id = case_file.id) "
               "WHERE id IN (SELECT case_id FROM case_deadline)")
    op.create_index("ix_case_open_deadline", "case_file", ["status", "next_check_at"])
    op.drop_index("ix_case_deadline_due", table_name="case_deadline")
    op.drop_table("case_deadline")
