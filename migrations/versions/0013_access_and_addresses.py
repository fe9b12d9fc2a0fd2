"""access and addresses: strangers told of in work groups (group_stranger); node.address_keywords; outbox index per chat

Revision ID: 0013
Revises: 0003 (the lead re-chains it at merge)
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import workflows.models

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table('group_stranger',
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('chat_id', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('told_at', workflows.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel', 'chat_id', 'user_id')
    )
    with op.batch_alter_table('node') as batch:
        batch.add_column(sa.Column('address_keywords', Json, nullable=True))
    op.create_index('ix_outbox_chat', 'outbox', ['channel', 'chat_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_outbox_chat', table_name='outbox')
    with op.batch_alter_table('node') as batch:
        batch.drop_column('address_keywords')
    op.drop_table('group_stranger')
