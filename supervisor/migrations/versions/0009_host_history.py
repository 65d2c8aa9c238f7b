"""a bounded history of each host's figures

Heartbeats keep only a host's latest load and memory in its row.  `host_sample` keeps one point
per host per coarse step (a minute by default) for the last hours (a day by default), written
in batches with the figures and pruned as it goes, so an admin can chart a host's day.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'host_sample',
        sa.Column('host_id', Id, nullable=False),
        sa.Column('t', sa.Float(), nullable=False),
        sa.Column('load', sa.Float(), nullable=False),
        sa.Column('memory_used_mb', sa.Integer(), nullable=False),
        sa.Column('running', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['host_id'], ['host.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('host_id', 't'),
    )
    op.create_index('ix_host_sample_t', 'host_sample', ['t'])


def downgrade() -> None:
    op.drop_index('ix_host_sample_t', table_name='host_sample')
    op.drop_table('host_sample')
