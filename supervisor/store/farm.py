"""The farm's identity: made once per database (by migration 0006), never reused."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, insert, select

from supervisor.store.models import Setting

FARM_KEY = "farm_id"


def farm_id(conn: Connection) -> str:
    """This database's farm id; made now should the row be missing (a database restored
    without it), inside the caller's transaction."""
    value = conn.execute(select(Setting.value).where(Setting.key == FARM_KEY)).scalar()
    if isinstance(value, str) and value:
        return value
    value = uuid.uuid4().hex
    conn.execute(insert(Setting).values(key=FARM_KEY, value=value))
    return value
