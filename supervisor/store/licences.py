"""The licence terms row (one per farm) and the farm-wide count of workers holding a licence.

`supervisor.licensing` decides what the terms mean; these functions read and write them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from cuefarm.states import AttemptState
from supervisor.store.billing_models import LicenceTerms
from supervisor.store.models import Attempt

# Every column "as configured".
_BLANK = dict(id=1, installed_set=False, installed=None, metered=None, sink=None,
              rate_micros=None, revoked=False, revoked_at=None, revoked_reason="",
              metered_through=None)


def ensure_terms(conn: Connection, now: float) -> None:
    """Create the terms row if it is missing, so a dispatch pass always has a row to lock.
    Two supervisors starting at once both try; the second one's insert does nothing."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        LicenceTerms)
    conn.execute(ins.values(**_BLANK, updated_at=now).on_conflict_do_nothing())


def terms(conn: Connection) -> Any:
    """The terms row, or None before it was created."""
    return conn.execute(select(LicenceTerms).where(LicenceTerms.id == 1)).first()


def lock_terms(conn: Connection) -> bool:
    """Hold the terms row until the transaction ends (PostgreSQL; SQLite transactions are
    already serialized): supervisors sharing a database take licences in turn.  False when
    another transaction holds it now: a dispatch pass does not wait for it (it may hold
    layer rows that transaction waits for), it gives no new licence this time."""
    if conn.dialect.name != "postgresql":
        return True
    return conn.execute(select(LicenceTerms.id).where(LicenceTerms.id == 1)
                        .with_for_update(skip_locked=True)).first() is not None


def write_terms(conn: Connection, now: float, **values: Any) -> None:
    """Change the given columns of the terms row (created when missing).  It may wait for a
    dispatch pass holding the row; a pass never waits for it."""
    found = conn.execute(select(LicenceTerms.id).where(LicenceTerms.id == 1)
                         .with_for_update()).first()
    if found is None:
        conn.execute(insert(LicenceTerms).values(**{**_BLANK, **values, "updated_at": now}))
    else:
        conn.execute(update(LicenceTerms).where(LicenceTerms.id == 1)
                     .values(**values, updated_at=now))


def busy_since(conn: Connection) -> dict[int, float | None]:
    """Host id -> start of its earliest running attempt, for every host running a frame
    (farm-wide: every supervisor's hosts)."""
    return dict(conn.execute(select(Attempt.host_id, func.min(Attempt.started_at))
                             .where(Attempt.state == AttemptState.RUNNING.value,
                                    Attempt.host_id.is_not(None))
                             .group_by(Attempt.host_id)).all())
