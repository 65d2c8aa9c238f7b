"""the supervisors serving the farm

Several supervisors may share one PostgreSQL database.  Each writes a row of its own every few
seconds (what it serves, how busy it is), so any of them can list the live ones.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'supervisor',
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('run_id', sa.String(length=16), nullable=False),
        sa.Column('address', sa.String(length=128), nullable=False),
        sa.Column('version', sa.String(length=32), nullable=False),
        sa.Column('started_at', sa.Float(), nullable=False),
        sa.Column('last_seen', sa.Float(), nullable=False),
        sa.Column('hosts', sa.Integer(), nullable=False),
        sa.Column('slots_used', sa.Integer(), nullable=False),
        sa.Column('slots_total', sa.Integer(), nullable=False),
        sa.Column('dispatched', sa.BigInteger(), nullable=False),
        sa.Column('cpu_percent', sa.Float(), nullable=False),
        sa.Column('rss_mb', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('owner'),
    )


def downgrade() -> None:
    op.drop_table('supervisor')
