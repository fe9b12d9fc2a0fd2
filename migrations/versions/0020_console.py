"""web console: sessions; an index for the case list sorted by deadline

Revision ID: 0020
Revises: 0011
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0011"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("console_session",
                    sa.Column("id_hash", sa.String(64), primary_key=True),
                    sa.Column("person_id", BigId, sa.ForeignKey("person.id"), nullable=False),
                    sa.Column("csrf", sa.String(64), nullable=False),
                    sa.Column("language", sa.String(10)),
                    sa.Column("address", sa.String(64)),
                    sa.Column("created_at", TS, nullable=False),
                    sa.Column("expires_at", TS, nullable=False),
                    sa.Column("ended_at", TS))
    op.create_index("ix_console_session_person", "console_session", ["person_id"])
    op.create_index("ix_case_deadline_at", "case_file", ["deadline_at"])


def downgrade() -> None:
    op.drop_index("ix_case_deadline_at", table_name="case_file")
    op.drop_index("ix_console_session_person", table_name="console_session")
    op.drop_table("console_session")
