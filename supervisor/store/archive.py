"""Retention in the database: the finished jobs due for archiving, their rows as JSON-ready
dicts, deleting them, and putting them back.

A job is due when it finished before the cut-off, every attempt of it has been counted by
usage accounting (its figures live on in `usage_day`, which is never archived) and is behind
the overage meter's watermark, and no job still running depends on it.  Its rows: the job
(with its project's name), layers, layer limits (by name), dependencies, frames, frame
dependencies, attempts (the index of its logs), bad-host counts, notification rules and the
comments left on it.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from sqlalchemy import Connection, Engine, and_, delete, exists, func, insert, or_, select

from cuefarm.states import JobState
from supervisor.store.billing_models import UsageSeen
from supervisor.store.metering import meter_watermark
from supervisor.store.models import (Attempt, Comment, Dependency, Frame, FrameDep, Job, JobHost, Layer,
                                     LayerLimit, Limit, Project)
from supervisor.store.pipeline_models import JobNotify, RestoredJob
from supervisor.store.submit import ensure_project

CHUNK = 5000            # ids per IN (...) list


def due_jobs(conn: Connection, before: float, restored_before: float, limit: int
             ) -> list[tuple[int, int]]:
    """(job id, frames) of up to `limit` jobs due for archiving, oldest finished first.
    The meter of worker overage rebuilds its minutes from attempts after its watermark: jobs
    that finished after it stay until it has passed them."""
    metered = meter_watermark(conn)
    if metered is not None:
        before = min(before, float(metered))
    oldest_seen = select(func.min(UsageSeen.stopped_at)).scalar_subquery()
    seen = exists().where(UsageSeen.frame_id == Attempt.frame_id,
                          UsageSeen.number == Attempt.number)
    uncounted = (select(Attempt.frame_id).select_from(Layer)
                 .join(Frame, Frame.layer_id == Layer.id)
                 .join(Attempt, Attempt.frame_id == Frame.id)
                 .where(Layer.job_id == Job.id,
                        or_(Attempt.stopped_at.is_(None),
                            and_(or_(oldest_seen.is_(None), Attempt.stopped_at >= oldest_seen),
                                 ~seen))).exists())
    waiter = Job.__table__.alias("w")
    waiting_on_it = (select(Dependency.id).join(waiter, waiter.c.id == Dependency.job_id)
                     .where(Dependency.target_job_id == Job.id, Dependency.job_id != Job.id,
                            waiter.c.state != JobState.FINISHED.value).exists())
    restored_recently = exists().where(RestoredJob.job_id == Job.id,
                                       RestoredJob.restored_at >= restored_before)
    frames = (select(func.coalesce(func.sum(Layer.frames_total), 0))
              .where(Layer.job_id == Job.id).scalar_subquery())
    q = (select(Job.id, frames)
         .where(Job.state == JobState.FINISHED.value, Job.finished_at < before,
                ~uncounted, ~waiting_on_it, ~restored_recently)
         .order_by(Job.finished_at, Job.id).limit(limit))
    return [(r[0], int(r[1])) for r in conn.execute(q)]


def _rows(conn: Connection, table: Any, column: Any, ids: list[int]) -> Iterator[dict]:
    for o in range(0, len(ids), CHUNK):
        result = conn.execute(select(table).where(column.in_(ids[o:o + CHUNK])))
        keys = list(result.keys())
        for r in result:
            yield dict(zip(keys, r))


def job_rows(conn: Connection, job_ids: list[int]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(table, row) of everything that belongs to these jobs, in the order restore inserts."""
    jobs = (select(Job.__table__, Project.name.label("project"))
            .join(Project, Project.id == Job.project_id).where(Job.id.in_(job_ids)))
    for r in conn.execute(jobs):
        yield "job", dict(r._mapping)
    layer_ids = []
    for row in _rows(conn, Layer.__table__, Layer.job_id, job_ids):
        layer_ids.append(row["id"])
        yield "layer", row
    for r in conn.execute(select(LayerLimit.layer_id, Limit.name)
                          .join(Limit, Limit.id == LayerLimit.limit_id)
                          .where(LayerLimit.layer_id.in_(layer_ids))):
        yield "layer_limit", {"layer_id": r.layer_id, "limit": r.name}
    for row in _rows(conn, Dependency.__table__, Dependency.job_id, job_ids):
        yield "dependency", row
    frame_ids = []
    for o in range(0, len(layer_ids), CHUNK):
        result = conn.execute(select(Frame.__table__)
                              .where(Frame.layer_id.in_(layer_ids[o:o + CHUNK]))
                              .order_by(Frame.layer_id, Frame.idx))
        keys = list(result.keys())
        for r in result:
            row = dict(zip(keys, r))
            frame_ids.append(row["id"])
            yield "frame", row
    for row in _rows(conn, FrameDep.__table__, FrameDep.frame_id, frame_ids):
        yield "frame_dep", row
    for row in _rows(conn, Attempt.__table__, Attempt.frame_id, frame_ids):
        yield "attempt", row
    for row in _rows(conn, JobHost.__table__, JobHost.job_id, job_ids):
        yield "job_host", row
    for row in _rows(conn, JobNotify.__table__, JobNotify.job_id, job_ids):
        yield "job_notify", row
    for row in _rows(conn, Comment.__table__, Comment.job_id, job_ids):
        yield "comment", row


def unchanged(conn: Connection, finished: dict[int, float]) -> list[int]:
    """Those of the jobs (id: finish time when archived) still finished at that time, locked
    until the transaction ends (a job retried meanwhile is not deleted)."""
    q = select(Job.id, Job.finished_at).where(Job.id.in_(list(finished)),
                                                Job.state == JobState.FINISHED.value)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()
    return [r.id for r in conn.execute(q) if r.finished_at == finished[r.id]]


