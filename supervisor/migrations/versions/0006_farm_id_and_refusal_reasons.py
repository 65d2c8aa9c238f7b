"""the farm's identity, and why a host was kept off a job

A farm id is made once per database: attempt ids restart at 1.1 in every database, so workers
key their logs and kept state by the farm they serve, and two farms sharing a data directory
never mix.  `job_host.reason` keeps the latest reason a host failed or refused a job, so a
refusal every host gives for the same reason is told apart from bad hosts.

Revision ID: 0006
Revises: 0005
"""
import uuid

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

FARM_KEY = "farm_id"


def upgrade() -> None:
    with op.batch_alter_table('job_host', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=512), nullable=False,
                                      server_default=''))
    setting = sa.table('setting', sa.column('key', sa.String), sa.column('value', sa.JSON))
    op.bulk_insert(setting, [{"key": FARM_KEY, "value": uuid.uuid4().hex}])


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM setting WHERE key = 'farm_id'"))
    with op.batch_alter_table('job_host', schema=None) as batch_op:
        batch_op.drop_column('reason')
