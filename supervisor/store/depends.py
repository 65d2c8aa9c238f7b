"""Dependencies added to jobs already submitted, and what waits on a job.

A new edge holds back only frames that have not started: waiting frames go back to DEPEND,
running and finished frames are left alone.  What the target has already finished counts as
done: an edge to a finished job or layer is stored satisfied, and a frame waits only for the
target frames not yet complete.
"""

from __future__ import annotations

from typing import Any

import fileseq
from sqlalchemy import Connection, bindparam, insert, select, update

from cuefarm.states import COMPLETE_STATES, Event, FrameState, JobState, next_state
from supervisor.store.counters import Deltas
from supervisor.store.errors import ControlError
from supervisor.store.admin import frame_dependency_done
from supervisor.store.models import Dependency, Frame, FrameDep, Job, Layer, Project
from supervisor.store.work import Touched

F = FrameState
KINDS = ("job", "layer", "frame")
COMPLETE = tuple(s.value for s in COMPLETE_STATES)


def _job(conn: Connection, job_id: int, field: str, hidden: frozenset[str]) -> Any:
    row = conn.execute(select(Job.id, Job.state, Project.name.label("project"))
                       .join(Project, Project.id == Job.project_id)
                       .where(Job.id == job_id)).first()
    if row is None or row.project in hidden:
        raise ControlError(f"no job with id {job_id}", field, "not_found")
    return row


def _layers(conn: Connection, job_id: int) -> dict[str, Any]:
    return {r.name: r for r in conn.execute(
        select(Layer.id, Layer.name, Layer.job_id, Layer.range, Layer.waiting, Layer.running,
               Layer.depend, Layer.dead).where(Layer.job_id == job_id).order_by(Layer.idx))}


def _layer(layers: dict[str, Any], job_id: int, name: str, field: str) -> Any:
    if name not in layers:
        raise ControlError(f"job {job_id} has no layer {name!r} (its layers: "
                           f"{', '.join(layers)})", field, "not_found")
    return layers[name]


def _reaches(conn: Connection, starts: set[int], goals: set[int]) -> bool:
    """Whether some layer of `goals` is reached from `starts` by following what layers wait
    for (a whole-job edge leads to every layer of that job)."""
    seen, frontier = set(starts), set(starts)
    while frontier:
        if frontier & goals:
            return True
        nxt: set[int] = set()
        whole_jobs: set[int] = set()
        for d in conn.execute(select(Dependency.target_job_id, Dependency.target_layer_id)
                              .where(Dependency.layer_id.in_(list(frontier)))):
            if d.target_layer_id is None:
                whole_jobs.add(d.target_job_id)
            else:
                nxt.add(d.target_layer_id)
        if whole_jobs:
            nxt.update(conn.execute(select(Layer.id).where(Layer.job_id.in_(whole_jobs)))
                       .scalars())
        frontier = nxt - seen
        seen |= nxt
    return False


def _numbers(label: str) -> list[int]:
    return list(fileseq.FrameSet(label))


def _frame_edges(conn: Connection, mine: Any, theirs: Any) -> list[tuple[int, list[Any]]]:
    """For each frame of layer `mine`, the frames of layer `theirs` holding its numbers; a
    frame number of `mine` that `theirs` does not have is refused."""
    where: dict[int, Any] = {}
    for r in conn.execute(select(Frame.id, Frame.label, Frame.state)
                          .where(Frame.layer_id == theirs.id)):
        for n in _numbers(r.label):
            where[n] = r
    out, missing = [], []
    for r in conn.execute(select(Frame.id, Frame.label).where(Frame.layer_id == mine.id)
                          .order_by(Frame.number)):
        targets: dict[int, Any] = {}
        for n in _numbers(r.label):
            t = where.get(n)
            if t is None:
                missing.append(n)
            else:
                targets[t.id] = t
        out.append((r.id, list(targets.values())))
    if missing:
        shown = fileseq.framesToFrameRange(sorted(set(missing)))
        raise ControlError(f"frame by frame needs the same frame numbers: layer {mine.name!r} "
                           f"({mine.range}) has frames {shown} that layer {theirs.name!r} "
                           f"({theirs.range}) does not", "target_layer")
    return out


