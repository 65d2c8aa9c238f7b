"""Usage accounting's tables: attempts ended and not yet counted, the per-day sums.

`supervisor.usage` decides what an attempt is worth; these functions read and write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, select, update

from cuefarm.states import AttemptState
from supervisor.store.billing_models import UsageDay, UsageSeen
from supervisor.store.models import Attempt, Host, Job, Project


def watermark(conn: Connection) -> float | None:
    """The newest stop time already counted."""
    return conn.execute(select(func.max(UsageSeen.stopped_at))).scalar()


def all_counted(conn: Connection, lo: float, hi: float) -> bool:
    """Whether every attempt that stopped in [lo, hi] was counted (two index range counts, no
    join): when so, nothing arrived late there."""
    ended = conn.execute(select(func.count()).select_from(Attempt).where(
        Attempt.stopped_at >= lo, Attempt.stopped_at <= hi)).scalar()
    counted = conn.execute(select(func.count()).select_from(UsageSeen).where(
        UsageSeen.stopped_at >= lo, UsageSeen.stopped_at <= hi)).scalar()
    return ended <= counted


def ended(conn: Connection, lo: float | None, limit: int) -> list[Any]:
    """Ended attempts not counted yet, stopped at `lo` or later, oldest first: their times,
    slots, host's slots, user and project."""
    seen = and_(UsageSeen.frame_id == Attempt.frame_id, UsageSeen.number == Attempt.number)
    q = (select(Attempt.frame_id, Attempt.number, Attempt.slots, Attempt.started_at,
                Attempt.stopped_at, Attempt.state, Host.slots_configured,
                Job.user, Project.name.label("project"))
         .outerjoin(UsageSeen, seen)
         .outerjoin(Job, Job.id == Attempt.job_id)
         .outerjoin(Project, Project.id == Job.project_id)
         .outerjoin(Host, Host.id == Attempt.host_id)
         .where(Attempt.stopped_at.is_not(None), Attempt.state != AttemptState.RUNNING.value,
                UsageSeen.frame_id.is_(None)))
    if lo is not None:
        q = q.where(Attempt.stopped_at >= lo)
    return conn.execute(q.order_by(Attempt.stopped_at).limit(limit)).all()


def mark_counted(conn: Connection, rows: list[Any]) -> None:
    """Note these attempts as counted.  A second supervisor counting the same attempts
    collides here (IntegrityError) and rolls back."""
    conn.execute(insert(UsageSeen), [{"frame_id": r.frame_id, "number": r.number,
                                      "stopped_at": r.stopped_at} for r in rows])


def forget_counted_before(conn: Connection, t: float) -> None:
    conn.execute(delete(UsageSeen).where(UsageSeen.stopped_at < t))


def add(conn: Connection, sums: dict[tuple[str, str, str], list[float]]) -> None:
    """Add per-(day, project, user) sums [slot seconds, worker seconds, succeeded, failed] to
    usage_day (rows created as needed)."""
    keys = list(sums)
    existing = set()
    for o in range(0, len(keys), 500):
        part = keys[o:o + 500]
        days = {k[0] for k in part}
        for r in conn.execute(select(UsageDay.day, UsageDay.project, UsageDay.user)
                              .where(UsageDay.day.in_(days)).with_for_update()):
            existing.add((r.day, r.project, r.user))
    new = [k for k in keys if k not in existing]
    if new:
        conn.execute(insert(UsageDay), [
            {"day": d, "project": p, "user": u, "slot_seconds": 0.0, "worker_seconds": 0.0,
             "succeeded": 0, "failed": 0} for d, p, u in new])
    conn.execute(update(UsageDay)
                 .where(UsageDay.day == bindparam("k_day"), UsageDay.project == bindparam("k_p"),
                        UsageDay.user == bindparam("k_u"))
                 .values(slot_seconds=UsageDay.slot_seconds + bindparam("v_slot"),
                         worker_seconds=UsageDay.worker_seconds + bindparam("v_worker"),
                         succeeded=UsageDay.succeeded + bindparam("v_ok"),
                         failed=UsageDay.failed + bindparam("v_bad"))
                 .execution_options(synchronize_session=False),
                 [{"k_day": d, "k_p": p, "k_u": u, "v_slot": v[0], "v_worker": v[1],
                   "v_ok": int(v[2]), "v_bad": int(v[3])} for (d, p, u), v in sums.items()])


def totals(conn: Connection, first_day: str, last_day: str, by: str):
    """(key, slot seconds, worker seconds, succeeded, failed) summed per `by` (project, user or
    day) over the days from `first_day` to `last_day` (ISO dates, inclusive)."""
    key = {"project": UsageDay.project, "user": UsageDay.user, "day": UsageDay.day}[by]
    return conn.execute(
        select(key.label("key"), func.sum(UsageDay.slot_seconds),
               func.sum(UsageDay.worker_seconds), func.sum(UsageDay.succeeded),
               func.sum(UsageDay.failed))
        .where(UsageDay.day >= first_day, UsageDay.day <= last_day)
        .group_by(key).order_by(key)).all()
