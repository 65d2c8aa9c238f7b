"""The audit trail: every action asked of the supervisor, stored in batches."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, insert, select

from supervisor.store.models import AuditEntry

MAX_ROWS = 10_000       # per query


def record(conn: Connection, entries: list[dict[str, Any]]) -> None:
    if entries:
        conn.execute(insert(AuditEntry), entries)


def query(conn: Connection, user: str | None = None, since: float | None = None,
          until: float | None = None, action: str | None = None, job_id: int | None = None,
          host: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    """Entries, newest first, that match every filter given."""
    q = select(AuditEntry.id, AuditEntry.at, AuditEntry.user, AuditEntry.address,
               AuditEntry.action, AuditEntry.objects, AuditEntry.detail, AuditEntry.outcome,
               AuditEntry.message)
    if user:
        q = q.where(AuditEntry.user == user)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if until is not None:
        q = q.where(AuditEntry.at < until)
    if action:
        q = q.where(AuditEntry.action == action)
    # Objects are stored as "job 12, host w1": a word match on the summary.
    if job_id is not None:
        q = q.where((AuditEntry.objects == f"job {job_id}")
                    | AuditEntry.objects.like(f"job {job_id}, %")
                    | AuditEntry.objects.like(f"%, job {job_id}")
                    | AuditEntry.objects.like(f"%, job {job_id}, %"))
    if host:
        q = q.where((AuditEntry.objects == f"host {host}")
                    | AuditEntry.objects.like(f"host {host}, %")
                    | AuditEntry.objects.like(f"%, host {host}")
                    | AuditEntry.objects.like(f"%, host {host}, %"))
    q = q.order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(min(limit, MAX_ROWS))
    return [dict(r._mapping) for r in conn.execute(q)]


def forget(conn: Connection, before: float) -> int:
    """Drop entries older than `before` (retention)."""
    return conn.execute(delete(AuditEntry).where(AuditEntry.at < before)).rowcount
