"""comments on jobs and hosts

People leave notes on a job ("waiting on new textures, do not retry") or a host ("fan noisy,
keep it locked"): who wrote what and when.  A comment belongs to one job or one host and goes
with it when it is deleted.

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'comment',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('job_id', Id, nullable=True),
        sa.Column('host_id', Id, nullable=True),
        sa.Column('author', sa.String(length=128), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['host_id'], ['host.id'], ondelete='CASCADE'),
        sa.CheckConstraint('(job_id IS NULL) <> (host_id IS NULL)', name='ck_comment_subject'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_comment_job', 'comment', ['job_id'])
    op.create_index('ix_comment_host', 'comment', ['host_id'])


def downgrade() -> None:
    op.drop_index('ix_comment_host', table_name='comment')
    op.drop_index('ix_comment_job', table_name='comment')
    op.drop_table('comment')
