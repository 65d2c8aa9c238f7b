"""audit: who did what to which jobs and hosts, from where, when, and how it went

Revision ID: 0014
Revises: 0013
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('user', sa.String(length=128), nullable=False),
        sa.Column('address', sa.String(length=128), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('objects', sa.String(length=2000), nullable=False),
        sa.Column('detail', sa.JSON(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('message', sa.String(length=1000), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_audit_at', 'audit', ['at'])
    op.create_index('ix_audit_user_at', 'audit', ['user', 'at'])


def downgrade() -> None:
    op.drop_index('ix_audit_user_at', table_name='audit')
    op.drop_index('ix_audit_at', table_name='audit')
    op.drop_table('audit')
