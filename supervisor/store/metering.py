"""Metered overage's tables: minutes over the licence count, the batch reports made of them.

`supervisor.metering` decides what a minute and a report are worth and delivers them; these
functions read and write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from supervisor.store.billing_models import LicenceTerms, OverageBatch, OverageMinute
from supervisor.store.models import Attempt


def add_minutes(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write overage minutes; a minute already written (by any supervisor) is kept as is."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        OverageMinute.__table__)
    conn.execute(ins.on_conflict_do_nothing(), rows)


def meter_watermark(conn: Connection) -> int | None:
    """The minute start up to which a running meter (of any supervisor) counted."""
    return conn.execute(select(LicenceTerms.metered_through)
                        .where(LicenceTerms.id == 1)).scalar()


def advance_watermark(conn: Connection, through: int) -> None:
    """The meter counted up to `through` (never moves back)."""
    conn.execute(update(LicenceTerms).where(LicenceTerms.id == 1, or_(
        LicenceTerms.metered_through.is_(None), LicenceTerms.metered_through < through))
        .values(metered_through=through))


def attempt_spans(conn: Connection, start: int, end: int):
    """(host id, started, stopped or None) of the attempts overlapping [start, end)."""
    return conn.execute(
        select(Attempt.host_id, Attempt.started_at, Attempt.stopped_at)
        .where(Attempt.host_id.is_not(None), Attempt.started_at < end,
               or_(Attempt.stopped_at.is_(None), Attempt.stopped_at > start))).all()


def unreported_minutes(conn: Connection, before: int) -> list[Any]:
    """Overage minutes before `before` in no report yet, oldest first, locked until the
    transaction ends."""
    return conn.execute(select(OverageMinute).where(OverageMinute.batch_id.is_(None),
                                                    OverageMinute.minute < before)
                        .order_by(OverageMinute.minute).with_for_update()).all()


def add_batch(conn: Connection, batch_id: str, now: float, period_start: int, period_end: int,
              worker_minutes: int, cost_micros: int, payload: Any,
              minutes: list[int]) -> None:
    """A new pending report, and its minutes marked as in it."""
    conn.execute(OverageBatch.__table__.insert().values(
        id=batch_id, created_at=now, period_start=period_start, period_end=period_end,
        worker_minutes=worker_minutes, cost_micros=cost_micros, payload=payload,
        state="pending", tries=0, last_error="", accepted_at=None))
    conn.execute(update(OverageMinute)
                 .where(OverageMinute.minute.in_(minutes), OverageMinute.batch_id.is_(None))
                 .values(batch_id=batch_id))


def pending_batches(conn: Connection, limit: int) -> list[tuple[str, Any]]:
    """(id, payload) of the reports still to deliver, oldest first."""
    return [(r.id, r.payload) for r in conn.execute(
        select(OverageBatch.id, OverageBatch.payload).where(OverageBatch.state == "pending")
        .order_by(OverageBatch.created_at, OverageBatch.period_start).limit(limit))]


def delivered(conn: Connection, batch_id: str, outcome: str, now: float, error: str) -> None:
    """One delivery try of a report: `outcome` "accepted", "refused" (parked until metering is
    re-authorized) or "" (failed, tried again later)."""
    values: dict[str, Any] = {"tries": OverageBatch.tries + 1, "last_error": error[:1000]}
    where = [OverageBatch.id == batch_id]
    if outcome:
        values["state"] = outcome
        where.append(OverageBatch.state == "pending")
        if outcome == "accepted":
            values["accepted_at"] = now
    conn.execute(update(OverageBatch).where(*where).values(**values))


def sums(conn: Connection, start: float, end: float) -> tuple[int, int]:
    """(overage worker-minutes, their workers × micro-dollars-per-hour summed) of the minutes
    in [start, end)."""
    minutes, micro = conn.execute(
        select(func.coalesce(func.sum(OverageMinute.workers), 0),
               func.coalesce(func.sum(OverageMinute.workers * OverageMinute.rate_micros), 0))
        .where(OverageMinute.minute >= int(start), OverageMinute.minute < int(end))).one()
    return int(minutes), int(micro)


def batches(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Reports, newest first (cost in micro-dollars)."""
    return [dict(r._mapping) for r in conn.execute(
        select(OverageBatch.id, OverageBatch.period_start, OverageBatch.period_end,
               OverageBatch.worker_minutes, OverageBatch.cost_micros, OverageBatch.state,
               OverageBatch.tries, OverageBatch.last_error, OverageBatch.created_at,
               OverageBatch.accepted_at)
        .order_by(OverageBatch.created_at.desc(), OverageBatch.period_start.desc())
        .limit(limit))]


def backlog(conn: Connection) -> tuple[int, int, int]:
    """(pending reports, refused reports, minutes not yet in a report)."""
    states = dict(conn.execute(select(OverageBatch.state, func.count())
                               .where(OverageBatch.state.in_(("pending", "refused")))
                               .group_by(OverageBatch.state)).all())
    unbatched = conn.execute(select(func.count()).select_from(OverageMinute)
                             .where(OverageMinute.batch_id.is_(None))).scalar() or 0
    return int(states.get("pending", 0)), int(states.get("refused", 0)), int(unbatched)


def resend_refused(conn: Connection) -> int:
    """Put the reports a sink refused back in line; returns how many."""
    return conn.execute(update(OverageBatch).where(OverageBatch.state == "refused")
                        .values(state="pending")).rowcount or 0
