"""how far a running frame is

rqd reads the progress lines a frame prints (Blender's `Fra:`/`Sample x/y`, `PROGRESS n%`) and
reports them with its heartbeats; each attempt keeps its latest percentage (100 once it
succeeded), which frame rows show for the frame's latest attempt.  Attempts made before have
none.

Revision ID: 0018
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempt') as batch:
        batch.add_column(sa.Column('progress', sa.SmallInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attempt') as batch:
        batch.drop_column('progress')
