"""Frame life cycle in the database: claims, completions, requeues, dependencies, job ends.

Every function takes an open transaction and works set-based: one SELECT (locking the rows it
will change on PostgreSQL) and a few executemany writes, whatever the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from collections import defaultdict

from sqlalchemy import (Connection, SmallInteger, bindparam, case, delete, func, insert,
                        select, text, update)

from cuefarm import protocol as p
from cuefarm import states
from cuefarm.states import AttemptState, Event, FrameState, JobState, next_state
from supervisor.store import direct, notifications
from supervisor.store.counters import Deltas, FrameMove, apply_moves
from supervisor.store.hosts import capable_hosts
from supervisor.store.models import (Attempt, Dependency, Frame, FrameDep, Host, Job, JobHost,
                                     Layer, Project, storable)
from supervisor.store.telemetry import array_literal, relaxed_commit

A, F = AttemptState, FrameState
LAUNCH_FAILED = "launch failed"     # rqd's completion reason when the process never started
SAME_REFUSAL = states.SAME_REFUSAL     # the flag of a job at fault rather than its hosts


@dataclass
class Touched:
    """What a transaction changed, for events and follow-up work."""

    jobs: set[int] = field(default_factory=set)
    layers: set[int] = field(default_factory=set)
    frames: set[int] = field(default_factory=set)
    hosts: set[int] = field(default_factory=set)

    def add_moves(self, moves: list[FrameMove]) -> None:
        for m in moves:
            self.jobs.add(m.job_id)
            self.layers.add(m.layer_id)
            self.frames.add(m.frame_id)

    def merge(self, other: "Touched") -> None:
        self.jobs |= other.jobs
        self.layers |= other.layers
        self.frames |= other.frames
        self.hosts |= other.hosts


# --- candidates and claims -------------------------------------------------------------------

STATIC_FIELDS = (Layer.id, Layer.name, Layer.slots, Layer.slots_mode, Layer.memory, Layer.gpus,
                 Layer.command, Layer.env, Layer.cwd, Layer.tags, Layer.os, Layer.hosts,
                 Layer.omit_hosts, Layer.requirements, Layer.limits, Layer.timeout,
                 Layer.timeout_no_output)


# Built once: the hot path's statements cost their construction and cache key only here.
_CANDIDATES = (
    select(Layer.id, Layer.job_id, Layer.idx, Layer.waiting, Job.name.label("job"), Job.user,
           Job.priority, Job.min_slots, Job.max_slots.label("job_max_slots"), Job.project_id,
           Project.name.label("project"), Project.guaranteed,
           Project.max_slots.label("project_max_slots"),
           Job.started_at.is_not(None).label("job_started"))
    .join(Job, Job.id == Layer.job_id).join(Project, Project.id == Job.project_id)
    .where(Layer.waiting > 0, Job.state == JobState.ACTIVE.value)
    .order_by(Job.priority.desc(), Job.id, Layer.idx).limit(bindparam("n")))


def candidate_layers(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Layers with waiting frames of active jobs: the changing part only (what the scheduler
    orders by), highest priority first.  The rest comes from `layer_static`, cached."""
    return [r._asdict() for r in direct.execute(conn, _CANDIDATES, {"n": limit})]


def layer_static(conn: Connection, layer_ids: list[int]) -> dict[int, dict[str, Any]]:
    """What does not change while a layer waits (until someone edits the layer), and whether
    other layers wait on its frames one by one (set at submit; dropping a dependency by hand
    leaves it true, which only costs a look-up)."""
    out = {}
    for o in range(0, len(layer_ids), 5000):
        for r in conn.execute(select(*STATIC_FIELDS)
                              .where(Layer.id.in_(layer_ids[o:o + 5000]))):
            d = dict(r._mapping)
            d["limits"] = d["limits"] or []
            d["frame_dependents"] = False
            out[d["id"]] = d
    for lid in frame_dependency_targets(conn, list(out)):
        out[lid]["frame_dependents"] = True
    return out


def banned_hosts(conn: Connection, job_ids: list[int], now: float) -> dict[int, set[int]]:
    out: dict[int, set[int]] = defaultdict(set)
    if job_ids:
        for job_id, host_id in conn.execute(select(JobHost.job_id, JobHost.host_id)
                                            .where(JobHost.job_id.in_(job_ids),
                                                   JobHost.banned_until > now)):
            out[job_id].add(host_id)
    return out


def active_bans(conn: Connection, now: float) -> list[tuple[int, int, float]]:
    """Every bad-host ban in force, farm-wide: (job id, host id, until)."""
    return [tuple(r) for r in conn.execute(
        select(JobHost.job_id, JobHost.host_id, JobHost.banned_until)
        .where(JobHost.banned_until > now))]


