"""Storing submitted jobs: layers, frames, dependencies and limits, all or nothing."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

import msgspec

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from cuefarm import frames as franges
from cuefarm.spec import JobSpec, LayerSpec, SpecError, expand_frames
from cuefarm.states import COMPLETE_STATES, FrameState, JobState
from supervisor.store.counters import COUNTER_NAMES
from supervisor.store.models import (Dependency, Frame, FrameDep, Job, Layer, LayerLimit, Limit,
                                     Project, Submission)

FRAME_INSERT_BATCH = 10_000
SLICE_BATCH = 1_000        # frames per statement when stored in slices (a few ms each)
COPY_CHUNK = 5_000         # frames made into COPY text at a time (a few ms of Python each)
# Objects freed at a time when a huge job's columns go (about a millisecond's work): freeing a
# million at once is one call that holds the GIL for 25-50 ms, and the loop's turn with it.
FREE_SLICE = 50_000
# The `flagged` of a job stored in slices (supervisor.bigsubmit): paused, so never dispatched,
# until its last frame is stored and it is made what was asked.
STORING = "being stored"
COMPLETE = tuple(s.value for s in COMPLETE_STATES)


class SubmitError(ValueError):
    """A job that validated alone but does not fit the farm (missing job, layer or limit)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def ensure_project(conn: Connection, name: str) -> int:
    pid = conn.execute(select(Project.id).where(Project.name == name)).scalar()
    if pid is not None:
        return pid
    try:
        with conn.begin_nested():
            return conn.execute(insert(Project).values(name=name, guaranteed=0)
                                .returning(Project.id)).scalar_one()
    except IntegrityError:  # another supervisor created it first
        return conn.execute(select(Project.id).where(Project.name == name)).scalar_one()


def _limit_ids(conn: Connection, spec: JobSpec, path: str) -> dict[str, int]:
    names = {n for layer in spec.layers for n in layer.limits}
    if not names:
        return {}
    found = dict(conn.execute(select(Limit.name, Limit.id).where(Limit.name.in_(names))).all())
    for i, layer in enumerate(spec.layers):
        for j, n in enumerate(layer.limits):
            if n not in found:
                raise SubmitError(f"{path}.layers[{i}].limits[{j}]",
                                  f"no limit named {n!r} (an admin creates it: "
                                  f"cuefarm limits set {n} COUNT)")
    return found


def _external_targets(conn: Connection, spec: JobSpec, path: str,
                      hidden: frozenset[str] = frozenset()) -> dict[tuple, tuple]:
    """(job id, layer name or None) -> (target layer id or None, complete already?).

    A job of a project in `hidden` (restricted, and the submitter not a member) is reported
    like a missing one, so its existence is not given away."""
    out: dict[tuple, tuple] = {}
    for i, layer in enumerate(spec.layers):
        for j, dep in enumerate(layer.depends_on):
            if dep.job is None or (dep.job, dep.layer) in out:
                continue
            field = f"{path}.layers[{i}].depends_on[{j}]"
            job = conn.execute(select(Job.id, Job.state, Job.killed, Project.name)
                               .join(Project, Project.id == Job.project_id)
                               .where(Job.id == dep.job)).first()
            if job is None or job.name in hidden:
                raise SubmitError(field, f"no job with id {dep.job} (not found, or not "
                                         "visible to you)")
            if dep.layer is None:
                done = job.state == JobState.FINISHED.value
                out[(dep.job, None)] = (None, done)
                continue
            target = conn.execute(select(Layer.id, Layer.waiting, Layer.running, Layer.depend,
                                         Layer.dead)
                                  .where(Layer.job_id == dep.job, Layer.name == dep.layer)).first()
            if target is None:
                raise SubmitError(field, f"job {dep.job} has no layer {dep.layer!r}")
            done = not (target.waiting or target.running or target.depend or target.dead)
            out[(dep.job, dep.layer)] = (target.id, done)
    return out


def _frame_targets(layer: LayerSpec, target: LayerSpec) -> list[list[int]]:
    """For each chunk of `layer`, the chunk indexes of `target` holding any of its frames."""
    where: dict[int, int] = {}
    for c in target.chunks():
        for n in c.numbers:
            where[n] = c.index
    return [sorted({where[n] for n in c.numbers if n in where}) for c in layer.chunks()]


