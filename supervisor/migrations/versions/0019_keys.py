"""keys: the CURVE public keys of users and workers, and the key a pending worker showed

Each user key names a user (with the role it was issued with), each worker key a host name: a
host name is bound to its key, so another key cannot take it over.  A worker refused
admission is listed as pending with the key it connected with, so an admin admits that key.

Revision ID: 0019
Revises: 0018
"""
from alembic import op
import sqlalchemy as sa


revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'farm_key',
        sa.Column('public', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('name', sa.String(length=256), nullable=False),
        sa.Column('role', sa.String(length=16), nullable=False, server_default=''),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('created_by', sa.String(length=256), nullable=False, server_default=''),
        sa.Column('revoked_at', sa.Float(), nullable=True),
        sa.Column('revoked_by', sa.String(length=256), nullable=True),
        sa.PrimaryKeyConstraint('public'),
    )
    op.create_index('ix_farm_key_name', 'farm_key', ['kind', 'name'])
    with op.batch_alter_table('admission') as batch:
        batch.add_column(sa.Column('key', sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('admission') as batch:
        batch.drop_column('key')
    op.drop_index('ix_farm_key_name', table_name='farm_key')
    op.drop_table('farm_key')