def candidate_layers_of_job(conn: Connection, job_id: int) -> list[dict[str, Any]]:
    """A job's layers as the dispatcher's candidates are (job and project fields with them),
    whatever their state, in layer order."""
    q = (select(Layer.id, Layer.job_id, Layer.idx, Layer.waiting, Layer.depend, Layer.dead,
                Job.name.label("job"), Job.user, Job.priority, Job.min_slots,
                Job.max_slots.label("job_max_slots"), Job.project_id,
                Project.name.label("project"), Project.guaranteed,
                Project.max_slots.label("project_max_slots"))
         .join(Job, Job.id == Layer.job_id).join(Project, Project.id == Job.project_id)
         .where(Layer.job_id == job_id).order_by(Layer.idx))
    return [dict(r._mapping) for r in conn.execute(q)]


def earliest_ban_end(conn: Connection, now: float) -> float | None:
    """When the earliest bad-host ban still in force ends (None: there is none)."""
    return conn.execute(select(func.min(JobHost.banned_until))
                        .where(JobHost.banned_until > now)).scalar()


@dataclass
class Claimed:
    frame_id: int
    number: int          # attempt number
    frame_start: int
    frame_end: int
    label: str
    host_id: int
    host_name: str
    slots: int           # granted
    layer: dict[str, Any]

    @property
    def attempt_id(self) -> str:
        return f"{self.frame_id}.{self.number}"

    def launch(self) -> p.Launch:
        lay = self.layer
        return p.Launch(attempt_id=self.attempt_id, job_id=lay["job_id"], job=lay["job"],
                        project=lay["project"], user=lay["user"], layer=lay["name"],
                        frame_id=self.frame_id, frames=self.label, frame_start=self.frame_start,
                        frame_end=self.frame_end, command=lay["command"], env=lay["env"] or {},
                        slots=self.slots, memory_mb=lay["memory"], cwd=lay["cwd"],
                        timeout=lay["timeout"], timeout_no_output=lay["timeout_no_output"])


# The layers claimed from are taken first, in id order, skipping those another pass holds
# (it has them until it commits: that pass's frames and counters), so a pass never waits for
# a layer row after it took others: it only waits for the layers of the completions it
# records, all in one statement, before anything else.  One lock order: no deadlock between
# the passes of supervisors sharing the database.
_CLAIM_PG = text(
    "WITH held AS MATERIALIZED (SELECT layer.id FROM layer"
    " WHERE layer.id = ANY(CAST(:lids AS bigint[])) ORDER BY layer.id FOR UPDATE SKIP LOCKED)"
    " SELECT f.id, w.lid AS layer_id, f.attempt, f.number, f.frame_end, f.label, f.retries"
    " FROM unnest(CAST(:lids AS bigint[]), CAST(:ns AS integer[])) WITH ORDINALITY"
    " AS w(lid, n, ord) JOIN held ON held.id = w.lid"
    " CROSS JOIN LATERAL (SELECT frame.id, frame.idx, frame.attempt,"
    " frame.number, frame.frame_end, frame.label, frame.retries FROM frame"
    " WHERE frame.layer_id = w.lid AND frame.state = :waiting ORDER BY frame.idx LIMIT w.n"
    " FOR UPDATE SKIP LOCKED) AS f ORDER BY w.ord, f.idx")
_CLAIM = (select(Frame.id, Frame.layer_id, Frame.attempt, Frame.number, Frame.frame_end,
                 Frame.label, Frame.retries)
          .where(Frame.layer_id == bindparam("lid"), Frame.state == F.WAITING.value)
          .order_by(Frame.idx).limit(bindparam("n")).with_for_update(skip_locked=True))
_INSERT_ATTEMPT = insert(Attempt.__table__)


_INSERT_ATTEMPTS_PG = text(
    "INSERT INTO attempt (frame_id, number, job_id, layer_id, host_id, host_name, state, slots,"
    " memory, gpus, started_at, reason, rss, peak_rss, cpu_time)"
    " SELECT t.f, t.n, t.j, t.l, t.h, t.hn, :running, t.s, t.m, t.g, :now, '', 0, 0, 0"
    " FROM unnest(CAST(:f AS bigint[]), CAST(:n AS integer[]), CAST(:j AS bigint[]),"
    " CAST(:l AS bigint[]), CAST(:h AS bigint[]), CAST(:hn AS text[]), CAST(:s AS integer[]),"
    " CAST(:m AS integer[]), CAST(:g AS integer[])) AS t(f, n, j, l, h, hn, s, m, g)")