def submit(conn: Connection, specs: list[JobSpec], user: str, now: float,
           hidden: frozenset[str] = frozenset(), submission: str | None = None,
           between: Callable[[], None] | None = None,
           prepared: list[Prepared] | None = None,
           pace: Callable[[], None] | None = None) -> list[int]:
    """Store validated jobs with all their frames; return the new job ids.

    `hidden` names the projects `user` may neither submit to nor depend on (restricted
    projects they are not a member of); any such job refuses the whole submission.
    `submission`, the client's id for this submit: when a submit under that id was stored
    already (the client retried: no reply came), its job ids are returned and nothing is
    stored again.

    With `between`, the jobs are stored paused and flagged STORING, and between(), which may
    commit, is called after each batch of frames (supervisor.bigsubmit stores huge jobs in
    slices that way); the caller makes them what was asked once all is stored.  `prepared`
    (`prepare(spec)` of each spec) is the frames' columns worked out before: a caller holding
    others off while it writes works them out first.  `pace()`, when given, is called every
    few milliseconds of Python work on frames (PostgreSQL): a thread storing beside the
    supervisor's loop waits there for the loop's turn to end."""
    if submission is not None:
        stored = stored_submission(conn, submission, user)
        if stored is not None:
            return stored
    ids = []
    for k, spec in enumerate(specs):
        # Without `prepared`, each job's frames are worked out as it comes (and freed once it
        # is stored): a submit of several huge jobs holds one job's at a time.
        ready = prepared[k] if prepared is not None else prepare(spec, f"jobs[{k}]")
        ids.append(_submit_one(conn, spec, f"jobs[{k}]", user, now, hidden, between, ready,
                               pace))
        free_gradually([column for columns in ready.columns for column in columns]
                       + ready.expanded, pace)
    if submission is not None:
        # In the jobs' transaction: both are stored, or neither.  Two retries racing on two
        # supervisors: the second insert fails on the key and its transaction is undone.
        record_submission(conn, submission, user, ids, now)
    return ids


def free_gradually(lists: list[list], pace: Callable[[], None] | None = None) -> None:
    """Empty `lists` FREE_SLICE items at a time, `pace()` between slices: what they held is
    freed in calls of a millisecond, the GIL free for the loop between them."""
    for items in lists:
        while items:
            del items[-FREE_SLICE:]
            if pace is not None:
                pace()


def finish_storing(conn: Connection, job_id: int, state: str) -> None:
    """A job stored in slices is whole: out of "being stored", into `state`."""
    conn.execute(update(Job).where(Job.id == job_id, Job.flagged == STORING)
                 .values(state=state, flagged=""))


def half_stored(conn: Connection) -> list[int]:
    """Jobs a supervisor was storing in slices when it stopped (paused, being stored)."""
    return list(conn.execute(select(Job.id).where(Job.flagged == STORING,
                                                  Job.state == JobState.PAUSED.value))
                .scalars())


def stored_submission(conn: Connection, submission: str, user: str) -> list[int] | None:
    """The job ids submission id `submission` stored, None if none; SubmitError when another
    user used that id."""
    row = conn.execute(select(Submission.user, Submission.job_ids)
                       .where(Submission.id == submission)).first()
    if row is None:
        return None
    if row.user != user:
        raise SubmitError("submission", "that submission id was used by another user")
    return [int(i) for i in row.job_ids]


def record_submission(conn: Connection, submission: str, user: str, ids: list[int],
                      now: float) -> None:
    """Note that submission id `submission` stored jobs `ids` (IntegrityError: it was already)."""
    conn.execute(insert(Submission).values(id=submission, user=user, job_ids=ids,
                                           created_at=now))


def forget_submissions(conn: Connection, before: float) -> int:
    """Drop the submission ids recorded before `before` (a client retries within minutes)."""
    return conn.execute(delete(Submission).where(Submission.created_at < before)).rowcount


@dataclass
class Prepared:
    """A job's frames worked out from its spec, before anything is stored: per layer, the
    frames' columns and how many upstream frames each waits for (per-frame dependencies)."""

    frame_deps: dict[str, list[tuple[str, list[list[int]]]]]
    # starts, ends, labels, per_frame, and the states the frames start in when the layer
    # waits for no whole layer
    columns: list[tuple[list[int], list[int], list[str], list[int], list[str]]]
    # The frame numbers prepare() expanded itself (from ranges left unexpanded when checked):
    # freed with the columns once the job is stored.
    expanded: list[list[int]]


def prepare(spec: JobSpec, path: str = "jobs[0]") -> Prepared:
    """Work out `spec`'s frames (no database: seconds of work for a million frames), expanding
    its ranges first if they were checked without (validate_job's `expand`)."""
    try:
        expanded = [layer.frames for layer in expand_frames(spec.layers, path)]
    except SpecError as exc:
        raise SubmitError(exc.field, exc.message) from None
    by_name = {layer.name: layer for layer in spec.layers}
    frame_deps: dict[str, list[tuple[str, list[list[int]]]]] = defaultdict(list)
    columns = []
    for layer in spec.layers:
        for dep in layer.depends_on:
            if dep.kind == "frame":
                frame_deps[layer.name].append((dep.layer,
                                               _frame_targets(layer, by_name[dep.layer])))
        starts, ends, labels = franges.chunk_columns(layer.frames, layer.chunk)
        per_frame = [0] * len(starts)
        waiting, depend = FrameState.WAITING.value, FrameState.DEPEND.value
        if layer.name in frame_deps:
            for _, targets in frame_deps[layer.name]:
                for k, t in enumerate(targets):
                    per_frame[k] += len(t)
            states = [depend if n else waiting for n in per_frame]
        else:       # a million frames: the enum's value looked up once, not once a frame
            states = [waiting] * len(starts)
        columns.append((starts, ends, labels, per_frame, states))
    return Prepared(frame_deps, columns, expanded)