def _hold(conn: Connection, where, now: float, touched: Touched) -> None:
    """WAITING -> DEPEND for frames matching `where` (counters included)."""
    rows = conn.execute(select(Frame.id, Frame.layer_id, Frame.job_id)
                        .where(where, Frame.state == F.WAITING.value).with_for_update()).all()
    if not rows:
        return
    new = next_state(F.WAITING, Event.DEPS_RESET).value
    deltas = Deltas()
    ids = [r.id for r in rows]
    for o in range(0, len(ids), 5000):
        conn.execute(update(Frame).where(Frame.id.in_(ids[o:o + 5000]),
                                         Frame.state == F.WAITING.value)
                     .values(state=new, updated_at=now))
    for r in rows:
        deltas.move(r.layer_id, F.WAITING, F.DEPEND)
        touched.frames.add(r.id)
        touched.layers.add(r.layer_id)
        touched.jobs.add(r.job_id)
    deltas.write(conn)


def hold_blocked(conn: Connection, where, now: float, touched: Touched) -> None:
    """Frames matching `where` that were put back to WAITING (a retry) but still have something
    to wait for, their layer's or their own, go back to DEPEND: a dependency added after they
    ran holds them too."""
    blocked = select(Layer.id).where(Layer.deps_left > 0)
    _hold(conn, where & ((Frame.deps_left > 0) | Frame.layer_id.in_(blocked)), now, touched)


def add_dependency(conn: Connection, kind: str, job_id: int, layer: str | None,
                   target_job_id: int, target_layer: str | None, now: float,
                   touched: Touched, hidden: frozenset[str] = frozenset()) -> int:
    """Make `layer` of job `job_id` (each of its layers when None) wait for job
    `target_job_id` (kind job), its layer `target_layer` (kind layer) or, frame by frame, for
    the frames of `target_layer` with the same numbers (kind frame).  Refuses an unknown
    kind, job or layer, a circle, a frame range that does not match and an edge that is
    already there.  Return how many edges were added."""
    if kind not in KINDS:
        raise ControlError(f"unknown dependency kind {kind!r} ({', '.join(KINDS)})", "kind")
    if kind == "job" and target_layer is not None:
        raise ControlError("a job dependency waits for a whole job: leave the target layer "
                           "out, or use kind layer", "target_layer")
    if kind != "job" and target_layer is None:
        raise ControlError(f"a {kind} dependency needs the layer to wait for", "target_layer")
    if kind == "frame" and layer is None:
        raise ControlError("a frame-by-frame dependency needs the waiting layer", "layer")
    _job(conn, job_id, "job_id", hidden)
    target_job = _job(conn, target_job_id, "target_job_id", hidden)
    layers = _layers(conn, job_id)
    mine = [_layer(layers, job_id, layer, "layer")] if layer is not None else list(layers.values())
    their_layers = _layers(conn, target_job_id)
    theirs = (_layer(their_layers, target_job_id, target_layer, "target_layer")
              if target_layer is not None else None)
    if kind == "job" and target_job_id == job_id:
        raise ControlError(f"job {job_id} cannot wait for itself", "target_job_id")
    targets = {theirs.id} if theirs is not None else {r.id for r in their_layers.values()}
    own = {r.id for r in mine}
    if own & targets:
        raise ControlError(f"layer {theirs.name!r} cannot wait for itself", "target_layer")
    if _reaches(conn, targets, own):
        what = f"job {target_job_id}" + (f" layer {target_layer!r}" if target_layer else "")
        raise ControlError(f"{what} already waits, directly or not, for job {job_id}"
                           + (f" layer {layer!r}" if layer else "")
                           + ": the dependency would make a circle", "target_job_id")
    target_layer_id = theirs.id if theirs is not None else None
    for r in mine:
        dup = conn.execute(select(Dependency.id).where(
            Dependency.layer_id == r.id, Dependency.target_job_id == target_job_id,
            (Dependency.target_layer_id == target_layer_id) if target_layer_id is not None
            else Dependency.target_layer_id.is_(None))).first()
        if dup is not None:
            raise ControlError(f"layer {r.name!r} of job {job_id} already waits for that "
                               f"(dependency {dup.id})", "target_job_id")
    if kind == "frame":
        _add_frame_dependency(conn, job_id, mine[0], theirs, now, touched)
        return 1
    if theirs is None:
        done = target_job.state == JobState.FINISHED.value
    else:
        done = not (theirs.waiting or theirs.running or theirs.depend or theirs.dead)
    conn.execute(insert(Dependency), [
        {"kind": kind, "job_id": job_id, "layer_id": r.id, "target_job_id": target_job_id,
         "target_layer_id": target_layer_id, "satisfied": done} for r in mine])
    if not done:
        ids = [r.id for r in mine]
        conn.execute(update(Layer).where(Layer.id.in_(ids))
                     .values(deps_left=Layer.deps_left + 1))
        _hold(conn, Frame.layer_id.in_(ids), now, touched)
    touched.jobs.add(job_id)
    touched.layers.update(r.id for r in mine)
    return len(mine)