_JOBS_STARTED_PG = text("UPDATE job SET started_at = :now WHERE job.id = ANY(:ids)"
                        " AND job.started_at IS NULL")
_ATTEMPT_COLUMNS = ("frame_id", "number", "job_id", "layer_id", "host_id", "host_name", "state",
                    "slots", "memory", "gpus", "started_at", "reason", "rss", "peak_rss",
                    "cpu_time")
_INSERT_ATTEMPTS_SQLITE = f"INSERT INTO attempt ({', '.join(_ATTEMPT_COLUMNS)}) VALUES {{values}}"
_ATTEMPT_KEYS = {"f": "frame_id", "n": "number", "j": "job_id", "l": "layer_id", "h": "host_id",
                 "hn": "host_name", "s": "slots", "m": "memory", "g": "gpus"}


def claim(conn: Connection, wants: list[tuple[dict[str, Any], list[tuple[int, str, int]]]],
          now: float, deltas: Deltas, touched: Touched) -> list[list[Claimed]]:
    """Claim waiting frames for several layers at once: for each (layer, hosts), up to
    len(hosts) frames of that layer, the i-th for hosts[i] = (host id, host name, slots
    granted).  Returns the claims of each layer, in the order asked.  Each layer is asked
    for once per call.

    Compare-and-set: rows are locked (SKIP LOCKED, so supervisors sharing the database take
    different frames) and updated only while still WAITING.  Fewer frames than hosts may come
    back when another supervisor got there first.  One locking read for all layers on
    PostgreSQL, and one write of each kind whatever the number of layers; there, the writes
    are deferred to go with the deltas' (the caller settles them).
    """
    found: dict[int, list[Any]] = defaultdict(list)
    if conn.dialect.name == "postgresql":
        for r in direct.execute(conn, _CLAIM_PG, {"lids": [lay["id"] for lay, _ in wants],
                                                  "ns": [len(h) for _, h in wants],
                                                  "waiting": F.WAITING.value}):
            found[r.layer_id].append(r)
    else:
        for lay, hosts in wants:
            found[lay["id"]] = direct.execute(conn, _CLAIM, {"lid": lay["id"], "n": len(hosts)})
    out: list[list[Claimed]] = []
    moves: list[FrameMove] = []
    attempts: list[dict[str, Any]] = []
    for lay, hosts in wants:
        rows = found.get(lay["id"], ())
        claimed = [Claimed(r.id, r.attempt + 1, r.number, r.frame_end, r.label, h[0], h[1], h[2],
                           lay) for r, h in zip(rows, hosts)]
        out.append(claimed)
        if not claimed:
            continue
        moves += [FrameMove(c.frame_id, lay["id"], lay["job_id"], F.WAITING,
                            next_state(F.WAITING, Event.DISPATCH), r.retries, c.number, c.host_id)
                  for c, r in zip(claimed, rows)]
        attempts += [
            {"frame_id": c.frame_id, "number": c.number, "job_id": lay["job_id"],
             "layer_id": lay["id"], "host_id": c.host_id, "host_name": c.host_name,
             "state": A.RUNNING.value, "slots": c.slots, "memory": lay["memory"],
             "gpus": lay["gpus"], "started_at": now, "reason": "", "rss": 0, "peak_rss": 0,
             "cpu_time": 0.0} for c in claimed]
        deltas.slots(lay["id"], sum(c.slots for c in claimed))
    if not moves:
        return out
    starting = sorted({lay["job_id"] for lay, _ in wants if not lay.get("job_started")}
                      & {m.job_id for m in moves})
    if conn.dialect.name == "postgresql":
        apply_moves(conn, moves, now, deltas, defer=True)
        deltas.defer(conn, _INSERT_ATTEMPTS_PG, {
            **{k: [a[col] for a in attempts] for k, col in _ATTEMPT_KEYS.items()},
            "now": now, "running": A.RUNNING.value})
        if starting:     # the first frame of a job: it started now
            deltas.defer(conn, _JOBS_STARTED_PG, {"now": now, "ids": starting})
    else:
        apply_moves(conn, moves, now, deltas)
        if direct.can_many(conn):
            direct.many_rows(conn, _INSERT_ATTEMPTS_SQLITE, [
                tuple(a[k] for k in _ATTEMPT_COLUMNS) for a in attempts])
        else:
            conn.execute(_INSERT_ATTEMPT, attempts)
        if starting:
            conn.execute(update(Job).where(Job.id.in_(starting), Job.started_at.is_(None))
                         .values(started_at=now))
    touched.add_moves(moves)
    return out


# --- ending attempts -------------------------------------------------------------------------