def _submit_one(conn: Connection, spec: JobSpec, path: str, user: str, now: float,
                hidden: frozenset[str], between: Callable[[], None] | None,
                prepared: Prepared, pace: Callable[[], None] | None) -> int:
    if spec.project in hidden:
        raise SubmitError(f"{path}.project", f"project {spec.project!r} is restricted to its "
                                             "members (you are not one)")
    limit_ids = _limit_ids(conn, spec, path)
    external = _external_targets(conn, spec, path, hidden)
    project_id = ensure_project(conn, spec.project)
    job_id = conn.execute(insert(Job).values(
        name=spec.name, project_id=project_id, user=user, priority=spec.priority,
        state=(JobState.PAUSED if spec.paused or between else JobState.ACTIVE).value,
        killed=False, submitted_at=now, min_slots=spec.min_slots, max_slots=spec.max_slots,
        flagged=STORING if between else "").returning(Job.id)).scalar_one()
    layer_ids: dict[str, int] = {}
    frame_deps = prepared.frame_deps
    for i, layer in enumerate(spec.layers):
        layer_deps = sum(1 for dep in layer.depends_on if dep.kind != "frame" and (
            dep.kind == "layer" or not external[(dep.job, dep.layer)][1]))
        # Frames wait while the layer has unmet whole-layer dependencies or the frame has
        # upstream frames (per-frame dependencies) not done yet.
        starts, ends, labels, per_frame, states = prepared.columns[i]
        if layer_deps:
            states = [FrameState.DEPEND.value] * len(starts)
        counters = dict.fromkeys(COUNTER_NAMES, 0)
        counters["depend"] = states.count(FrameState.DEPEND.value)
        counters["waiting"] = len(states) - counters["depend"]
        lid = conn.execute(insert(Layer).values(
            job_id=job_id, name=layer.name, idx=i, command=layer.command, range=layer.range,
            chunk=layer.chunk, slots=layer.slots, slots_mode=layer.slots_mode,
            memory=layer.memory, gpus=layer.gpus, max_retries=layer.max_retries, env=layer.env,
            cwd=layer.cwd, depends_on=[d.to_dict() for d in layer.depends_on], tags=layer.tags,
            os=layer.os, hosts=layer.hosts, omit_hosts=layer.omit_hosts,
            requirements=layer.requirements, limits=layer.limits, timeout=layer.timeout,
            timeout_no_output=layer.timeout_no_output, outputs=layer.outputs or None,
            deps_left=layer_deps, slots_running=0,
            frames_total=len(starts), **counters).returning(Layer.id)).scalar_one()
        layer_ids[layer.name] = lid
        _insert_frames(conn, job_id, lid, starts, ends, labels, states, per_frame, now,
                       between, pace)
        if layer.limits:
            conn.execute(insert(LayerLimit), [{"layer_id": lid, "limit_id": limit_ids[n]}
                                              for n in layer.limits])
    deps = []
    for layer in spec.layers:
        for dep in layer.depends_on:
            row = {"kind": dep.kind, "job_id": job_id, "layer_id": layer_ids[layer.name],
                   "target_job_id": job_id, "target_layer_id": None, "satisfied": False}
            if dep.job is None:
                row["target_layer_id"] = layer_ids[dep.layer]
            else:
                row["target_job_id"] = dep.job
                row["target_layer_id"], row["satisfied"] = external[(dep.job, dep.layer)]
            deps.append(row)
    if deps:
        conn.execute(insert(Dependency), deps)
    _insert_frame_deps(conn, layer_ids, frame_deps, between)
    return job_id


def _frame_ids(conn: Connection, layer_id: int) -> list[int]:
    return list(conn.execute(select(Frame.id).where(Frame.layer_id == layer_id)
                             .order_by(Frame.idx)).scalars())


