"""The supervisors serving the farm: a row each, written by itself every few seconds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from supervisor.store.models import SupervisorRow


def beat(conn: Connection, row: dict[str, Any]) -> None:
    """Write this supervisor's row (created on its first beat)."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        SupervisorRow)
    conn.execute(ins.values(**row).on_conflict_do_update(
        index_elements=[SupervisorRow.owner],
        set_={k: v for k, v in row.items() if k != "owner"}))


def gone(conn: Connection, owner: str) -> None:
    """This supervisor stops: it is no longer listed as alive."""
    conn.execute(update(SupervisorRow).where(SupervisorRow.owner == owner)
                 .values(last_seen=0.0, hosts=0, slots_used=0, slots_total=0))


def alive(conn: Connection, since: float) -> list[dict[str, Any]]:
    """The supervisors that wrote their row at `since` or later, by address."""
    return [dict(r._mapping) for r in conn.execute(
        select(*SupervisorRow.__table__.c).where(SupervisorRow.last_seen >= since)
        .order_by(SupervisorRow.address))]
