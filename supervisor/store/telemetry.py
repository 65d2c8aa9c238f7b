"""Heartbeat figures on PostgreSQL: written often, in bulk, from a helper thread of the loop.

Two things keep such writes from delaying the dispatch pass.  They commit without waiting for
their WAL to reach the disk: a crash loses at most the last fraction of a second of figures
(load, free memory, live RSS, all sent again within seconds), never a state change, and the
pass's own commits do not queue behind their flushes.  And their arrays go to the driver as
ready-made array literals: psycopg2 adapts a Python list element by element in one C call that
holds the GIL throughout (about 1 ms for 160 hosts' figures), and the loop waits for all of it.
"""

from __future__ import annotations

from sqlalchemy import Connection


def relaxed_commit(conn: Connection) -> None:
    """This transaction's commit does not wait for the disk (figures only; see above)."""
    conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def array_literal(values: list) -> str:
    """A PostgreSQL array literal of numbers or booleans (None is NULL), to CAST on the server
    (`CAST(:x AS float8[])`).  Python's repr of each is what PostgreSQL reads back: digits,
    True/False, nan and inf."""
    if None in values:
        return "{" + ",".join("NULL" if v is None else repr(v) for v in values) + "}"
    return "{" + ",".join(map(repr, values)) + "}"