@dataclass
class Ended:
    """An attempt that ended, as accepted (exactly once) by end_attempts()."""

    attempt_id: str
    host_id: int
    slots: int
    frame_state: FrameState
    memory: int = 0
    gpus: int = 0
    job_id: int = 0


# A look-up by primary key per attempt, whatever the planner's statistics say (a young
# table's make it scan every running attempt otherwise); keys come sorted, so rows are locked
# in key order, as the figure writer takes them: two writers cannot deadlock.
_LOCK_RUNNING_PG = text(
    "SELECT r.* FROM unnest(CAST(:f AS bigint[]), CAST(:n AS integer[])) AS k(f, n)"
    " CROSS JOIN LATERAL (SELECT attempt.frame_id, attempt.number, attempt.host_id,"
    " attempt.slots, attempt.memory, attempt.gpus, frame.state AS frame_state,"
    " frame.attempt AS current, frame.retries, frame.kill_pending, frame.layer_id,"
    " frame.job_id, layer.max_retries FROM attempt JOIN frame ON frame.id = attempt.frame_id"
    " JOIN layer ON layer.id = frame.layer_id WHERE attempt.frame_id = k.f"
    " AND attempt.number = k.n AND attempt.state = :running LIMIT 1"
    " FOR UPDATE OF attempt, frame) AS r")


def _lock_running(conn: Connection, keys: list[tuple[int, int]]):
    if conn.dialect.name == "postgresql":    # one plan whatever the number of keys
        keys = sorted(keys)
        return direct.execute(conn, _LOCK_RUNNING_PG, {"f": [k[0] for k in keys],
                                                       "n": [k[1] for k in keys],
                                                       "running": A.RUNNING.value})
    # By frame (a search of the attempt key's first column), then the numbers asked for: a
    # row-value IN made SQLite scan every attempt ever made, in key order.
    wanted = set(keys)
    return [r for r in direct.execute(conn, _LOCK_RUNNING,
                                      {"frames": sorted({k[0] for k in keys})})
            if (r.frame_id, r.number) in wanted]


_LOCK_RUNNING = (
    select(Attempt.frame_id, Attempt.number, Attempt.host_id, Attempt.slots, Attempt.memory,
           Attempt.gpus,
           Frame.state.label("frame_state"), Frame.attempt.label("current"), Frame.retries,
           Frame.kill_pending, Frame.layer_id, Frame.job_id, Layer.max_retries)
    .join(Frame, Frame.id == Attempt.frame_id).join(Layer, Layer.id == Frame.layer_id)
    .where(Attempt.frame_id.in_(bindparam("frames", expanding=True)),
           Attempt.state == A.RUNNING.value)
    # Locked in key order, as the figure writer updates them: two writers that take the
    # same rows in one order cannot deadlock.
    .order_by(Attempt.frame_id, Attempt.number)
    .with_for_update(of=[Attempt, Frame]))


_END_ATTEMPTS_PG = text(
    "UPDATE attempt SET state = t.s, stopped_at = t.stop, exit_status = t.x,"
    " peak_rss = t.pk, cpu_time = t.cpu, reason = t.why,"
    " progress = CASE WHEN t.s = 'SUCCEEDED' THEN 100 ELSE attempt.progress END FROM unnest("
    "CAST(:f AS bigint[]), CAST(:n AS integer[]), CAST(:s AS text[]),"
    " CAST(:stop AS float8[]), CAST(:x AS integer[]), CAST(:pk AS bigint[]),"
    " CAST(:cpu AS float8[]), CAST(:why AS text[]))"
    " AS t(f, n, s, stop, x, pk, cpu, why)"
    " WHERE attempt.frame_id = t.f AND attempt.number = t.n")
# SQLite: the same write in one statement (see direct.many_rows); each attempt once.
_END_ATTEMPTS_SQLITE = (
    "WITH v(f, n, s, stop, x, pk, cpu, why) AS (VALUES {values})"
    " UPDATE attempt SET state = v.s, stopped_at = v.stop, exit_status = v.x,"
    " peak_rss = v.pk, cpu_time = v.cpu, reason = v.why,"
    " progress = CASE WHEN v.s = 'SUCCEEDED' THEN 100 ELSE attempt.progress END"
    " FROM v WHERE attempt.frame_id = v.f AND attempt.number = v.n")


