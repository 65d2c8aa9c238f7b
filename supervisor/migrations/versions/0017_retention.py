"""retention: finished jobs found by age; jobs restored from archives

Finished jobs older than the retention age are written to archive files and deleted; an index
on their finish time finds them.  A job brought back from an archive is noted (read-only).

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_job_finished', 'job', ['finished_at'],
                    postgresql_where=sa.text("state = 'FINISHED'"),
                    sqlite_where=sa.text("state = 'FINISHED'"))
    op.create_table(
        'restored_job',
        sa.Column('job_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  nullable=False),
        sa.Column('file', sa.String(length=512), nullable=False),
        sa.Column('restored_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['job.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id'),
    )


def downgrade() -> None:
    op.drop_table('restored_job')
    op.drop_index('ix_job_finished', table_name='job')
