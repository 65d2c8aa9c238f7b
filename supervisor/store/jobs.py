"""Reading jobs, layers, frames and hosts as plain dicts (rows for the API and events)."""

from __future__ import annotations

from typing import Any, Iterable

import fileseq
from sqlalchemy import Connection, String, and_, case, cast, func, or_, select

from cuefarm.states import AttemptState, JobState
from supervisor.store import comments
from supervisor.store.counters import COUNTER_NAMES
from supervisor.store.errors import ControlError
from supervisor.store.models import (Attempt, Dependency, Frame, FrameDep, Host, Job, Layer,
                                     Project)

# --- reading ---------------------------------------------------------------------------------

def _job_columns():
    sums = [func.coalesce(func.sum(getattr(Layer, c)), 0).label(c) for c in COUNTER_NAMES]
    return [Job.id, Job.name, Project.name.label("project"), Job.user, Job.priority, Job.state,
            Job.killed, Job.submitted_at, Job.started_at, Job.finished_at,
            func.coalesce(func.sum(Layer.frames_total), 0).label("frames_total"),
            Job.min_slots, Job.max_slots, Job.flagged,
            func.coalesce(func.sum(Layer.slots_running), 0).label("slots_used"), *sums,
            comments.job_count()]


def job_status(r: dict[str, Any]) -> str:
    """One word for people: running, waiting, paused, failing, dependency, finished, killed."""
    if r["state"] == JobState.FINISHED.value:
        return "killed" if r["killed"] else "finished"
    if r["dead"]:
        return "failing"
    if r["state"] == JobState.PAUSED.value:
        return "paused"
    if r["running"]:
        return "running"
    if r["waiting"]:
        return "waiting"
    return "dependency" if r["depend"] else "waiting"


def _job_dict(r: dict[str, Any]) -> dict[str, Any]:
    r["killed"] = bool(r["killed"])
    r["stalled"] = r["state"] != JobState.FINISHED.value and not r["waiting"] and not r["running"]
    r["status"] = job_status(r)
    return r


def job_rows(conn: Connection, job_ids: Iterable[int] | None = None, project: str | None = None,
             user: str | None = None, include_finished: bool = True) -> list[dict[str, Any]]:
    q = (select(*_job_columns()).select_from(Job).join(Project, Project.id == Job.project_id)
         .outerjoin(Layer, Layer.job_id == Job.id).group_by(Job.id, Project.name).order_by(Job.id))
    if job_ids is not None:
        q = q.where(Job.id.in_(list(job_ids)))
    if project:
        q = q.where(Project.name == project)
    if user:
        q = q.where(Job.user == user)
    if not include_finished:
        q = q.where(Job.state != JobState.FINISHED.value)
    return [_job_dict(r) for r in _dicts(conn.execute(q))]