def _add_frame_dependency(conn: Connection, job_id: int, mine: Any, theirs: Any, now: float,
                          touched: Touched) -> None:
    edges = _frame_edges(conn, mine, theirs)
    conn.execute(insert(Dependency).values(
        kind="frame", job_id=job_id, layer_id=mine.id, target_job_id=theirs.job_id,
        target_layer_id=theirs.id, satisfied=False))
    rows = [{"frame_id": f, "target_frame_id": t.id} for f, ts in edges for t in ts]
    for o in range(0, len(rows), 10_000):
        conn.execute(insert(FrameDep), rows[o:o + 10_000])
    # Each frame waits for its target frames not complete yet (those done count as met).
    left = {f: sum(1 for t in ts if t.state not in COMPLETE) for f, ts in edges}
    blocked = [{"fid": f, "n": n} for f, n in left.items() if n]
    if blocked:
        conn.execute(update(Frame).where(Frame.id == bindparam("fid"))
                     .values(deps_left=Frame.deps_left + bindparam("n"))
                     .execution_options(synchronize_session=False), blocked)
        ids = [b["fid"] for b in blocked]
        for o in range(0, len(ids), 5000):
            _hold(conn, Frame.id.in_(ids[o:o + 5000]), now, touched)
    touched.jobs.add(job_id)
    touched.layers.add(mine.id)


def dependant_rows(conn: Connection, job_id: int,
                   hidden: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """What waits on job `job_id`: the dependencies of other jobs (and of its own layers on one
    another) whose target is this job or one of its layers."""
    _job(conn, job_id, "job_id", hidden)
    names = dict(conn.execute(select(Layer.id, Layer.name).where(Layer.job_id == job_id)).all())
    out = []
    for d in conn.execute(
            select(Dependency.id, Dependency.kind, Dependency.job_id, Dependency.layer_id,
                   Dependency.target_layer_id, Dependency.satisfied, Layer.name.label("layer"),
                   Job.name.label("job_name"), Project.name.label("project"))
            .join(Layer, Layer.id == Dependency.layer_id)
            .join(Job, Job.id == Dependency.job_id)
            .join(Project, Project.id == Job.project_id)
            .where(Dependency.target_job_id == job_id).order_by(Dependency.id)):
        if d.project in hidden:
            continue
        out.append({"id": d.id, "kind": d.kind, "job_id": d.job_id, "job_name": d.job_name,
                    "layer": d.layer, "target_layer": names.get(d.target_layer_id),
                    "satisfied": bool(d.satisfied) if d.kind != "frame" else
                    frame_dependency_done(conn, d.layer_id, d.target_layer_id)})
    return out
