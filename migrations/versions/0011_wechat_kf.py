"""wechat: 微信客服 sync cursor (kf_cursor) and reply windows (kf_window)

Revision ID: 0011
Revises: 0019
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.models

revision = "0011"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kf_cursor',
    sa.Column('open_kfid', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.String(length=128), nullable=False),
    sa.Column('updated_at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('open_kfid')
    )
    op.create_table('kf_window',
    sa.Column('chat_id', sa.String(length=128), nullable=False),
    sa.Column('last_inbound_at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_since', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('chat_id')
    )


def downgrade() -> None:
    op.drop_table('kf_window')
    op.drop_table('kf_cursor')
