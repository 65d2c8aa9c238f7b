"""running attempts indexed by layer, for limit counts

A dispatch pass counts the frames and hosts holding each limit from the running attempts of the
layers that need it.  Without an index that join read every attempt ever run (years of history
on a production farm); a partial index over the running ones keeps it to what runs now.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

RUNNING = sa.text("state = 'RUNNING'")


def upgrade() -> None:
    with op.batch_alter_table('attempt', schema=None) as batch_op:
        batch_op.create_index('ix_attempt_running_layer', ['layer_id', 'host_id'], unique=False,
                              postgresql_where=RUNNING, sqlite_where=RUNNING)


def downgrade() -> None:
    with op.batch_alter_table('attempt', schema=None) as batch_op:
        batch_op.drop_index('ix_attempt_running_layer', postgresql_where=RUNNING,
                            sqlite_where=RUNNING)