def _insert_frame_deps(conn: Connection, layer_ids: dict[str, int],
                       frame_deps: dict[str, list[tuple[str, list[list[int]]]]],
                       between: Callable[[], None] | None = None) -> None:
    rows = []
    for name, edges in frame_deps.items():
        mine = _frame_ids(conn, layer_ids[name])
        for target_name, targets in edges:
            theirs = _frame_ids(conn, layer_ids[target_name])
            rows.extend({"frame_id": mine[k], "target_frame_id": theirs[t]}
                        for k, ts in enumerate(targets) for t in ts)
    batch = SLICE_BATCH if between is not None else FRAME_INSERT_BATCH
    for o in range(0, len(rows), batch):
        conn.execute(insert(FrameDep), rows[o:o + batch])
        if between is not None:
            between()


def _insert_frames(conn: Connection, job_id: int, layer_id: int, starts: list[int],
                   ends: list[int], labels: list[str], states: list[str], deps_left: list[int],
                   now: float, between: Callable[[], None] | None = None,
                   pace: Callable[[], None] | None = None) -> None:
    """Insert a layer's frames (calling between() after each batch, when given).  PostgreSQL
    gets them by COPY, in the same transaction: a third of the time of one INSERT over unnested
    arrays for 100,000 frames, a fraction of that of a million bound parameters.  SQLite gets
    each batch as one statement over a JSON array of its rows."""
    if conn.dialect.name == "postgresql" and between is None:
        _copy_frames(conn, job_id, layer_id, starts, ends, labels, states, deps_left, now,
                     pace)
        return
    batch = SLICE_BATCH if between is not None else FRAME_INSERT_BATCH
    sqlite = conn.dialect.name == "sqlite"
    for o in range(0, len(starts), batch):
        # Built a batch at a time: a million rows at once would hold the GIL (and memory).
        upto = min(o + batch, len(starts))
        if sqlite:
            # One statement over a JSON array of the rows: the driver lets go of the GIL for
            # the whole insert, where an executemany takes it back for every row's parameters
            # (a huge submit's slices, on a thread of their own, held the loop up so).
            rows = _JSON.encode(list(zip(starts[o:upto], ends[o:upto], labels[o:upto],
                                         states[o:upto], deps_left[o:upto])))
            conn.exec_driver_sql(_SQLITE_FRAMES, (job_id, layer_id, o, now, rows))
        else:
            conn.execute(insert(Frame), [
                {"job_id": job_id, "layer_id": layer_id, "idx": i, "number": starts[i],
                 "frame_end": ends[i], "label": labels[i], "state": states[i], "retries": 0,
                 "attempt": 0, "deps_left": deps_left[i], "updated_at": now}
                for i in range(o, upto)])
        if between is not None:
            between()


_JSON = msgspec.json.Encoder()
_SQLITE_FRAMES = ("INSERT INTO frame (job_id, layer_id, idx, number, frame_end, label, state, "
                  "retries, attempt, deps_left, updated_at) "
                  "SELECT ?, ?, ? + key, json_extract(value, '$[0]'), "
                  "json_extract(value, '$[1]'), json_extract(value, '$[2]'), "
                  "json_extract(value, '$[3]'), 0, 0, json_extract(value, '$[4]'), ? "
                  "FROM json_each(?)")


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


class _CopyRows:
    """The frames in PostgreSQL's COPY text format, made COPY_CHUNK rows at a time as the
    driver reads them (it sends each chunk with the GIL released), `pace()` before each."""

    def __init__(self, job_id: int, layer_id: int, columns: tuple, now: float,
                 pace: Callable[[], None] | None) -> None:
        self.row = f"{job_id}\t{layer_id}\t%d\t%d\t%d\t%s\t%s\t0\t0\t%d\t{float(now)!r}\n"
        self.columns, self.pace, self.at = columns, pace, 0

    def read(self, size: int = -1) -> str:
        starts, ends, labels, states, deps_left = self.columns
        i0 = self.at
        i1 = self.at = min(len(starts), i0 + COPY_CHUNK)
        if i0 == i1:
            return ""
        if self.pace is not None:
            self.pace()
        chunk = labels[i0:i1]
        text = "\0".join(chunk)
        if any(c in text for c in "\\\t\n\r"):   # a tab or backslash must not shift columns
            chunk = [lab.translate(_COPY_ESCAPES) for lab in chunk]
        return "".join(map(self.row.__mod__, zip(range(i0, i1), starts[i0:i1], ends[i0:i1],
                                                  chunk, states[i0:i1], deps_left[i0:i1])))


def _copy_frames(conn: Connection, job_id: int, layer_id: int, starts: list[int],
                 ends: list[int], labels: list[str], states: list[str], deps_left: list[int],
                 now: float, pace: Callable[[], None] | None) -> None:
    """COPY the frames (labels escaped: a tab or backslash in one must not shift the
    columns)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert("COPY frame (job_id, layer_id, idx, number, frame_end, label, state,"
                           " retries, attempt, deps_left, updated_at) FROM STDIN",
                           _CopyRows(job_id, layer_id, (starts, ends, labels, states, deps_left),
                                     now, pace))
    finally:
        cursor.close()
