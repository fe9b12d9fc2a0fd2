"""open311: api_key (hashed keys of calling systems), api_request (which case each request became)

Revision ID: 0017
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.models

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = workflows.models.UTCDateTime


def upgrade() -> None:
    op.create_table("api_key",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("name", sa.String(100), nullable=False, unique=True),
                    sa.Column("source", sa.String(20), nullable=False),
                    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
                    sa.Column("key_prefix", sa.String(12), nullable=False),
                    sa.Column("read_all", sa.Boolean(), nullable=False),
                    sa.Column("rate_per_minute", sa.Integer(), nullable=False),
                    sa.Column("webhook_url", sa.String(500)),
                    sa.Column("webhook_secret", sa.String(100)),
                    sa.Column("created_at", UTC(timezone=True), nullable=False),
                    sa.Column("revoked_at", UTC(timezone=True)))
    op.create_table("api_request",
                    sa.Column("id", BigId, primary_key=True),
                    sa.Column("key_id", BigId, sa.ForeignKey("api_key.id"), nullable=False),
                    sa.Column("case_id", BigId, sa.ForeignKey("case_file.id"), nullable=False, unique=True),
                    sa.Column("token", sa.String(40), nullable=False, unique=True),
                    sa.Column("external_id", sa.String(100)),
                    sa.Column("media_url", sa.Text()),
                    sa.Column("created_at", UTC(timezone=True), nullable=False),
                    sa.UniqueConstraint("key_id", "external_id"))
    op.create_index("ix_api_request_key_id", "api_request", ["key_id"])


def downgrade() -> None:
    op.drop_table("api_request")
    op.drop_table("api_key")
