"""worker licences, metered overage, usage accounting, supervisor metrics

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('licence_terms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('installed_set', sa.Boolean(), nullable=False),
    sa.Column('installed', sa.Integer(), nullable=True),
    sa.Column('metered', sa.Boolean(), nullable=True),
    sa.Column('sink', sa.String(length=2048), nullable=True),
    sa.Column('rate', sa.Float(), nullable=True),
    sa.Column('revoked', sa.Boolean(), nullable=False),
    sa.Column('revoked_at', sa.Float(), nullable=True),
    sa.Column('revoked_reason', sa.String(length=512), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('metric_layout',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('names', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('metric_sample',
    sa.Column('res', sa.Integer(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('layout', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('res', 'at')
    )
    op.create_table('overage_batch',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('period_start', sa.BigInteger(), nullable=False),
    sa.Column('period_end', sa.BigInteger(), nullable=False),
    sa.Column('worker_minutes', sa.Integer(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=1024), nullable=False),
    sa.Column('accepted_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_overage_batch_state', 'overage_batch', ['state', 'created_at'], unique=False)
    op.create_table('overage_minute',
    sa.Column('minute', sa.BigInteger(), nullable=False),
    sa.Column('workers', sa.Integer(), nullable=False),
    sa.Column('busy', sa.Integer(), nullable=False),
    sa.Column('installed', sa.Integer(), nullable=False),
    sa.Column('rate', sa.Float(), nullable=False),
    sa.Column('batch_id', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('minute')
    )
    op.create_index('ix_overage_minute_unbatched', 'overage_minute', ['minute'], unique=False, postgresql_where=sa.text('batch_id IS NULL'), sqlite_where=sa.text('batch_id IS NULL'))
    op.create_table('usage_day',
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('project', sa.String(length=128), nullable=False),
    sa.Column('user', sa.String(length=128), nullable=False),
    sa.Column('slot_seconds', sa.Float(), nullable=False),
    sa.Column('worker_seconds', sa.Float(), nullable=False),
    sa.Column('succeeded', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'project', 'user')
    )
    op.create_table('usage_seen',
    sa.Column('frame_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('stopped_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('frame_id', 'number')
    )
    op.create_index(op.f('ix_usage_seen_stopped_at'), 'usage_seen', ['stopped_at'], unique=False)
    # Usage accounting reads ended attempts past a watermark on their stop time.
    op.create_index('ix_attempt_stopped_at', 'attempt', ['stopped_at'], unique=False, postgresql_where=sa.text('stopped_at IS NOT NULL'), sqlite_where=sa.text('stopped_at IS NOT NULL'))


def downgrade() -> None:
    op.drop_index('ix_attempt_stopped_at', table_name='attempt', postgresql_where=sa.text('stopped_at IS NOT NULL'), sqlite_where=sa.text('stopped_at IS NOT NULL'))
    op.drop_index(op.f('ix_usage_seen_stopped_at'), table_name='usage_seen')
    op.drop_table('usage_seen')
    op.drop_table('usage_day')
    op.drop_index('ix_overage_minute_unbatched', table_name='overage_minute', postgresql_where=sa.text('batch_id IS NULL'), sqlite_where=sa.text('batch_id IS NULL'))
    op.drop_table('overage_minute')
    op.drop_index('ix_overage_batch_state', table_name='overage_batch')
    op.drop_table('overage_batch')
    op.drop_table('metric_sample')
    op.drop_table('metric_layout')
    op.drop_table('licence_terms')