def end_attempts(conn: Connection, results: dict[tuple[int, int], p.Completion | str], now: float,
                 deltas: Deltas, touched: Touched, policy: "FailurePolicy | None" = None,
                 defer: bool = False, hosts: dict[tuple[int, int], int] | None = None,
                 foreign: list[tuple[int, int]] | None = None) -> list[Ended]:
    """End attempts that are still RUNNING; ignore any already ended (duplicates).

    `results` maps (frame_id, number) to the worker's Completion, or to a reason string when the
    attempt ended without one (host lost, launch refused): such ends never spend a retry.
    With `hosts`, each result counts only from the host that was sent the attempt: `hosts`
    maps each key to the host that reported it, and a key running on another host is left
    running and added to `foreign`.
    With `defer`, PostgreSQL sends the attempt and frame writes with the deltas' (see Deltas):
    the caller settles them.
    """
    if not results:
        return []
    ended, moves, attempt_rows = [], [], []
    failures: dict[tuple[int, int], int] = defaultdict(int)
    reasons: dict[tuple[int, int], str] = {}   # why it never started or failed there, if said
    for r in _lock_running(conn, list(results)):
        key = (r.frame_id, r.number)
        if hosts is not None and hosts.get(key) != r.host_id:
            if foreign is not None:
                foreign.append(key)
            continue
        res = results[key]
        comp = res if isinstance(res, p.Completion) else None
        reason = storable(comp.reason if comp else res)
        if r.kill_pending == "eat":
            astate, event = A.KILLED, Event.KILL_EAT
        elif r.kill_pending == "requeue" or comp is None or reason.startswith("lost"):
            astate, event = (A.KILLED if r.kill_pending else A.LOST), Event.REQUEUE
        elif reason.startswith(LAUNCH_FAILED):
            # The process never started: the host's fault, not the frame's.  No retry is
            # spent, but the host is counted towards the job's bad-host list.
            astate, event = A.LOST, Event.REQUEUE
            failures[(r.job_id, r.host_id)] += 1
            reasons[(r.job_id, r.host_id)] = reason
        elif comp.exit_status == 0:
            astate, event = A.SUCCEEDED, Event.SUCCEED
        else:
            astate = A.FAILED
            event = Event.FAIL_RETRY if r.retries + 1 <= r.max_retries else Event.FAIL_FINAL
            failures[(r.job_id, r.host_id)] += 1
            if reason:      # e.g. the shell found no such command: comparable across hosts
                reasons[(r.job_id, r.host_id)] = reason
        attempt_rows.append({
            "f": r.frame_id, "n": r.number, "s": astate.value,
            "stop": comp.stopped if comp else now,
            "x": comp.exit_status if comp else None,
            "pk": comp.peak_rss if comp else 0, "cpu": comp.cpu_time if comp else 0.0,
            "why": (reason or "")[:1024]})
        frame_state = FrameState(r.frame_state)
        if r.current == r.number and frame_state == F.RUNNING:
            new = next_state(frame_state, event)
            retries = r.retries + (1 if astate == A.FAILED else 0)
            moves.append(FrameMove(r.frame_id, r.layer_id, r.job_id, frame_state, new, retries,
                                   r.number, None, None))
        else:
            new = frame_state
        ended.append(Ended(f"{r.frame_id}.{r.number}", r.host_id, r.slots, new, r.memory, r.gpus,
                           r.job_id))
        deltas.slots(r.layer_id, -r.slots)
        touched.hosts.add(r.host_id)
    pg = conn.dialect.name == "postgresql"
    if attempt_rows and pg:
        values = {k: [r[k] for r in attempt_rows]
                  for k in ("f", "n", "s", "stop", "x", "pk", "cpu", "why")}
        if defer:
            deltas.defer(conn, _END_ATTEMPTS_PG, values)
        else:
            conn.execute(_END_ATTEMPTS_PG, values)
    elif attempt_rows and direct.can_many(conn):
        direct.many_rows(conn, _END_ATTEMPTS_SQLITE, [
            (r["f"], r["n"], r["s"], r["stop"], r["x"], r["pk"], r["cpu"], r["why"])
            for r in attempt_rows])
    elif attempt_rows:
        conn.execute(_END_ATTEMPTS, attempt_rows)
    apply_moves(conn, moves, now, deltas, defer=defer)
    touched.add_moves(moves)
    if failures and policy is not None:
        deltas.flush(conn)      # the policy's reads and writes come after the ends', as ever
        policy.record(conn, failures, now, touched, reasons)
    return ended


