"""Huge submits, stored off the loop.

Checking and storing a job of a million frames takes seconds, and a submit of 500 small jobs
a second: on the loop, that would hold heartbeats, completions and every other client for as
long.  A submit that costs more than HUGE (its frames, counted roughly from its ranges before
any checking, plus a weight for each job and layer: `rough_cost`), or that comes in a message
of more than HUGE_MESSAGE bytes, is checked and stored on a thread of its own, and answered
when it is stored:

- PostgreSQL: in one transaction, as on the loop (others write beside it); the thread waits
  for the loop's turn to end before each chunk of its Python work on frames (`pace`);
- SQLite (one writer at a time): in slices of submit.SLICE_BATCH frames or of whole jobs, committed
  after every SLICE_WORK seconds of writing, with a pause in which the loop's writes take the
  lock: the loop waits for a slice at most, never for a whole submit.  Meanwhile the jobs are
  paused and flagged STORING, so nothing dispatches them; the last transaction records the
  submission id and makes them what was asked.  A failure deletes what was stored; jobs left
  STORING by a supervisor that died meanwhile are deleted when one starts (forget_unfinished).

The promises of a submit hold: the reply comes only after the commit, a retry with the same
submission id is answered with the first one's job ids (a retry arriving while the first is
stored waits for it), and a job is dispatched only once it is all stored.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from typing import Any, Callable

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cuefarm import protocol as p
from cuefarm.frames import RangeError, count_frames
from cuefarm.spec import SpecError, validate_submission
from cuefarm.states import JobState
from supervisor import access, auditing
from supervisor.background import Background
from supervisor.context import Context
from supervisor.requests import Request, RequestError
from supervisor.store import archive, work
from supervisor.store import notifications as notify_store
from supervisor.store import submit as submit_store

log = logging.getLogger(__name__)
# The characters of frame ranges one submit may have (check_size).
RANGE_TEXT = 100_000
# What a submit may cost on the loop, in frames: beyond it, it is stored off the loop.  A job
# costs about as much to check and store as JOB_COST frames, a layer LAYER_COST (measured on
# both databases: a frame 4-13 us, a layer 1.3-2.1 ms, a job 1.9-3.3 ms), so the loop spends
# at most some 50 ms on a submit.
HUGE = 5_000
# A submit whose message is larger than this many bytes is stored off the loop too, however
# few its frames: its commands and environments are checked and stored as JSON, some 10 ms a
# megabyte.
HUGE_MESSAGE = 1 << 20
JOB_COST = 300
LAYER_COST = 200
# SQLite: after this many seconds of writing, the submit thread commits and pauses SLICE_PAUSE
# seconds, in which the loop's writes take the writer's turn (supervisor.store.engine: the
# threads of this process take turns on it).
SLICE_WORK = 0.02
SLICE_PAUSE = 0.03
# PostgreSQL: the submit thread, between chunks of its Python work on frames, waits for the
# loop's turn to end (at most this long): beside a thread busy in Python, every time the loop
# let go of the GIL (a socket, a statement) it waited up to the switch interval to get it
# back, and turns of 5 ms took 300-700 ms.
PACE_WAIT = 0.05
# Frames (counted from the ranges) from which a submit on PostgreSQL is stored by a child
# process, when the loop gives BigSubmits one (supervisor.submitproc): starting one costs
# some 0.7 s, about what the thread spends on 200,000 frames.
CHILD_FRAMES = 200_000
# The submit thread's nice value (Linux gives each thread its own): on a busy machine, the
# loop's thread, back from a statement, gets a core before this bulk work.
SUBMIT_NICE = 10


def rough_frames(jobs: Any) -> int:
    """About how many frames `jobs` (a submit's raw job dicts) make, from their ranges alone,
    without checking anything: what decides where a submit is stored, nothing else."""
    total = 0
    for job in jobs if isinstance(jobs, list) else []:
        layers = job.get("layers") if isinstance(job, dict) else None
        for layer in layers if isinstance(layers, list) else []:
            try:
                total += count_frames(layer.get("range") if isinstance(layer, dict) else None)
            except RangeError:
                total += 1           # refused when checked
    return total


def check_size(jobs: Any, max_frames: int, max_layers: int, max_per_job: int) -> int:
    """On the loop, before anything is checked or expanded: refuse (RequestError) a submit of
    more than `max_layers` layers, RANGE_TEXT characters of frame ranges or `max_frames`
    frames (counted from its ranges: a few bytes of ranges may ask for billions of frames,
    and a submit is checked and stored whole); else return about how many frames it has.
    A job over `max_per_job` is left to the job's own check, which names its layer."""
    jobs = jobs if isinstance(jobs, list) else []
    # Each job has a layer at least: more jobs than that are refused before walking them.
    count = len(jobs) if len(jobs) > max_layers else sum(map(len, _layer_lists(jobs)))
    if count > max_layers:
        raise RequestError("invalid", f"a submission may have at most {max_layers:,} layers "
                                      f"(max_layers_per_submit); this one has {count:,} in "
                                      f"{len(jobs):,} jobs: submit them in parts", "jobs")
    layers = [layer for listed in _layer_lists(jobs) for layer in listed]
    # Counting a range takes a microsecond for each of its parts: the loop counts no more
    # than RANGE_TEXT characters of them (some 40 ms).
    text = sum(len(layer["range"]) for layer in layers
               if isinstance(layer, dict) and isinstance(layer.get("range"), str))
    if text > RANGE_TEXT:
        raise RequestError("invalid", f"the frame ranges of a submission may total at most "
                                      f"{RANGE_TEXT:,} characters; these total {text:,}: "
                                      "write frames as ranges (1-100, 1-100x2) or submit in "
                                      "parts", "jobs")
    per_job = [rough_frames([job]) for job in jobs]
    if max(per_job, default=0) <= max_per_job and sum(per_job) > max_frames:
        raise RequestError("invalid", f"a submission may have at most {max_frames:,} frames "
                                      f"(max_frames_per_submit); this one has {sum(per_job):,} "
                                      f"in {len(jobs):,} jobs: submit them in parts", "jobs")
    return sum(per_job)


def rough_cost(jobs: Any, frames: int | None = None) -> int:
    """What storing `jobs` (a submit's raw job dicts) costs, in frames: its frames (roughly,
    from their ranges, unless counted already: `frames`) and JOB_COST for each job and
    LAYER_COST for each layer."""
    jobs = jobs if isinstance(jobs, list) else []
    frames = rough_frames(jobs) if frames is None else frames
    return frames + JOB_COST * len(jobs) + LAYER_COST * sum(map(len, _layer_lists(jobs)))


def _layer_lists(jobs: list) -> list[list]:
    """The `layers` lists of a submit's raw job dicts (where they are lists)."""
    return [j["layers"] for j in jobs if isinstance(j, dict) and isinstance(j.get("layers"), list)]


def huge(cx: Context, body: p.Submit, frames: int, size: int = 0) -> bool:
    """Whether this submit of about `frames` frames, in a message of `size` bytes, is stored
    off the loop (by the loop's BigSubmits)."""
    return cx.live.big_submits is not None and (rough_cost(body.jobs, frames) > HUGE
                                                or size > HUGE_MESSAGE)


class BigSubmits:
    """The thread storing huge submits, and the requests waiting for them (on the loop)."""

    def __init__(self, background: Background,
                 child: Callable[[Context, p.Submit, str], tuple] | None = None):
        """`child(cx, body, user)`, when given, stores a submit of CHILD_FRAMES frames or more
        on PostgreSQL in a process of its own (called on the submit thread, answers as
        `store`)."""
        self.background = background
        self.child = child
        self.seq = 0
        # key -> [(route, request id)] waiting for that submit's reply; retries of an unsent
        # submission id join its first request here.
        self.waiting: dict[Any, list[tuple[list[bytes], int]]] = {}
        self.audit: dict[Any, tuple[p.Submit, str, list[bytes]]] = {}
        # Set while the loop waits for something to do, clear during its turns (the loop's),
        # and the thread the loop runs on.
        self.between_turns = threading.Event()
        self.loop_thread: int | None = None

    def pace(self) -> None:
        """On the submit thread: wait for the loop's turn to end, if one is under way.  (On
        the loop's own thread, where a farm without threads stores it, nothing to wait for.)"""
        if threading.get_ident() != self.loop_thread:
            self.between_turns.wait(PACE_WAIT)

    def yield_cpu(self) -> None:
        """On the submit thread: lower its CPU priority to SUBMIT_NICE (not on the loop's
        own thread, nor where threads have no priorities of their own)."""
        if threading.get_ident() == self.loop_thread or not hasattr(os, "setpriority"):
            return
        tid = threading.get_native_id()
        try:
            if os.getpriority(os.PRIO_PROCESS, tid) < SUBMIT_NICE:
                os.setpriority(os.PRIO_PROCESS, tid, SUBMIT_NICE)
        except OSError:
            pass        # not allowed here: it runs at the loop's priority

    def start(self, cx: Context, req: Request, check: Callable[[list], None],
              frames: int) -> None:
        """Store `req`'s submit (of about `frames` frames: check_size's count) off the loop;
        `check(specs)` refuses what the loop would (raises RequestError).  The reply goes out
        when it is stored."""
        body: p.Submit = req.body
        sid = body.submission
        if sid is not None and not (0 < len(sid) <= 64 and sid.isascii() and sid.isprintable()):
            raise RequestError("invalid", "a submission id is 1 to 64 printable ASCII "
                                          "characters", "submission")
        key: Any
        if body.submission is not None:
            key = ("submission", req.user, body.submission)
            if key in self.waiting:           # a retry of one being stored: same answer
                self.waiting[key].append((req.route, req.request_id))
                return
        else:
            self.seq += 1
            key = ("request", self.seq)
        self.waiting[key] = [(req.route, req.request_id)]
        self.audit[key] = (body, req.user, req.route)
        user = req.user
        if (self.child is not None and cx.engine.dialect.name == "postgresql"
                and frames >= CHILD_FRAMES):
            child = self.child
            self.background.submit(key, lambda: child(cx, body, user))
            return
        hidden, policy = access.hidden_projects, cx.policy

        def stored() -> tuple[list[int], work.Touched]:
            self.yield_cpu()
            return _without_gc(lambda: store(cx, body, user, check,
                                             lambda conn: hidden(policy, conn, user),
                                             self.pace))
        self.background.submit(key, stored)

    def collect(self, cx: Context, ready=None) -> None:
        """On the loop: answer the submits stored since the last call (`ready`: as
        Background.collect's)."""
        for key, result, error in self.background.collect(ready):
            if error is not None:
                if isinstance(error, RequestError):
                    cx.live.errors[error.code] += 1
                    reply: p.Body = p.Error(error.code, error.message, error.field)
                else:
                    cx.live.errors["internal"] += 1
                    log.error("storing a submit failed", exc_info=error)
                    reply = p.Error("internal", "internal error storing the submit; see the "
                                                "supervisor log")
            else:
                ids, touched = result
                cx.out.note(touched)
                cx.out.wake()
                reply = p.JobIds(ids)
            body, user, route = self.audit.pop(key)
            auditing.note(cx, "submit", body, user, route, reply)
            for route, request_id in self.waiting.pop(key, []):
                cx.out.reply(route, request_id, reply)


def _without_gc(store: Callable[[], Any]) -> Any:
    """`store()` with the cyclic garbage collector off.  A huge submit holds lists of a
    million frames while it works; each collection meanwhile, on whichever thread it fell
    (the loop's too), walked every one of them (13-43 ms each time), and the work makes no
    reference cycles.  The lists are gone once `store` returns."""
    was = gc.isenabled()
    gc.disable()
    try:
        return store()
    finally:
        if was:
            gc.enable()


def store(cx: Context, body: p.Submit, user: str, check: Callable[[list], None],
          hidden: Callable[[Connection], frozenset[str]],
          pace: Callable[[], None]) -> tuple[list[int], work.Touched]:
    """On the submit thread (or in the child process storing the hugest: see
    supervisor.submitproc): check and store; (job ids, what changed)."""
    t0 = time.monotonic()
    try:
        # Checked whole, but each job's ranges are expanded only when it is stored, and its
        # frame numbers freed once it is (submit_store.prepare): the thread holds one job's.
        specs = validate_submission(body.jobs, cx.cfg.max_frames_per_job, expand=False)
    except SpecError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    check(specs)
    sid, now = body.submission, cx.clock()
    if cx.engine.dialect.name == "sqlite":
        ids = _store_in_slices(cx, specs, user, now, sid, hidden)
    else:
        ids = _store_at_once(cx, specs, user, now, sid, hidden, pace)
    log.info("%s submitted jobs %s (%d frames, stored off the loop in %.1f s)", user, ids,
             rough_frames(body.jobs), time.monotonic() - t0)
    return ids, work.Touched(jobs=set(ids))


def set_rules(cx: Context, conn: Connection, ids: list[int], specs: list) -> None:
    """A job's own notification rules; else its project's; else the supervisor's."""
    defaults = cx.pipeline.default_rules if cx.pipeline is not None else None
    by_project = notify_store.project_rules(conn, [s.project for s in specs
                                                   if s.notify is None])
    notify_store.set_rules(conn, [
        (i, s.notify if s.notify is not None else by_project.get(s.project, defaults))
        for i, s in zip(ids, specs)])


def _store_at_once(cx: Context, specs: list, user: str, now: float, sid: str | None,
                   hidden: Callable[[Connection], frozenset[str]],
                   pace: Callable[[], None]) -> list[int]:
    try:
        with cx.begin() as (conn, staged):
            ids = submit_store.submit(conn, specs, user, now, hidden(conn), sid, pace=pace)
            set_rules(cx, conn, ids, specs)
            staged.note(work.Touched(jobs=set(ids)))
            staged.wake()
        return ids
    except submit_store.SubmitError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    except IntegrityError:
        if sid is None:
            raise
        # The same submission stored meanwhile by a retry on another supervisor: its jobs.
        with cx.engine.connect() as conn:
            return submit_store.submit(conn, [], user, now, frozenset(), sid)


def _store_in_slices(cx: Context, specs: list, user: str, now: float, sid: str | None,
                     hidden: Callable[[Connection], frozenset[str]]) -> list[int]:
    ids: list[int] = []
    with cx.engine.connect() as conn:
        if sid is not None:      # stored already (this is a retry): the first one's jobs
            try:
                first = submit_store.stored_submission(conn, sid, user)
            except submit_store.SubmitError as exc:
                raise RequestError("invalid", exc.message, exc.field) from None
            conn.commit()
            if first is not None:
                return first

        since = [time.monotonic()]

        def between() -> None:
            # After SLICE_WORK seconds of writing: commit, and pause while the loop's writes
            # go between (and the loop has the GIL to itself).
            if time.monotonic() - since[0] >= SLICE_WORK:
                conn.commit()
                time.sleep(SLICE_PAUSE)
                since[0] = time.monotonic()

        try:
            for k, spec in enumerate(specs):
                # A big job's frames are worked out outside a transaction (a million take a
                # fifth of a second): the writer is free for the loop meanwhile.
                if sum(count_frames(layer.range) for layer in spec.layers) >= \
                        submit_store.SLICE_BATCH:
                    conn.commit()
                prepared = submit_store.prepare(spec)
                # One job at a time: each is checked as it is stored.
                ids += submit_store.submit(conn, [spec], user, now, hidden(conn), None,
                                           between, [prepared])
                between()
            conn.commit()
        except submit_store.SubmitError as exc:
            conn.rollback()
            _forget(cx, ids)
            raise RequestError("invalid", exc.message.replace("jobs[0]", f"jobs[{k}]"),
                               exc.field.replace("jobs[0]", f"jobs[{k}]")) from None
        except BaseException:
            conn.rollback()
            _forget(cx, ids)
            raise
    try:
        with cx.begin() as (conn, staged):
            if sid is not None:
                submit_store.record_submission(conn, sid, user, ids, now)
            for i, spec in zip(ids, specs):
                state = JobState.PAUSED if spec.paused else JobState.ACTIVE
                submit_store.finish_storing(conn, i, state.value)
            set_rules(cx, conn, ids, specs)
            staged.note(work.Touched(jobs=set(ids)))
            staged.wake()
    except BaseException:
        _forget(cx, ids)
        raise
    return ids


def _forget(cx: Context, ids: list[int]) -> None:
    """Delete the jobs of a submit that failed: `ids` and any job still being stored (one
    whose slices were committed before its submit failed; submits are stored one at a time)."""
    with cx.engine.begin() as conn:
        archive.delete_jobs(conn, sorted(set(ids) | set(submit_store.half_stored(conn))))


def forget_unfinished(conn: Connection) -> int:
    """Delete the jobs a supervisor was storing in slices when it died (they never were
    answered, so the client submits again); how many."""
    ids = submit_store.half_stored(conn)
    archive.delete_jobs(conn, ids)
    if ids:
        log.warning("deleted %d job(s) left half stored by a supervisor that stopped: %s",
                    len(ids), ids)
    return len(ids)
