"""host megabytes in 64 bits: memory, free memory, free disk and a history point's memory in
use, as workers report them

A worker whose logs are on a file system of petabytes reports more free megabytes than a 32-bit
integer holds: PostgreSQL refused the write of the figures of every host written with it.
SQLite's INTEGER is 64 bits already.

Revision ID: 0020
Revises: 0019
"""
from alembic import op
import sqlalchemy as sa


revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

COLUMNS = (('host', 'memory_mb'), ('host', 'memory_free_mb'), ('host', 'disk_free_mb'),
           ('host_sample', 'memory_used_mb'))


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