@dataclass
class FailurePolicy:
    """Keep a host off a job after `threshold` failures there, for `period` seconds; pause and
    flag a job that every UP host able to run it has failed."""

    threshold: int = 3
    period: float = 600.0
    writes: int = 0     # counts record() calls: cached bans (dispatch.Bans) are stale after one

    def ban(self, conn: Connection, pairs: dict[tuple[int, int], str], now: float,
            touched: Touched) -> None:
        """Keep hosts off jobs at once (a host that cannot run the job at all, e.g. the job's
        user does not exist there): {(job id, host id): the host's reason}."""
        self.record(conn, {pair: self.threshold for pair in pairs}, now, touched, pairs)

    def record(self, conn: Connection, failures: dict[tuple[int, int], int], now: float,
               touched: Touched, reasons: dict[tuple[int, int], str] | None = None) -> None:
        """Count failures of jobs on hosts; `reasons` says why a process never started
        (a refusal, a launch failure).  When every host that can run a job is kept off it,
        the job is paused: for the same refusal everywhere the job is at fault, not the
        hosts (they are not kept off it, and the flag says why); else the flag names the
        bad hosts."""
        self.writes += 1
        reasons = reasons or {}
        banned_jobs = set()
        for (job_id, host_id), n in failures.items():
            row = conn.execute(select(JobHost.failures).where(JobHost.job_id == job_id,
                                                               JobHost.host_id == host_id)
                               .with_for_update()).first()
            total = (row.failures if row else 0) + n
            until = now + self.period if total >= self.threshold else 0.0
            values = {"failures": total, "banned_until": until,
                      "reason": reasons.get((job_id, host_id), "")[:512]}
            if row is None:
                conn.execute(insert(JobHost).values(job_id=job_id, host_id=host_id, **values))
            else:
                conn.execute(update(JobHost).where(JobHost.job_id == job_id,
                                                   JobHost.host_id == host_id).values(**values))
            if until:
                banned_jobs.add(job_id)
        for job_id in banned_jobs:
            # Only hosts that could run the job count: a tagged job whose tagged hosts all
            # failed it is at fault, whatever the untagged hosts could do.
            capable = capable_hosts(conn, job_id)
            banned = set(conn.execute(select(JobHost.host_id).where(
                JobHost.job_id == job_id, JobHost.banned_until > now)).scalars())
            if capable and capable <= banned:
                rows = conn.execute(select(Host.name, JobHost.reason)
                                    .join(JobHost, JobHost.host_id == Host.id)
                                    .where(JobHost.job_id == job_id, Host.id.in_(banned))
                                    .order_by(Host.name)).all()
                names = [r.name for r in rows]
                why = {r.reason for r in rows}
                if len(why) == 1 and (reason := why.pop()):
                    # The same refusal from every host: the job cannot run anywhere as it
                    # is.  Keeping the hosts off it would only hide that.
                    flag = f"{SAME_REFUSAL} ({', '.join(names)[:200]}): {reason}"[:500]
                    conn.execute(delete(JobHost).where(JobHost.job_id == job_id))
                else:
                    flag = ("paused: every UP host that can run this job failed it (bad "
                            "hosts: " + ", ".join(names))[:500] + ")"
                conn.execute(update(Job).where(Job.id == job_id,
                                               Job.state == JobState.ACTIVE.value)
                             .values(state=JobState.PAUSED.value, flagged=flag))
                touched.jobs.add(job_id)


def busy_workers(conn: Connection) -> int:
    """Hosts running at least one frame (each holds one worker licence), farm-wide."""
    return conn.execute(select(func.count(func.distinct(Attempt.host_id)))
                        .where(Attempt.state == A.RUNNING.value)).scalar() or 0


def running_on_hosts(conn: Connection, host_ids: list[int]) -> dict[int, list[Any]]:
    """Attempts the database believes run on each of these hosts."""
    out: dict[int, list[Any]] = defaultdict(list)
    for o in range(0, len(host_ids), 5000):
        for a in conn.execute(
                select(Attempt.host_id, Attempt.frame_id, Attempt.number, Attempt.slots,
                       Attempt.memory, Attempt.gpus)
                .where(Attempt.host_id.in_(host_ids[o:o + 5000]),
                       Attempt.state == A.RUNNING.value)):
            out[a.host_id].append(a)
    return out


def hosts_with_running(conn: Connection) -> list[int]:
    """Hosts the database believes run at least one attempt."""
    return list(conn.execute(select(Attempt.host_id).where(Attempt.state == A.RUNNING.value)
                             .distinct()).scalars())


def running_on_host(conn: Connection, host_id: int) -> list[Any]:
    """Attempts the database believes run on a host (frame_id, number, slots, memory, gpus)."""
    return conn.execute(
        select(Attempt.frame_id, Attempt.number, Attempt.slots, Attempt.memory, Attempt.gpus)
        .where(Attempt.host_id == host_id, Attempt.state == A.RUNNING.value)).all()


STATS_CHUNK = 250     # running-attempt figures per transaction; see update_running_stats


