"""The notification outbox in the database: rules stored with jobs, messages recorded with the
state changes that cause them, claimed by one sender at a time, marked sent or failed.

Delivery is at least once: a sender claims due rows for a lease (`claimed_until`) in a
committed transaction, sends, then marks each.  A sender that dies between sending and marking
leaves the row claimed until the lease ends, when any sender (this one restarted, or another
supervisor's) takes it again.  On PostgreSQL the claim skips rows another sender has locked,
so supervisors sharing the database never claim the same row at once.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, update

from supervisor.store.models import Frame, Job, Layer, Project
from supervisor.store.pipeline_models import JobNotify, Notification, ProjectNotify
from supervisor.store.submit import ensure_project

PENDING, SENT, FAILED = "pending", "sent", "failed"
MAX_FRAMES_LISTED = 100      # a frame_dead message names at most this many frames
MAX_ERROR = 2000


def set_rules(conn: Connection, job_rules: Iterable[tuple[int, list[dict[str, Any]] | None]]
              ) -> None:
    """Store each job's rules (none: nothing stored)."""
    rows = [{"job_id": j, "rules": r} for j, r in job_rules if r]
    if rows:
        conn.execute(insert(JobNotify), rows)


def has_job(conn: Connection, job_id: int) -> bool:
    return conn.execute(select(Job.id).where(Job.id == job_id)).first() is not None


def replace_rules(conn: Connection, job_id: int, rules: list[dict[str, Any]]) -> None:
    """A job's own rules from now on ([]: none of its own)."""
    conn.execute(delete(JobNotify).where(JobNotify.job_id == job_id))
    if rules:
        conn.execute(insert(JobNotify).values(job_id=job_id, rules=rules))


def set_project_rules(conn: Connection, project: str, rules: list[dict[str, Any]]) -> None:
    """A project's rules for jobs without their own (none: the supervisor's defaults)."""
    project_id = ensure_project(conn, project)
    conn.execute(delete(ProjectNotify).where(ProjectNotify.project_id == project_id))
    if rules:
        conn.execute(insert(ProjectNotify), [{"project_id": project_id, "rules": rules}])


