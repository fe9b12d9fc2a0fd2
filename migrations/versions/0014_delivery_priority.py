"""delivery: a priority per outbox row (reply, card, bulk) and indexes for per-chat claiming

Revision ID: 0014
Revises: 0009
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="0"))
        batch_op.create_index("ix_outbox_chat_queue", ["channel", "chat_id", "status"], unique=False)
        batch_op.create_index("ix_outbox_claim", ["channel", "status", "priority", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_claim")
        batch_op.drop_index("ix_outbox_chat_queue")
        batch_op.drop_column("priority")
