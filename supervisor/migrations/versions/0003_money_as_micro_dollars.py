"""money as whole micro-dollars instead of floats; the meter's watermark

licence_terms.rate, overage_minute.rate (dollars per worker-hour) and overage_batch.cost
(dollars) were Float columns: sums drifted (600 minutes at $0.10/h came to 1.0000000000000095).
They become BigInteger columns of micro-dollars (rate_micros, cost_micros), filled from the old
values rounded to the micro-dollar, which every stored value was meant to be (rates were given
to at most six places, costs rounded to six).  Batch payloads already sent keep their content:
a retry must send exactly what the sink may already hold.

licence_terms.metered_through records how far a running meter counted overage minutes, so a
restarted supervisor rebuilds the minutes it missed.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

# (table, old float column, new micro-dollar column, nullable)
COLUMNS = (("licence_terms", "rate", "rate_micros", True),
           ("overage_minute", "rate", "rate_micros", False),
           ("overage_batch", "cost", "cost_micros", False))


def _convert(old: str, new: str, to_micros: bool, nullable: bool, table: str) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite and not nullable:
        # SQLite adds a NOT NULL column only with a default; every row is filled just below.
        op.add_column(table, sa.Column(new, sa.BigInteger() if to_micros else sa.Float(),
                                       nullable=False, server_default="0"))
    else:
        op.add_column(table, sa.Column(new, sa.BigInteger() if to_micros else sa.Float(),
                                       nullable=True))
    if to_micros:
        # ROUND(x * 10^6) is exact for every value stored to six places; CAST keeps it whole.
        op.execute(f"UPDATE {table} SET {new} = CAST(ROUND({old} * 1000000) AS BIGINT) "
                   f"WHERE {old} IS NOT NULL")
    else:
        op.execute(f"UPDATE {table} SET {new} = CAST({old} AS FLOAT) / 1000000 "
                   f"WHERE {old} IS NOT NULL")
    if not sqlite and not nullable:
        op.alter_column(table, new, nullable=False)
    # SQLite (3.35 and later) drops a column that no index or constraint uses in place.
    op.execute(f"ALTER TABLE {table} DROP COLUMN {old}")


def upgrade() -> None:
    for table, old, new, nullable in COLUMNS:
        _convert(old, new, True, nullable, table)
    op.add_column("licence_terms", sa.Column("metered_through", sa.BigInteger(),
                                             nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE licence_terms DROP COLUMN metered_through")
    for table, old, new, nullable in COLUMNS:
        _convert(new, old, False, nullable, table)