def layer_rows(conn: Connection, job_id: int | None = None,
               layer_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    q = select(Layer.id, Layer.job_id, Layer.name, Layer.command, Layer.range, Layer.chunk,
               Layer.slots, Layer.slots_mode, Layer.memory, Layer.gpus, Layer.max_retries,
               Layer.depends_on, Layer.tags, Layer.os, Layer.hosts, Layer.omit_hosts,
               Layer.requirements, Layer.limits, Layer.timeout, Layer.timeout_no_output,
               Layer.frames_total, Layer.slots_running, Layer.outputs,
               *[getattr(Layer, c) for c in COUNTER_NAMES]).order_by(Layer.job_id, Layer.idx)
    if job_id is not None:
        q = q.where(Layer.job_id == job_id)
    if layer_ids is not None:
        q = q.where(Layer.id.in_(list(layer_ids)))
    out = []
    for d in _dicts(conn.execute(q)):
        d["slots"] = {"fixed": d["slots"], "plus": f"{d['slots']}+", "all": "all"}[d["slots_mode"]]
        d["outputs"] = d["outputs"] or []
        out.append(d)
    return out


# Everything a frame row carries is computed by the database (runtime, attempt id, zeros for
# frames that never ran), so building a row is one dict(zip()) and no per-row Python.
_PAGE_FIELDS = ("id", "job_id", "layer_id", "idx", "number", "label", "frame_end", "state",
                "attempt", "retries")


def _frame_columns(f: Any, layer_name: Any) -> tuple:
    """The columns of a frame row; `f` is the frame table or a page of it."""
    attempt = case((f.attempt > 0, cast(f.id, String) + "." + cast(f.attempt, String)),
                   else_=None)
    return (f.id, f.job_id, f.layer_id, layer_name.label("layer"), f.number,
            f.number.label("frame_start"), f.label.label("frames"), f.frame_end, f.state,
            f.attempt, f.retries, Attempt.host_name.label("host"), Attempt.started_at,
            Attempt.stopped_at, func.coalesce(Attempt.peak_rss, 0).label("peak_rss"),
            func.coalesce(Attempt.cpu_time, 0.0).label("cpu_time"), Attempt.exit_status,
            Attempt.state.label("attempt_state"),
            (Attempt.stopped_at - Attempt.started_at).label("runtime"),
            attempt.label("attempt_id"), Attempt.progress,
            # why the latest attempt did not run or ended (a refusal, a launch failure, ...)
            func.coalesce(Attempt.reason, "").label("reason"))


def _latest_attempt(f: Any) -> Any:
    return and_(Attempt.frame_id == f.id, Attempt.number == f.attempt)


def _dicts(result: Any) -> list[dict[str, Any]]:
    keys = tuple(result.keys())
    return [dict(zip(keys, row)) for row in result]


def _page(q: Any, offset: int, limit: int | None) -> Any:
    if offset:
        q = q.offset(offset)
    return q if limit is None else q.limit(limit)


def frame_rows(conn: Connection, job_id: int | None = None, frame_ids: Iterable[int] | None = None,
               layer: str | None = None, states: list[str] | None = None, offset: int = 0,
               limit: int | None = None) -> list[dict[str, Any]]:
    """Frames by job (optionally one layer, some states) or by id, in layer order then dispatch
    order; `offset` and `limit` take one page of that order."""
    if job_id is None:
        q = (select(*_frame_columns(Frame, Layer.name)).select_from(Frame)
             .join(Layer, Layer.id == Frame.layer_id).outerjoin(Attempt, _latest_attempt(Frame))
             .order_by(Frame.layer_id, Frame.idx))
        if frame_ids is not None:
            q = q.where(Frame.id.in_(list(frame_ids)))
        if layer is not None:
            q = q.where(Layer.name == layer)
        if states:
            q = q.where(Frame.state.in_(states))
        return _dicts(conn.execute(_page(q, offset, limit)))
    # The job's layers first (a handful of rows); then the page of frames comes straight off
    # the (layer_id, idx) index in order, before any join, so skipping to a page and sorting
    # touch only narrow frame rows.  Layer ids grow with the layer's position in the job
    # (submit inserts them in order), so (layer_id, idx) is layer order, then dispatch order.
    lq = select(Layer.id, Layer.name).where(Layer.job_id == job_id).order_by(Layer.id)
    if layer is not None:
        lq = lq.where(Layer.name == layer)
    names = dict(conn.execute(lq).all())
    if not names:
        return []
    page = (select(*(getattr(Frame, c) for c in _PAGE_FIELDS))
            .where(Frame.layer_id.in_(list(names))).order_by(Frame.layer_id, Frame.idx))
    if frame_ids is not None:
        page = page.where(Frame.id.in_(list(frame_ids)))
    if states:
        page = page.where(Frame.state.in_(states))
    sub = _page(page, offset, limit).subquery("f")
    f = sub.c
    q = (select(*_frame_columns(f, case(names, value=f.layer_id))).select_from(sub)
         .outerjoin(Attempt, _latest_attempt(f)).order_by(f.layer_id, f.idx))
    return _dicts(conn.execute(q))


def running_frame_rows(conn: Connection, host_id: int, offset: int = 0,
                       limit: int | None = None) -> list[dict[str, Any]]:
    """The frames running on one host, from every job, oldest start first; each row also has
    `job_name` and the `slots` its attempt holds."""
    q = (select(*_frame_columns(Frame, Layer.name), Job.name.label("job_name"),
                Attempt.slots)
         .select_from(Attempt)
         .join(Frame, and_(Frame.id == Attempt.frame_id, Frame.attempt == Attempt.number))
         .join(Layer, Layer.id == Frame.layer_id).join(Job, Job.id == Frame.job_id)
         .where(Attempt.host_id == host_id, Attempt.state == AttemptState.RUNNING.value)
         .order_by(Attempt.started_at, Attempt.frame_id))
    return _dicts(conn.execute(_page(q, offset, limit)))


HOST_COLUMNS = (Host.id, Host.name, Host.hostname, Host.os, Host.cores, Host.memory_mb,
                Host.memory_free_mb, Host.gpus, Host.tags, Host.tags_added, Host.tags_removed,
                Host.state, Host.lock, Host.lock_kind, Host.lock_slots, Host.slots_configured,
                Host.slots_override, Host.load, Host.cpu_percent, Host.last_seen, Host.address,
                Host.disk_free_mb, Host.nimby, Host.draining, Host.drain)


def host_rows(conn: Connection, host_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    # Slots in use come from the running attempts themselves, so every supervisor sharing the
    # database reports the same figure the moment a claim commits.
    running = (select(Attempt.host_id, func.count().label("n"), func.sum(Attempt.slots).label("s"))
               .where(Attempt.state == "RUNNING").group_by(Attempt.host_id).subquery())
    q = (select(*HOST_COLUMNS, func.coalesce(running.c.n, 0).label("running"),
                func.coalesce(running.c.s, 0).label("slots_used"), comments.host_count())
         .outerjoin(running, running.c.host_id == Host.id).order_by(Host.name))
    if host_ids is not None:
        q = q.where(Host.id.in_(list(host_ids)))
    out = []
    for r in _dicts(conn.execute(q)):
        added, removed = r.pop("tags_added") or [], r.pop("tags_removed") or []
        r["tags"] = sorted((set(r["tags"] or []) | set(added)) - set(removed))
        slots = r["slots_configured"] if r["slots_override"] is None else r["slots_override"]
        r["slots"] = slots                      # unlocked total
        if r["nimby"] or r["drain"]:
            r["slots_total"] = 0
        elif r["lock"] == "LOCKED":
            r["slots_total"] = min(r["lock_slots"] or 0, slots)
        else:
            r["slots_total"] = slots
        # The kind of lock people see: an admin's, a schedule's, or the machine's user (nimby).
        r["lock_kind"] = "nimby" if r["nimby"] else (r["lock_kind"] or "")
        r["nimby"], r["draining"] = bool(r["nimby"]), bool(r["draining"])
        out.append(r)
    return out


def owners(conn: Connection, job_ids: list[int]) -> dict[int, Any]:
    """Each existing job's user and project: {job id: row with .user, .project}."""
    return {r.id: r for r in conn.execute(
        select(Job.id, Job.user, Project.name.label("project"))
        .join(Project, Project.id == Job.project_id).where(Job.id.in_(job_ids)))}


def in_projects(conn: Connection, job_ids: set[int], projects: Iterable[str]) -> set[int]:
    """Those of `job_ids` in one of `projects`."""
    return set(conn.execute(select(Job.id).join(Project, Project.id == Job.project_id)
                            .where(Job.id.in_(job_ids), Project.name.in_(list(projects))))
               .scalars())


def find_layer(conn: Connection, job_id: int, layer: str | None) -> tuple[int, str]:
    """(id, name) of a job's layer; with `layer` None, of its only layer.  ControlError
    "not_found" naming the job or the layer that is missing."""
    found = conn.execute(select(Layer.id, Layer.name).where(Layer.job_id == job_id)
                         .order_by(Layer.id)).all()
    if not found:
        raise ControlError(f"no job with id {job_id}", "job_id", "not_found")
    if layer is None:
        if len(found) > 1:
            names = ", ".join(name for _, name in found)
            raise ControlError(f"job {job_id} has {len(found)} layers ({names}): name the "
                               "layer of the frames", "layer")
        return found[0].id, found[0].name
    for layer_id, name in found:
        if name == layer:
            return layer_id, name
    raise ControlError(f"job {job_id} has no layer {layer!r} (its layers: "
                       f"{', '.join(name for _, name in found)})", "layer", "not_found")


def _frames_running(conn: Connection, layer_id: int, numbers: list[int]) -> dict[int, Any]:
    """{number: frame row (id, attempt, label)} for each of `numbers` some frame (or chunk)
    of the layer runs."""
    lo, hi = min(numbers), max(numbers)
    first, last = Frame.number, Frame.frame_end
    # Chunks may run downwards (10-1): a chunk overlaps [lo, hi] whichever way it runs.
    candidates = conn.execute(
        select(Frame.id, Frame.attempt, Frame.label)
        .where(Frame.layer_id == layer_id,
               or_(and_(first <= hi, last >= lo), and_(last <= hi, first >= lo)))).all()
    wanted, out = set(numbers), {}
    for row in candidates:
        for n in wanted.intersection(fileseq.FrameSet(row.label)):
            out[n] = row
    return out


def frame_ids_for_numbers(conn: Connection, job_id: int, layer: str | None,
                          numbers: list[int]) -> list[int]:
    """The ids of the frames (or chunks) that run frame `numbers` of a job's layer (its only
    layer when None); ControlError naming the first number the layer does not have."""
    layer_id, name = find_layer(conn, job_id, layer)
    found = _frames_running(conn, layer_id, numbers) if numbers else {}
    missing = [n for n in numbers if n not in found]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ControlError(f"layer {name!r} of job {job_id} has no frame {missing[0]}{more}",
                           "frame", "not_found")
    return sorted({row.id for row in found.values()})


def find_attempt(conn: Connection, job_id: int, layer: str | None, frame: int,
                 attempt: int | None) -> tuple[str, int, str, str]:
    """The attempt that ran frame number `frame` of a job's layer (its only layer when None;
    its latest attempt unless `attempt`): (attempt id, host id, host name, why it ended when
    it says); ControlError "not_found" naming what is missing."""
    layer_id, name = find_layer(conn, job_id, layer)
    row = _frames_running(conn, layer_id, [frame]).get(frame)
    if row is None:
        raise ControlError(f"layer {name!r} of job {job_id} has no frame {frame}", "frame",
                           "not_found")
    number = attempt if attempt is not None else row.attempt
    if number < 1:
        raise ControlError(f"frame {frame} has not run yet", "attempt", "not_found")
    att = conn.execute(select(Attempt.host_id, Attempt.host_name, Attempt.reason)
                       .where(Attempt.frame_id == row.id, Attempt.number == number)).first()
    if att is None:
        raise ControlError(f"frame {frame} has no attempt {number} (latest is {row.attempt})",
                           "attempt", "not_found")
    return f"{row.id}.{number}", att.host_id, att.host_name, att.reason or ""


# --- what `why` and `next_for_host` read -----------------------------------------------------------

def layer_dependencies(conn: Connection, layer_id: int) -> list[Any]:
    """The layer's dependencies, oldest first (id, kind, target job and layer, satisfied)."""
    return conn.execute(select(Dependency.id, Dependency.kind, Dependency.target_job_id,
                               Dependency.target_layer_id, Dependency.satisfied)
                        .where(Dependency.layer_id == layer_id).order_by(Dependency.id)).all()


def layer_progress(conn: Connection, layer_id: int) -> Any:
    """A layer's name, job and frame counts (None if it is gone)."""
    return conn.execute(select(Layer.name, Layer.job_id, Layer.frames_total, Layer.succeeded,
                               Layer.eaten, Layer.dead, Layer.running)
                        .where(Layer.id == layer_id)).first()


def upstream_frames_not_done(conn: Connection, layer_id: int, frame_id: int | None,
                             limit: int) -> list[Any]:
    """Upstream frames (label, state) not yet done that frame `frame_id` (or any frame of the
    layer) waits on frame by frame; at most `limit`."""
    q = (select(Frame.label, Frame.state).join(FrameDep, FrameDep.target_frame_id == Frame.id)
         .where(Frame.state.not_in(("SUCCEEDED", "EATEN"))))
    q = q.where(FrameDep.frame_id == frame_id) if frame_id else q.where(
        FrameDep.frame_id.in_(select(Frame.id).where(Frame.layer_id == layer_id)))
    return conn.execute(q.limit(limit)).all()


def waiting_frames(conn: Connection, layer_id: int, limit: int) -> list[Any]:
    """The layer's WAITING frames (label, number) in dispatch order; at most `limit`."""
    return conn.execute(select(Frame.label, Frame.number)
                        .where(Frame.layer_id == layer_id, Frame.state == "WAITING")
                        .order_by(Frame.idx).limit(limit)).all()


def waiting_frame_reasons(conn: Connection, layer_id: int, limit: int = 1000) -> list[Any]:
    """Why the layer's WAITING frames (the first `limit` in dispatch order) did not run last
    time: (reason, frames, a host that gave it, how many hosts gave it), most frames first;
    frames that never ran, or whose last attempt ended without a reason, are left out."""
    waiting = (select(Frame.id, Frame.attempt)
               .where(Frame.layer_id == layer_id, Frame.state == "WAITING", Frame.attempt > 0)
               .order_by(Frame.idx).limit(limit).subquery("w"))
    n = func.count().label("frames")
    return conn.execute(
        select(Attempt.reason, n, func.min(Attempt.host_name).label("host"),
               func.count(Attempt.host_name.distinct()).label("hosts"))
        .select_from(waiting)
        .join(Attempt, and_(Attempt.frame_id == waiting.c.id,
                            Attempt.number == waiting.c.attempt))
        .where(Attempt.reason != "").group_by(Attempt.reason).order_by(n.desc())).all()
