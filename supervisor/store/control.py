"""What people do to jobs, frames and hosts: one small helper per command."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from sqlalchemy import Connection, delete, select, update

from cuefarm.states import Event, FrameState, JobState, LockState, next_state, sources
from supervisor.store import depends, jobs
from supervisor.store.counters import Deltas, FrameMove, apply_moves
from supervisor.store.errors import ControlError
from supervisor.store.submit import STORING
from supervisor.store.hostadmin import resolve_hosts
from supervisor.store.models import Attempt, Frame, Host, Job, JobHost
from supervisor.store.work import Touched

F = FrameState


@dataclass
class Outcome:
    count: int = 0
    kills: list[tuple[str, int]] = field(default_factory=list)   # (attempt id, host id)
    touched: Touched = field(default_factory=Touched)
    deltas: Deltas = field(default_factory=Deltas)
    # Settings the live view keeps that changed ("admission", "path maps"): every supervisor
    # sharing the database reads them again.
    reload: list[str] = field(default_factory=list)


def _jobs_exist(conn: Connection, job_ids: list[int], field: str = "job_ids") -> None:
    found = set(conn.execute(select(Job.id).where(Job.id.in_(job_ids))).scalars())
    missing = [j for j in job_ids if j not in found]
    if missing:
        raise ControlError(f"no job with id {missing[0]}", field, "not_found")


def _set_job_state(conn: Connection, job_ids: list[int], old: JobState, new: JobState,
                   out: Outcome) -> None:
    res = conn.execute(update(Job).where(Job.id.in_(job_ids), Job.state == old.value)
                       .values(state=new.value))
    out.count = res.rowcount
    out.touched.jobs.update(job_ids)


def pause(conn: Connection, job_ids: list[int], now: float, out: Outcome) -> None:
    _set_job_state(conn, job_ids, JobState.ACTIVE, JobState.PAUSED, out)


def resume(conn: Connection, job_ids: list[int], now: float, out: Outcome) -> None:
    """Let paused jobs run again; the reason an automatic pause gave is cleared with it.  A job
    still being stored (supervisor.bigsubmit) stays paused: it is not all there yet."""
    storing = set(conn.execute(select(Job.id).where(Job.id.in_(job_ids),
                                                    Job.flagged == STORING)).scalars())
    job_ids = [i for i in job_ids if i not in storing]
    _set_job_state(conn, job_ids, JobState.PAUSED, JobState.ACTIVE, out)
    conn.execute(update(Job).where(Job.id.in_(job_ids), Job.state == JobState.ACTIVE.value,
                                   Job.flagged != "").values(flagged=""))


def set_priority(conn: Connection, job_ids: list[int], priority: int, out: Outcome) -> None:
    out.count = conn.execute(update(Job).where(Job.id.in_(job_ids))
                             .values(priority=priority)).rowcount
    out.touched.jobs.update(job_ids)


def _move_frames(conn: Connection, where, event: Event, now: float, out: Outcome,
                 reset_retries: bool = False) -> None:
    """Move every frame matching `where` and legal for `event`, counters included."""
    legal = [s.value for s in sources(event)]
    rows = conn.execute(select(Frame.id, Frame.layer_id, Frame.job_id, Frame.state,
                               Frame.retries, Frame.attempt)
                        .where(where, Frame.state.in_(legal)).with_for_update()).all()
    moves = [FrameMove(r.id, r.layer_id, r.job_id, F(r.state), next_state(r.state, event),
                       0 if reset_retries else r.retries, r.attempt) for r in rows]
    apply_moves(conn, moves, now, out.deltas)
    out.touched.add_moves(moves)
    out.count += len(moves)


def _kill_running(conn: Connection, where, mode: str, out: Outcome) -> None:
    """Ask for running frames to be killed; `mode` decides their fate when the process ends:
    "eat" (EATEN) or "requeue" (WAITING, no retry spent)."""
    rows = conn.execute(select(Frame.id, Frame.attempt, Frame.host_id, Frame.job_id,
                               Frame.layer_id)
                        .where(where, Frame.state == F.RUNNING.value).with_for_update()).all()
    if not rows:
        return
    conn.execute(update(Frame).where(Frame.id.in_([r.id for r in rows]))
                 .values(kill_pending=mode))
    for r in rows:
        out.kills.append((f"{r.id}.{r.attempt}", r.host_id))
        out.touched.frames.add(r.id)
        out.touched.jobs.add(r.job_id)
    out.count += len(rows)


def kill_jobs(conn: Connection, job_ids: list[int], now: float, out: Outcome) -> None:
    """Kill running frames, eat the rest; the job finishes when its last process has ended."""
    where = Frame.job_id.in_(job_ids)
    _move_frames(conn, where, Event.EAT, now, out)
    _kill_running(conn, where, "eat", out)
    conn.execute(update(Job).where(Job.id.in_(job_ids), Job.state != JobState.FINISHED.value)
                 .values(killed=True, state=JobState.ACTIVE.value))
    out.touched.jobs.update(job_ids)


def retry_jobs(conn: Connection, job_ids: list[int], now: float, out: Outcome) -> None:
    """Dead frames go back to WAITING with their retries reset."""
    _move_frames(conn, (Frame.job_id.in_(job_ids)) & (Frame.state == F.DEAD.value),
                 Event.RETRY, now, out, reset_retries=True)
    depends.hold_blocked(conn, Frame.job_id.in_(job_ids), now, out.touched)
    _reopen(conn, job_ids, out)


def eat_jobs(conn: Connection, job_ids: list[int], now: float, out: Outcome) -> None:
    _move_frames(conn, (Frame.job_id.in_(job_ids)) & (Frame.state == F.DEAD.value),
                 Event.EAT, now, out)


def _reopen(conn: Connection, job_ids: list[int], out: Outcome) -> None:
    if out.count:
        conn.execute(update(Job).where(Job.id.in_(job_ids), Job.state == JobState.FINISHED.value)
                     .values(state=JobState.ACTIVE.value, finished_at=None, killed=False))


def named_frames(conn: Connection, job_id: int, ids: list[int], layer: str | None,
                 numbers: list[int]) -> list[int]:
    """The frames of a job named by id, or by frame number in `layer` (a layer named is
    checked even without numbers); ControlError for a job, id, layer or number the job does
    not have, or for no frames at all."""
    _jobs_exist(conn, [job_id], "job_id")
    ids = list(ids)
    if ids:
        found = set(conn.execute(select(Frame.id).where(Frame.job_id == job_id,
                                                        Frame.id.in_(ids))).scalars())
        missing = [f for f in ids if f not in found]
        if missing:
            raise ControlError(f"job {job_id} has no frame with id {missing[0]}", "frame_ids",
                               "not_found")
    if numbers or layer is not None:
        ids += jobs.frame_ids_for_numbers(conn, job_id, layer, list(numbers))
    if not ids:
        raise ControlError("no frames given", "frame_ids")
    return sorted(set(ids))


def frame_control(conn: Connection, action: str, job_id: int, frame_ids: list[int], now: float,
                  out: Outcome, layer: str | None = None, numbers: list[int] = ()) -> None:
    """retry: finished frames run again, running ones restart; kill: running frames stop and
    wait to run again (no retry spent); eat (or done): give up on the frames, stopping running
    ones; they count as complete for their dependants.
    The frames are `frame_ids` and the frames running `numbers` of `layer`; an id or number
    not in the job is refused."""
    frame_ids = named_frames(conn, job_id, frame_ids, layer, numbers)
    where = (Frame.job_id == job_id) & Frame.id.in_(frame_ids)
    if action == "retry":
        _move_frames(conn, where, Event.RETRY, now, out, reset_retries=True)
        depends.hold_blocked(conn, where, now, out.touched)
        _kill_running(conn, where, "requeue", out)
        _reopen(conn, [job_id], out)
    elif action == "kill":
        _kill_running(conn, where, "requeue", out)
    elif action in ("eat", "done"):
        # Marking frames done is eating them: EATEN is the state a frame reaches without a
        # successful run, and it counts as complete for whatever waits on the frames.  A
        # running frame is killed first and marked done when its process has ended.
        _move_frames(conn, where, Event.EAT, now, out)
        _kill_running(conn, where, "eat", out)
    else:
        raise ControlError(f"unknown frame action {action!r} (retry, kill, eat, done)",
                           "action")


JOB_ACTIONS = {"pause": pause, "resume": resume, "kill": kill_jobs, "retry": retry_jobs,
               "eat": eat_jobs}


def clear_bans(conn: Connection, job_ids: list[int], out: Outcome) -> None:
    """Forget the jobs' bad hosts: every host may run them again at once."""
    conn.execute(delete(JobHost).where(JobHost.job_id.in_(job_ids)))
    out.touched.jobs.update(job_ids)