def update_running_stats(engine, stats: list[dict[str, Any]]) -> None:
    """Live RSS / peak / CPU / progress of running attempts, from heartbeats (dicts with f, n,
    rss, pk, cpu and pg, the progress or None: unchanged).  Each chunk of rows is its own short transaction: ending an attempt locks its row,
    and a completion must not wait for thousands of figures to be written first.  PostgreSQL
    gets one statement per chunk over unnested arrays."""
    stats = sorted(stats, key=lambda s: (s["f"], s["n"]))   # lock order: see _lock_running
    for o in range(0, len(stats), STATS_CHUNK):
        chunk = stats[o:o + STATS_CHUNK]
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                relaxed_commit(conn)
                conn.execute(text(
                    "UPDATE attempt SET rss = t.rss, peak_rss = t.pk, cpu_time = t.cpu,"
                    " progress = COALESCE(t.pg, attempt.progress)"
                    " FROM unnest(CAST(:f AS bigint[]), CAST(:n AS integer[]),"
                    " CAST(:rss AS bigint[]), CAST(:pk AS bigint[]), CAST(:cpu AS float8[]),"
                    " CAST(:pg AS smallint[])) AS t(f, n, rss, pk, cpu, pg)"
                    " WHERE attempt.frame_id = t.f"
                    " AND attempt.number = t.n AND attempt.state = :running"),
                    {**{k: array_literal([s.get(k) for s in chunk])
                        for k in ("f", "n", "rss", "pk", "cpu", "pg")},
                     "running": A.RUNNING.value})
                continue
            conn.execute(_RUNNING_STATS, [{"pg": None, **s} for s in chunk])


_AT = Attempt.__table__.c
_RUNNING_STATS = (update(Attempt.__table__)
                  .where(_AT.frame_id == bindparam("f"), _AT.number == bindparam("n"),
                         _AT.state == A.RUNNING.value)
                  .values(rss=bindparam("rss"), peak_rss=bindparam("pk"),
                          cpu_time=bindparam("cpu"),
                          progress=func.coalesce(bindparam("pg", type_=SmallInteger),
                                                 _AT.progress)))


# --- dependencies and job ends ---------------------------------------------------------------

_LAYER_COUNTS = (select(Layer.id, Layer.job_id, Layer.waiting, Layer.running, Layer.depend,
                        Layer.dead).where(Layer.id.in_(bindparam("ids", expanding=True))))


_ATTEMPT_T = Attempt.__table__
_END_ATTEMPTS = (update(_ATTEMPT_T)
                 .where(_ATTEMPT_T.c.frame_id == bindparam("f"),
                        _ATTEMPT_T.c.number == bindparam("n"))
                 .values(state=bindparam("s"), stopped_at=bindparam("stop"),
                         exit_status=bindparam("x"), peak_rss=bindparam("pk"),
                         cpu_time=bindparam("cpu"), reason=bindparam("why"),
                         # done is 100%; an attempt that failed keeps how far it got
                         progress=case((bindparam("s") == A.SUCCEEDED.value, 100),
                                       else_=_ATTEMPT_T.c.progress)))


def settle(conn: Connection, deltas: Deltas, touched: Touched, now: float,
           frame_targets: set[int] | None = None) -> None:
    """Write counter deltas, then let dependents of what completed run, and end finished jobs.

    `frame_targets`, when known, are the layers among those whose frames completed that have
    frame-by-frame dependents: only their frames are looked up (None: look them all up)."""
    counted = deltas.write(conn)
    completed = deltas.completed if frame_targets is None else [
        f for f, lid in zip(deltas.completed, deltas.completed_layers) if lid in frame_targets]
    if completed:
        release_frame_dependents(conn, completed, now, touched)
    jobs = set(touched.jobs)
    if touched.layers:
        layers = counted or []       # PostgreSQL: the counters as the delta write left them
        # Layers that gained running frames are neither complete nor done with their jobs:
        # after claims alone, nothing needs reading.
        busy = deltas.busy()
        jobs -= set(busy.values())
        unread = touched.layers - {r.id for r in layers} - busy.keys()
        if unread:
            layers = [*layers, *direct.execute(conn, _LAYER_COUNTS, {"ids": list(unread)})]
        complete = [r.id for r in layers if not (r.waiting or r.running or r.depend or r.dead)]
        # A job with a layer still busy has not finished: most settles need not ask.
        jobs -= {r.job_id for r in layers if r.waiting or r.running or r.depend or r.dead}
        if complete:
            satisfy(conn, Dependency.target_layer_id.in_(complete)
                    & Dependency.kind.in_(("layer", "job")), now, touched)
    finished = finish_jobs(conn, jobs, now)
    if finished:
        satisfy(conn, Dependency.target_job_id.in_(finished) & (Dependency.kind == "job")
                & Dependency.target_layer_id.is_(None), now, touched)
    # With the change that causes them: a notification is never lost nor sent for a change
    # that rolled back.
    notifications.record(conn, deltas.died, finished, now)


