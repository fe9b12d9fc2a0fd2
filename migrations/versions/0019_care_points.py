"""care register, visits, access log; point rules and the point ledger

Revision ID: 0019
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0014"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table("care_household",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("code", sa.String(64), nullable=False, unique=True),
                    sa.Column("node_id", BigId, sa.ForeignKey("node.id"), nullable=False, index=True),
                    sa.Column("building", sa.String(100)),
                    sa.Column("door", sa.String(100)),
                    sa.Column("latitude", sa.Float()),
                    sa.Column("longitude", sa.Float()),
                    sa.Column("notes", sa.Text()))
    op.create_table("care_person",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("code", sa.String(64), nullable=False, unique=True),
                    sa.Column("household_id", BigId, sa.ForeignKey("care_household.id"), nullable=False, index=True),
                    sa.Column("name", sa.String(100), nullable=False),
                    sa.Column("care_type", sa.String(40), nullable=False),
                    sa.Column("frequency_days", sa.Integer(), nullable=False),
                    sa.Column("worker_id", BigId, sa.ForeignKey("person.id"), nullable=False),
                    sa.Column("contact_name", sa.String(100)),
                    sa.Column("contact_phone", sa.String(32)),
                    sa.Column("notes", sa.Text()),
                    sa.Column("next_due", sa.Date(), nullable=False),
                    sa.Column("active", sa.Boolean(), nullable=False))
    op.create_index("ix_care_person_worker_due", "care_person", ["worker_id", "next_due"])
    op.create_index("ix_care_person_due", "care_person", ["next_due"])
    op.create_table("care_visit",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("care_person_id", BigId, sa.ForeignKey("care_person.id"), nullable=False),
                    sa.Column("household_id", BigId, sa.ForeignKey("care_household.id"), nullable=False),
                    sa.Column("person_id", BigId, sa.ForeignKey("person.id"), nullable=False),
                    sa.Column("for_person_id", BigId, sa.ForeignKey("person.id"), nullable=False),
                    sa.Column("at", TS, nullable=False),
                    sa.Column("day", sa.Date(), nullable=False),
                    sa.Column("due", sa.Date(), nullable=False),
                    sa.Column("situation", sa.String(20), nullable=False),
                    sa.Column("notes", sa.Text()),
                    sa.Column("photos", Json, nullable=False),
                    sa.Column("latitude", sa.Float()),
                    sa.Column("longitude", sa.Float()),
                    sa.Column("distance_m", sa.Float()),
                    sa.Column("warning", sa.Text()),
                    sa.Column("case_id", BigId, sa.ForeignKey("case_file.id")))
    op.create_index("ix_care_visit_person_at", "care_visit", ["care_person_id", "at"])
    op.create_table("care_access",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("at", TS, nullable=False),
                    sa.Column("viewer_id", BigId, sa.ForeignKey("person.id")),
                    sa.Column("care_person_id", BigId, sa.ForeignKey("care_person.id")),
                    sa.Column("what", sa.String(40), nullable=False),
                    sa.Column("channel", sa.String(20)))
    op.create_index("ix_care_access_person", "care_access", ["care_person_id", "at"])
    op.create_table("point_rule",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("code", sa.String(40), nullable=False, unique=True),
                    sa.Column("name", sa.String(100), nullable=False),
                    sa.Column("points", sa.Integer(), nullable=False),
                    sa.Column("daily_cap", sa.Integer()),
                    sa.Column("monthly_cap", sa.Integer()),
                    sa.Column("active", sa.Boolean(), nullable=False))
    op.create_table("point_entry",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("person_id", BigId, sa.ForeignKey("person.id"), nullable=False),
                    sa.Column("at", TS, nullable=False),
                    sa.Column("day", sa.Date(), nullable=False),
                    sa.Column("month", sa.String(7), nullable=False),
                    sa.Column("points", sa.Integer(), nullable=False),
                    sa.Column("rule_code", sa.String(40), nullable=False),
                    sa.Column("reason", sa.Text()),
                    sa.Column("case_id", BigId, sa.ForeignKey("case_file.id")),
                    sa.Column("node_id", BigId, sa.ForeignKey("node.id")),
                    sa.Column("actor_id", BigId, sa.ForeignKey("person.id")),
                    sa.Column("source_key", sa.String(80)),
                    sa.UniqueConstraint("rule_code", "source_key", name="uq_point_entry_source"))
    op.create_index("ix_point_entry_person", "point_entry", ["person_id", "day"])
    op.create_index("ix_point_entry_month", "point_entry", ["month", "person_id"])
    op.create_table("point_profile",
                    sa.Column("person_id", BigId, sa.ForeignKey("person.id"), primary_key=True),
                    sa.Column("show_name", sa.Boolean(), nullable=False))


def downgrade() -> None:
    for table in ("point_profile", "point_entry", "point_rule", "care_access", "care_visit", "care_person",
                  "care_household"):
        op.drop_table(table)
