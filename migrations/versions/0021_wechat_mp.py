"""wechat_mp: reply windows (reply_window), sent parts of outbox rows (sent_part), account.unionid

Revision ID: 0021
Revises: 0025
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.models

revision = "0021"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('reply_window',
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('chat_id', sa.String(length=128), nullable=False),
    sa.Column('last_inbound_at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_since', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'chat_id')
    )
    op.create_table('sent_part',
    sa.Column('outbox_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('part', sa.String(length=32), nullable=False),
    sa.Column('at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('outbox_id', 'part')
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unionid', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_account_unionid'), ['unionid'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_unionid'))
        batch_op.drop_column('unionid')
    op.drop_table('sent_part')
    op.drop_table('reply_window')