def job_control(conn: Connection, action: str, job_ids: list[int], value: int | None,
                now: float, out: Outcome, clear_bad_hosts: bool = False) -> None:
    """`clear_bad_hosts` (with retry or resume) forgets the jobs' bad hosts first, so the
    frames run again on the hosts that failed them."""
    if not job_ids:
        raise ControlError("no job ids given", "job_ids")
    _jobs_exist(conn, job_ids)
    if clear_bad_hosts:
        if action not in ("retry", "resume"):
            raise ControlError("clearing bad hosts goes with retry or resume, not "
                               f"{action}", "clear_bans")
        clear_bans(conn, job_ids, out)
    if action == "priority":
        if value is None or isinstance(value, bool):
            raise ControlError("priority needs a whole number", "value")
        set_priority(conn, job_ids, value, out)
        return
    fn = JOB_ACTIONS.get(action)
    if fn is None:
        raise ControlError(f"unknown job action {action!r} "
                           f"({', '.join([*JOB_ACTIONS, 'priority'])})", "action")
    fn(conn, job_ids, now, out)


def kill_running_on_hosts(conn: Connection, host_ids: list[int], out: Outcome) -> None:
    """Purge: kill what runs on these hosts; the frames go back to WAITING, no retry spent."""
    running = select(Attempt.frame_id).where(Attempt.host_id.in_(host_ids),
                                             Attempt.state == "RUNNING")
    _kill_running(conn, Frame.id.in_(running), "requeue", out)