def delete_jobs(conn: Connection, job_ids: list[int]) -> None:
    """Delete these jobs and everything of theirs (frames and attempts have no foreign keys:
    they go first, by their layers)."""
    if not job_ids:
        return
    layer_ids = list(conn.execute(select(Layer.id).where(Layer.job_id.in_(job_ids))).scalars())
    for o in range(0, len(layer_ids), CHUNK):
        part = layer_ids[o:o + CHUNK]
        frames = select(Frame.id).where(Frame.layer_id.in_(part)).scalar_subquery()
        conn.execute(delete(FrameDep).where(FrameDep.frame_id.in_(frames)))
        conn.execute(delete(FrameDep).where(FrameDep.target_frame_id.in_(frames)))
        conn.execute(delete(Attempt).where(Attempt.frame_id.in_(frames)))
        conn.execute(delete(Frame).where(Frame.layer_id.in_(part)))
    for table, column in ((JobNotify, JobNotify.job_id), (RestoredJob, RestoredJob.job_id),
                          (Comment, Comment.job_id),
                          (JobHost, JobHost.job_id), (Dependency, Dependency.job_id),
                          (Dependency, Dependency.target_job_id)):
        conn.execute(delete(table).where(column.in_(job_ids)))
    conn.execute(delete(LayerLimit).where(LayerLimit.layer_id.in_(layer_ids)))
    conn.execute(delete(Layer).where(Layer.job_id.in_(job_ids)))
    conn.execute(delete(Job).where(Job.id.in_(job_ids)))


class RestoreError(ValueError):
    """Archived rows that cannot be put back (the job is in the database already)."""


_TABLES = {"layer": Layer, "layer_limit": LayerLimit, "dependency": Dependency,
           "frame": Frame, "frame_dep": FrameDep, "attempt": Attempt, "job_host": JobHost,
           "job_notify": JobNotify, "comment": Comment}


def restore(conn: Connection, rows: Iterable[tuple[str, dict[str, Any]]], file: str,
            now: float, only: set[int] | None = None) -> list[int]:
    """Insert archived rows (as job_rows gave them) back; the jobs are noted as restored
    (read-only).  Jobs still (or again) in the database are left alone: RestoreError if
    `only` names one, else skipped.  Returns the ids restored."""
    live: set[int] = set()
    restored: list[int] = []
    batch: dict[str, list[dict]] = {}
    limits = dict(conn.execute(select(Limit.name, Limit.id)).all())

    def flush() -> None:
        for name in ("layer", "layer_limit", "dependency", "frame", "frame_dep", "attempt",
                     "job_host", "job_notify", "comment"):
            if batch.get(name):
                conn.execute(insert(_TABLES[name]), batch[name])
        batch.clear()

    layer_job: dict[int, int] = {}
    frame_job: dict[int, int] = {}
    pending = 0
    for table, row in rows:
        if table == "job":
            jid = row["id"]
            if only is not None and jid not in only:
                live.add(jid)           # not asked for: its rows are skipped
                continue
            if conn.execute(select(Job.id).where(Job.id == jid)).first() is not None:
                if only is not None:
                    raise RestoreError(f"job {jid} is in the database already")
                live.add(jid)
                continue
            values = {k: v for k, v in row.items() if k != "project"}
            values["project_id"] = ensure_project(conn, row["project"])
            conn.execute(insert(Job), [values])
            restored.append(jid)
            continue
        if table == "layer":
            layer_job[row["id"]] = row["job_id"]
        elif table == "frame":
            frame_job[row["id"]] = row["job_id"]
        if table == "layer_limit":
            owner = layer_job.get(row["layer_id"])
        elif table == "frame_dep":
            owner = frame_job.get(row["frame_id"])
        else:
            owner = row["job_id"]
        if owner not in restored:
            continue
        if table == "layer_limit":
            if row["limit"] in limits:
                batch.setdefault("layer_limit", []).append(
                    {"layer_id": row["layer_id"], "limit_id": limits[row["limit"]]})
            continue
        if table == "dependency" and row["target_job_id"] not in restored and conn.execute(
                select(Job.id).where(Job.id == row["target_job_id"])).first() is None:
            continue        # what it waited for is gone (and was done)
        if table == "frame_dep" and frame_job.get(row["target_frame_id"]) not in restored:
            continue
        if table == "comment":
            row = {k: v for k, v in row.items() if k != "id"}    # ids taken since get new ones
        batch.setdefault(table, []).append(row)
        pending += 1
        if pending >= CHUNK:
            flush()
            pending = 0
    flush()
    if restored:
        conn.execute(insert(RestoredJob), [{"job_id": j, "file": file[:512], "restored_at": now}
                                           for j in restored])
    return restored


def restored_among(conn: Connection, job_ids: list[int]) -> list[int]:
    if not job_ids:
        return []
    return list(conn.execute(select(RestoredJob.job_id)
                             .where(RestoredJob.job_id.in_(job_ids))).scalars())


RECLAIMED = ("frame", "attempt", "frame_dep", "layer", "job", "comment")


def reclaim(engine: Engine) -> None:
    """After rows were deleted, let new rows reuse their space.  PostgreSQL: a plain VACUUM
    of the tables retention empties (it blocks no reads or writes; autovacuum alone falls
    behind a day's deletions, and the database kept growing with history).  SQLite reuses
    freed pages by itself."""
    if engine.dialect.name != "postgresql":
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql(f"VACUUM (ANALYZE) {', '.join(RECLAIMED)}")


def live_size(conn: Connection) -> dict[str, int]:
    """Rows in the tables retention empties."""
    return {t.__tablename__: conn.execute(select(func.count()).select_from(t)).scalar()
            for t in (Job, Layer, Frame, Attempt)}

