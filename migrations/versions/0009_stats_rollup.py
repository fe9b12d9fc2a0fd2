"""stats rollup: stats_day per grid and day, case_contribution per case

Revision ID: 0009
Revises: 0003
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COUNTS = ("reported", "registered", "registered_closed", "closed", "closed_on_time", "reworked", "rated",
          "satisfied", "yellow", "red")


def upgrade() -> None:
    op.create_table("stats_day",
                    sa.Column("grid_id", BigId, sa.ForeignKey("node.id"), nullable=False),
                    sa.Column("day", sa.Date(), nullable=False),
                    *[sa.Column(c, sa.Integer(), nullable=False) for c in COUNTS],
                    sa.PrimaryKeyConstraint("grid_id", "day"))
    op.create_table("case_contribution",
                    sa.Column("case_id", BigId, sa.ForeignKey("case_file.id"), nullable=False),
                    sa.Column("contrib", sa.JSON(), nullable=False),
                    sa.PrimaryKeyConstraint("case_id"))


def downgrade() -> None:
    op.drop_table("case_contribution")
    op.drop_table("stats_day")