def lock_hosts(conn: Connection, targets: list[str], lock: bool, purge: bool,
               slots: int | None, overrides: Callable[[list[int]], dict[int, float]],
               out: Outcome) -> list[Any]:
    """Lock (all slots, or down to `slots`: a partial lock) or unlock hosts named, matched by
    pattern or by tag:NAME; with purge, their running frames are killed and requeued.  A manual
    lock or unlock beats the lock schedules until the next window edge (`overrides`)."""
    if slots is not None and (isinstance(slots, bool) or not 0 <= slots <= 4096):
        raise ControlError(f"a partial lock leaves 0 to 4096 slots, not {slots}", "slots")
    rows = resolve_hosts(conn, targets)
    ids = [r.id for r in rows]
    until = overrides(ids)
    for hid in ids:
        values = ({"lock": LockState.LOCKED.value, "lock_kind": "manual", "lock_slots": slots}
                  if lock else {"lock": LockState.OPEN.value, "lock_kind": "", "lock_slots": None})
        conn.execute(update(Host).where(Host.id == hid)
                     .values(lock_override_until=until.get(hid, 0.0), **values))
    out.touched.hosts.update(ids)
    if lock and purge:
        kill_running_on_hosts(conn, ids, out)
    out.count = len(ids)
    return rows