def project_rules(conn: Connection, projects: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    names = list(set(projects))
    if not names:
        return {}
    return dict(conn.execute(select(Project.name, ProjectNotify.rules)
                             .join(ProjectNotify, ProjectNotify.project_id == Project.id)
                             .where(Project.name.in_(names))).all())


def rules_of(conn: Connection, job_ids: Iterable[int]) -> dict[int, list[dict[str, Any]]]:
    ids = list(job_ids)
    if not ids:
        return {}
    return dict(conn.execute(select(JobNotify.job_id, JobNotify.rules)
                             .where(JobNotify.job_id.in_(ids))).all())


def record(conn: Connection, died: list[tuple[int, int, int]], finished: list[int],
           now: float) -> int:
    """In the transaction that made frames DEAD (`died`: frame, layer, job) and jobs
    FINISHED: write the notifications their jobs asked for.  Returns how many."""
    if not died and not finished:
        return 0
    dead_jobs = {j for _, _, j in died}
    rules = rules_of(conn, dead_jobs | set(finished))
    if not rules:
        return 0
    events: list[tuple[int, str, list[dict[str, Any]]]] = []
    for job_id in finished:
        if job_id in rules:
            events.append((job_id, "finished", []))
    asked = {j for j in dead_jobs if j in rules}
    if asked:
        frames: dict[int, list[dict[str, Any]]] = defaultdict(list)
        ids = [f for f, _, j in died if j in asked]
        for o in range(0, len(ids), 5000):
            for r in conn.execute(select(Frame.job_id, Layer.name, Frame.label)
                                  .join(Layer, Layer.id == Frame.layer_id)
                                  .where(Frame.id.in_(ids[o:o + 5000]))
                                  .order_by(Frame.layer_id, Frame.idx)):
                if len(frames[r.job_id]) < MAX_FRAMES_LISTED:
                    frames[r.job_id].append({"layer": r.name, "frames": r.label})
        idle = set(conn.execute(
            select(Layer.job_id).where(Layer.job_id.in_(asked)).group_by(Layer.job_id)
            .having(func.sum(Layer.waiting + Layer.running + Layer.depend) == 0)).scalars())
        for job_id in sorted(asked):
            events.append((job_id, "frame_dead", frames[job_id]))
            if job_id in idle:
                events.append((job_id, "job_dead", frames[job_id]))
    jobs = {r.id: r for r in conn.execute(
        select(Job.id, Job.name, Job.user, Project.name.label("project"), Job.state,
               func.sum(Layer.succeeded).label("succeeded"), func.sum(Layer.dead).label("dead"),
               func.sum(Layer.eaten).label("eaten"),
               func.sum(Layer.frames_total).label("frames_total"))
        .join(Project, Project.id == Job.project_id).join(Layer, Layer.job_id == Job.id)
        .where(Job.id.in_([e[0] for e in events])).group_by(Job.id, Project.name))}
    rows = []
    for job_id, event, frames in events:
        j = jobs[job_id]
        body = {"event": event, "at": now, "frames": frames,
                "job": {"id": job_id, "name": j.name, "user": j.user, "project": j.project,
                        "state": j.state, "frames_total": int(j.frames_total or 0),
                        "succeeded": int(j.succeeded or 0), "dead": int(j.dead or 0),
                        "eaten": int(j.eaten or 0)}}
        for rule in rules[job_id]:
            if event not in rule["when"]:
                continue
            channel = "email" if "email" in rule else "webhook"
            rows.append({"job_id": job_id, "event": event, "channel": channel,
                         "target": rule[channel], "body": body, "state": PENDING, "tries": 0,
                         "next_at": now, "last_error": "", "created_at": now})
    if rows:
        conn.execute(insert(Notification), rows)
    return len(rows)


def claim(conn: Connection, who: str, now: float, lease: float, limit: int = 50
          ) -> list[dict[str, Any]]:
    """Take up to `limit` due pending notifications for `lease` seconds (commit, then send)."""
    due = (select(Notification.id).where(
        Notification.state == PENDING, Notification.next_at <= now,
        or_(Notification.claimed_until.is_(None), Notification.claimed_until < now))
        .order_by(Notification.next_at, Notification.id).limit(limit))
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(conn.execute(due).scalars())
    if not ids:
        return []
    conn.execute(update(Notification).where(Notification.id.in_(ids))
                 .values(claimed_until=now + lease, claimed_by=who[:64]))
    return [dict(r._mapping) for r in conn.execute(
        select(Notification.id, Notification.job_id, Notification.event, Notification.channel,
               Notification.target, Notification.body, Notification.tries)
        .where(Notification.id.in_(ids)).order_by(Notification.id))]


def mark_sent(conn: Connection, note_id: int, who: str, now: float) -> None:
    conn.execute(update(Notification).where(Notification.id == note_id,
                                            Notification.claimed_by == who[:64])
                 .values(state=SENT, sent_at=now, tries=Notification.tries + 1,
                         claimed_until=None, last_error=""))


def mark_failed(conn: Connection, note_id: int, who: str, now: float, error: str,
                retry_at: float | None) -> None:
    """A try failed: try again at `retry_at`, or (None) give up: state failed."""
    values: dict[str, Any] = {"tries": Notification.tries + 1, "claimed_until": None,
                              "last_error": error[:MAX_ERROR]}
    if retry_at is None:
        values["state"] = FAILED
    else:
        values["next_at"] = retry_at
    conn.execute(update(Notification).where(Notification.id == note_id,
                                            Notification.claimed_by == who[:64])
                 .values(**values))


def listing(conn: Connection, states: list[str], limit: int = 1000) -> list[dict[str, Any]]:
    """Notifications in these states, newest first."""
    q = (select(Notification.id, Notification.job_id, Notification.event, Notification.channel,
                Notification.target, Notification.state, Notification.tries,
                Notification.next_at, Notification.last_error, Notification.created_at,
                Notification.sent_at)
         .where(Notification.state.in_(states)).order_by(Notification.id.desc()).limit(limit))
    return [dict(r._mapping) for r in conn.execute(q)]


def retry(conn: Connection, ids: list[int], now: float) -> int:
    """Failed notifications (or all failed, `ids` empty) are tried again from now."""
    where = and_(Notification.state == FAILED,
                 Notification.id.in_(ids) if ids else Notification.state == FAILED)
    return conn.execute(update(Notification).where(where)
                        .values(state=PENDING, next_at=now, tries=0)).rowcount

