"""the images a layer's frames write

A layer may name the files each frame writes (`outputs`, path patterns), so the desktop
client can preview a frame's image.  Layers submitted before have none.

Revision ID: 0015
Revises: 0014
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('layer') as batch:
        batch.add_column(sa.Column('outputs', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('layer') as batch:
        batch.drop_column('outputs')
