"""layers with running frames indexed, for slot and limit counts

Each dispatch pass sums the slots running per job and project, and the frames holding each
limit, from the per-layer counters of the layers that have frames running.  Without an index
that read every layer ever submitted (years of history on a production farm); a partial index
over the busy ones keeps it to what runs now.

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

BUSY = sa.text("running > 0")


def upgrade() -> None:
    with op.batch_alter_table('layer', schema=None) as batch_op:
        batch_op.create_index('ix_layer_busy', ['job_id'], unique=False,
                              postgresql_where=BUSY, sqlite_where=BUSY)


def downgrade() -> None:
    with op.batch_alter_table('layer', schema=None) as batch_op:
        batch_op.drop_index('ix_layer_busy', postgresql_where=BUSY, sqlite_where=BUSY)
