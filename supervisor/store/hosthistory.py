"""Each host's bounded history: one point per host per coarse step, written in batches with
the heartbeat figures and pruned as it goes (thousands of hosts, a day of minutes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, select, text
from sqlalchemy.dialects import sqlite

from supervisor.store.models import HostSample
from supervisor.store.telemetry import array_literal


def write_samples(conn: Connection, samples: list[dict[str, Any]]) -> None:
    """Store points: dicts with hid, t, load, mem, running.  A point a host already has for
    that step is left as it is (another supervisor, or a retried write, got there first).
    PostgreSQL gets one statement over unnested arrays."""
    if not samples:
        return
    if conn.dialect.name == "postgresql":
        cols = {k: array_literal([s[k] for s in samples]) for k in samples[0]}
        conn.execute(text(
            "INSERT INTO host_sample (host_id, t, load, memory_used_mb, running)"
            " SELECT * FROM unnest(CAST(:hid AS bigint[]), CAST(:t AS float8[]),"
            " CAST(:load AS float8[]), CAST(:mem AS bigint[]), CAST(:running AS integer[]))"
            " ON CONFLICT DO NOTHING"), cols)
        return
    conn.execute(sqlite.insert(HostSample).on_conflict_do_nothing(), [
        {"host_id": s["hid"], "t": s["t"], "load": s["load"], "memory_used_mb": s["mem"],
         "running": s["running"]} for s in samples])


def prune(conn: Connection, before: float) -> int:
    """Delete the points older than `before` (epoch); return how many."""
    return conn.execute(delete(HostSample).where(HostSample.t < before)).rowcount or 0


def history(conn: Connection, host_id: int, since: float) -> list[dict[str, Any]]:
    """A host's points from `since` on, oldest first: t, load, memory_used_mb, running."""
    q = (select(HostSample.t, HostSample.load, HostSample.memory_used_mb, HostSample.running)
         .where(HostSample.host_id == host_id, HostSample.t >= since).order_by(HostSample.t))
    return [dict(r._mapping) for r in conn.execute(q)]
