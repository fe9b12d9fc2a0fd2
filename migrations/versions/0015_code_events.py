"""code events: the audit trail and wrong-try counter of one-time codes (code_event)

Revision ID: 0015
Revises: 0007
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import workflows.models

revision = "0015"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('code_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('purpose', sa.String(length=20), nullable=False),
    sa.Column('event', sa.String(length=12), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=True),
    sa.Column('user_id', sa.String(length=128), nullable=True),
    sa.Column('chat_id', sa.String(length=128), nullable=True),
    sa.Column('person_id', sa.BigInteger(), nullable=True),
    sa.Column('node_id', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_code_event_user', 'code_event', ['channel', 'user_id', 'at'], unique=False)
    op.create_index('ix_code_event_chat', 'code_event', ['channel', 'chat_id', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_code_event_chat', table_name='code_event')
    op.drop_index('ix_code_event_user', table_name='code_event')
    op.drop_table('code_event')
