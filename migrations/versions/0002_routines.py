"""routines: patrols, leave, diary, reminders (scheduler)

Tables: routine_mark (what sweeps did, unique per kind/subject/slot), sweep_run, patrol_checkin,
diary_entry, leave, screening_record, notice.

Revision ID: 0002
Revises: 0001
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table('routine_mark',
    sa.Column('id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('subject_id', BigId, nullable=False),
    sa.Column('slot', sa.String(length=40), nullable=False),
    sa.Column('node_id', BigId, nullable=True),
    sa.Column('person_id', BigId, nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'subject_id', 'slot', name='uq_routine_mark')
    )
    op.create_index('ix_routine_mark_node', 'routine_mark', ['node_id', 'kind', 'at'], unique=False)
    op.create_table('sweep_run',
    sa.Column('id', BigId, nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('host', sa.String(length=100), nullable=True),
    sa.Column('acted', sa.Integer(), nullable=False),
    sa.Column('result', Json, nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_sweep_run_name', 'sweep_run', ['name', 'started_at'], unique=False)
    op.create_table('diary_entry',
    sa.Column('id', BigId, nullable=False),
    sa.Column('person_id', BigId, nullable=False),
    sa.Column('node_id', BigId, nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_diary_person_at', 'diary_entry', ['person_id', 'at'], unique=False)
    op.create_table('leave',
    sa.Column('id', BigId, nullable=False),
    sa.Column('person_id', BigId, nullable=False),
    sa.Column('cover_id', BigId, nullable=True),
    sa.Column('node_id', BigId, nullable=True),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', BigId, nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['cover_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['decided_by_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_leave_dates', 'leave', ['status', 'start_date', 'end_date'], unique=False)
    op.create_index('ix_leave_person', 'leave', ['person_id', 'status'], unique=False)
    op.create_table('notice',
    sa.Column('id', BigId, nullable=False),
    sa.Column('node_id', BigId, nullable=False),
    sa.Column('author_id', BigId, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('delivered', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('missing', Json, nullable=False),
    sa.ForeignKeyConstraint(['author_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('patrol_checkin',
    sa.Column('id', BigId, nullable=False),
    sa.Column('person_id', BigId, nullable=False),
    sa.Column('for_person_id', BigId, nullable=False),
    sa.Column('node_id', BigId, nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('slot', sa.String(length=5), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('latitude', sa.Float(), nullable=True),
    sa.Column('longitude', sa.Float(), nullable=True),
    sa.Column('distance_m', sa.Float(), nullable=True),
    sa.Column('warning', sa.Text(), nullable=True),
    sa.Column('answers', Json, nullable=False),
    sa.Column('photos', Json, nullable=False),
    sa.Column('case_ids', Json, nullable=False),
    sa.ForeignKeyConstraint(['for_person_id'], ['person.id'], ),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_patrol_checkin_duty', 'patrol_checkin', ['for_person_id', 'node_id', 'day', 'slot'], unique=False)
    op.create_index('ix_patrol_checkin_node_at', 'patrol_checkin', ['node_id', 'at'], unique=False)
    op.create_table('screening_record',
    sa.Column('id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('node_id', BigId, nullable=False),
    sa.Column('period', sa.String(length=20), nullable=False),
    sa.Column('person_id', BigId, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answers', Json, nullable=False),
    sa.Column('issues', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'node_id', 'period', name='uq_screening_period')
    )


def downgrade() -> None:
    op.drop_table('screening_record')
    op.drop_index('ix_patrol_checkin_node_at', table_name='patrol_checkin')
    op.drop_index('ix_patrol_checkin_duty', table_name='patrol_checkin')
    op.drop_table('patrol_checkin')
    op.drop_table('notice')
    op.drop_index('ix_leave_person', table_name='leave')
    op.drop_index('ix_leave_dates', table_name='leave')
    op.drop_table('leave')
    op.drop_index('ix_diary_person_at', table_name='diary_entry')
    op.drop_table('diary_entry')
    op.drop_index('ix_sweep_run_name', table_name='sweep_run')
    op.drop_table('sweep_run')
    op.drop_index('ix_routine_mark_node', table_name='routine_mark')
    op.drop_table('routine_mark')