def frame_dependency_targets(conn: Connection, layer_ids: list[int]) -> set[int]:
    """Those of `layer_ids` that some layer depends on frame by frame."""
    out: set[int] = set()
    for o in range(0, len(layer_ids), 5000):
        out.update(conn.execute(select(Dependency.target_layer_id).where(
            Dependency.kind == "frame",
            Dependency.target_layer_id.in_(layer_ids[o:o + 5000])).distinct()).scalars())
    return out


def satisfy(conn: Connection, where, now: float, touched: Touched) -> int:
    """Mark whole-layer dependencies satisfied; release layers with none left."""
    deps = conn.execute(select(Dependency.id, Dependency.layer_id)
                        .where(where, Dependency.satisfied.is_(False))).all()
    if not deps:
        return 0
    conn.execute(update(Dependency).where(Dependency.id.in_([d.id for d in deps]))
                 .values(satisfied=True))
    per_layer: dict[int, int] = defaultdict(int)
    for d in deps:
        per_layer[d.layer_id] += 1
    conn.execute(update(Layer).where(Layer.id == bindparam("lid"))
                 .values(deps_left=Layer.deps_left - bindparam("n"))
                 .execution_options(synchronize_session=False),
                 [{"lid": lid, "n": n} for lid, n in per_layer.items()])
    ready = list(conn.execute(select(Layer.id).where(Layer.id.in_(list(per_layer)),
                                                      Layer.deps_left <= 0)).scalars())
    release_frames(conn, Frame.layer_id.in_(ready), now, touched)
    return len(deps)


def release_frames(conn: Connection, where, now: float, touched: Touched) -> None:
    """DEPEND -> WAITING for frames matching `where` with nothing left to wait for."""
    waiting_layers = select(Layer.id).where(Layer.deps_left <= 0)
    rows = conn.execute(select(Frame.id, Frame.layer_id, Frame.job_id)
                        .where(where, Frame.state == F.DEPEND.value, Frame.deps_left <= 0,
                               Frame.layer_id.in_(waiting_layers))
                        .with_for_update()).all()
    if not rows:
        return
    new = next_state(F.DEPEND, Event.DEPS_MET).value
    deltas = Deltas()
    for o in range(0, len(rows), 5000):
        ids = [r.id for r in rows[o:o + 5000]]
        conn.execute(update(Frame).where(Frame.id.in_(ids)).values(state=new, updated_at=now))
    for r in rows:
        deltas.move(r.layer_id, F.DEPEND, F.WAITING)
        touched.frames.add(r.id)
        touched.jobs.add(r.job_id)
        touched.layers.add(r.layer_id)
    deltas.write(conn)


def release_frame_dependents(conn: Connection, completed: list[int], now: float,
                             touched: Touched) -> None:
    """Frames waiting frame-by-frame on `completed` frames have one thing less to wait for."""
    counts: dict[int, int] = defaultdict(int)
    for o in range(0, len(completed), 5000):
        for frame_id, n in conn.execute(
                select(FrameDep.frame_id, func.count())
                .where(FrameDep.target_frame_id.in_(completed[o:o + 5000]))
                .group_by(FrameDep.frame_id)):
            counts[frame_id] += n
    if not counts:
        return
    conn.execute(update(Frame).where(Frame.id == bindparam("fid"))
                 .values(deps_left=Frame.deps_left - bindparam("n"))
                 .execution_options(synchronize_session=False),
                 [{"fid": f, "n": n} for f, n in counts.items()])
    ids = list(counts)
    for o in range(0, len(ids), 5000):
        release_frames(conn, Frame.id.in_(ids[o:o + 5000]), now, touched)


def finish_jobs(conn: Connection, job_ids: set[int], now: float) -> list[int]:
    """Mark FINISHED the jobs whose every frame succeeded or was eaten; return them."""
    if not job_ids:
        return []
    busy = func.sum(Layer.waiting + Layer.running + Layer.depend + Layer.dead)
    done = conn.execute(select(Layer.job_id).where(Layer.job_id.in_(job_ids))
                        .group_by(Layer.job_id).having(busy == 0)).scalars().all()
    if not done:
        return []
    newly = list(conn.execute(select(Job.id).where(Job.id.in_(done),
                                                    Job.state != JobState.FINISHED.value))
                 .scalars())
    if newly:
        conn.execute(update(Job).where(Job.id.in_(newly))
                     .values(state=JobState.FINISHED.value, finished_at=now))
    return newly
