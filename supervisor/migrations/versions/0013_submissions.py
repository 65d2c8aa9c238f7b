"""submissions: a retried submit returns the jobs of the first

A client names each submit with an id of its own and sends it again, unchanged, when no reply
came (the supervisor died, the network broke).  The supervisor keeps which jobs each id
created, so the retry is answered with those jobs instead of creating them twice.

Revision ID: 0013
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'submission',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('user', sa.String(length=128), nullable=False),
        sa.Column('job_ids', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_submission_created_at', 'submission', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_submission_created_at', table_name='submission')
    op.drop_table('submission')
