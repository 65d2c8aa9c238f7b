"""The worker link: registration, heartbeats, completions, refusals, liveness."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import zmq
from sqlalchemy import func, select

from cuefarm import protocol as p
from supervisor import clientapi
from supervisor.store import hosts as host_store
from supervisor.store import work
from supervisor.store.counters import Deltas
from supervisor.store.models import Host, JobHost, parse_attempt_id

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger(__name__)
LOST_AFTER_HEARTBEATS = 2.5     # intervals an attempt may be missing from heartbeats
FIGURES = "heartbeat figures"   # the key of their writes on the figures thread
REFUSAL_BACKOFF = 2.0           # seconds a host that refused a launch is left alone


def handle(sv: "Supervisor", frames: list) -> None:
    """One message from a worker: frames are zmq.Frame (received without copying, so the
    peer's address is known for admission)."""
    if len(frames) != 2:
        sv.errors["malformed"] += 1
        if frames:      # the first part is the peer's route: answer it
            sv.send_worker(frames[0].bytes, p.Error(
                "malformed", f"a worker message is one part, not {len(frames) - 1}"))
        return
    identity, data = frames[0].bytes, frames[1].bytes
    try:
        env, body = p.decode(data, p.MAX_WORKER_MESSAGE, p.WORKER_MESSAGES)
    except p.ProtocolError as exc:
        sv.errors[exc.code] += 1
        log.warning("bad message on the worker link: %s", exc.message)
        sv.send_worker(identity, p.Error(exc.code, exc.message))
        return
    worker = sv.registry.by_identity.get(identity)
    if isinstance(body, p.Register):
        try:
            address = frames[1].get("Peer-Address") or ""
        except (zmq.ZMQError, UnicodeDecodeError):
            address = ""
        sv.registrations.append((identity, body, address))
    elif worker is None:
        # A worker we do not know (we restarted, or it was marked DOWN): it must say what it runs.
        if isinstance(body, p.Complete):
            _take_completions(sv, identity, body)
        sv.send_worker(identity, p.Reregister("unknown worker; register again"))
    elif isinstance(body, p.Heartbeat):
        sv.counters["reports"] += 1
        worker.last_seen = sv.mono()
        worker.load = body.load
        worker.figures = {"load": body.load, "cpu": body.cpu_percent,
                          "free": body.memory_free_mb, "running": body.running,
                          "disk": body.disk_free_mb, "nimby": body.nimby,
                          "draining": body.draining}
        if body.nimby != worker.nimby:
            worker.nimby = body.nimby
            sv.dispatch_needed = True
            sv.note(work.Touched(hosts={worker.host_id}))
        _compare_running(sv, worker, body)
        worker.told_total = worker.total
        sv.send_worker(identity, p.Ack(slots=worker.total))
    elif isinstance(body, p.Complete):
        worker.last_seen = sv.mono()
        _take_completions(sv, identity, body)
    elif isinstance(body, p.Refuse):
        worker.last_seen = sv.mono()
        sv.refusals.append((identity, body.attempt_id, body.reason))
    elif isinstance(body, p.LogReply):
        clientapi.answer_log(sv, body)


def _take_completions(sv: "Supervisor", identity: bytes, body: p.Complete) -> None:
    """Queue completions for the turn's transaction (and note their ids: a heartbeat sent
    before them must not make their attempts look lost)."""
    sv.completions.extend((identity, c) for c in body.completions)
    sv.completing.update(c.attempt_id for c in body.completions)


def _compare_running(sv: "Supervisor", worker, body: p.Heartbeat) -> None:
    """Attempts we believe run on this worker but that it neither runs nor keeps a completion
    for were lost on the way (a Launch or Kill that never arrived): once a few heartbeats in a
    row leave one out, end it as lost so the frame runs again.

    A heartbeat proves an absence only for launches the worker had received when it sent it
    (Launch.seq at or below its launch_seq; ZeroMQ keeps one connection's messages in order):
    a busy worker that has not read its socket yet must not have its frames run twice.  A
    launch no later one ever proves lost is ended after the release window instead."""
    if not worker.running and not worker.missing:
        return
    seen = {r.attempt_id for r in body.running}
    seen.update(body.kept)
    completing = sv.completing     # this turn's, not yet recorded (one set, not a scan)
    mono = sv.mono()
    grace = LOST_AFTER_HEARTBEATS * sv.cfg.heartbeat_interval
    unproven = max(grace, sv.cfg.host_expiry + sv.cfg.release_after)
    for aid in worker.running:
        if aid in seen or aid in completing:
            worker.missing.pop(aid, None)
            continue
        since = worker.missing.setdefault(aid, mono)
        wait = grace if worker.launched.get(aid, 0) <= body.launch_seq else unproven
        if mono - since > wait and aid not in sv.lost_pending:
            key = parse_attempt_id(aid)
            if key:
                log.warning("%s does not run %s (left out of its heartbeats for %.1f s): lost",
                            worker.name, aid, mono - since)
                why = f"lost: {worker.name} does not run it (a launch or kill went astray)"
                sv.lost.append((worker.host_id, key, why))
                sv.lost_pending.add(aid)


class Batch:
    """A turn's completions, refusals and lost attempts, taken off the supervisor, recorded in
    a transaction (alone, or with the turn's dispatch pass), then acknowledged."""

    def __init__(self, completions, refusals, lost) -> None:
        self.completions, self.refusals, self.lost = completions, refusals, lost
        self.results: dict = {}
        self.acks: dict[bytes, dict[str, None]] = {}   # ordered sets: duplicates acked once
        self.cannot: set[str] = set()   # refusals that will not change by retrying the host
        self.ended: list[work.Ended] = []
        self.touched = work.Touched()


def take(sv: "Supervisor") -> Batch | None:
    """The turn's completions, refusals and lost attempts (None: there are none)."""
    if not sv.completions and not sv.refusals and not sv.lost:
        return None
    b = Batch(sv.completions, sv.refusals, sv.lost)
    sv.completions, sv.refusals, sv.lost = [], [], []
    sv.completing = set()
    for _, key, why in b.lost:
        b.results[key] = why
    for identity, c in b.completions:
        b.acks.setdefault(identity, {})[c.attempt_id] = None
        key = parse_attempt_id(c.attempt_id)
        if key:
            b.results[key] = c
    mono = sv.mono()
    for identity, aid, reason in b.refusals:
        key = parse_attempt_id(aid)
        if key:
            b.results[key] = f"lost: refused by the worker: {reason}"[:1000]
            if reason.startswith("user "):
                b.cannot.add(aid)
        w = sv.registry.by_identity.get(identity)
        if w is not None:
            w.refuse_until = mono + REFUSAL_BACKOFF
            sv.wake_at(w.refuse_until)      # the host may take the frame then: look again
    return b


def record(sv: "Supervisor", conn, b: Batch, now: float) -> None:
    """Write the batch in the caller's transaction."""
    deltas, touched = Deltas(), b.touched
    b.ended = work.end_attempts(conn, b.results, now, deltas, touched, sv.failure_policy,
                                defer=True)
    bans = {(e.job_id, e.host_id) for e in b.ended if e.attempt_id in b.cannot}
    if bans:
        deltas.flush(conn)
        sv.failure_policy.ban(conn, bans, now, touched)
    # Frames of layers nobody waits on frame by frame need no dependents looked up.
    cache = sv.layer_cache
    targets = {lid for lid in set(deltas.completed_layers)
               if lid not in cache or cache[lid]["frame_dependents"]}
    work.settle(conn, deltas, touched, now, targets)
    failed = bans or any(isinstance(r, p.Completion) and r.exit_status != 0
                         for r in b.results.values())
    if failed:          # failures may have kept a host off a job for a while
        note_ban_expiry(sv, conn, now)


def release(sv: "Supervisor", b: Batch) -> list[tuple]:
    """Free in the registry the slots of the attempts the recorded batch ends, before the
    transaction commits (so the pass sharing it can fill them); returns what restore() needs
    should the transaction fail."""
    kept = []
    ends = [(e.host_id, e.attempt_id) for e in b.ended]
    ends += [(hid, f"{k[0]}.{k[1]}") for hid, k, _ in b.lost]
    for hid, aid in ends:
        w = sv.registry.by_id.get(hid)
        if w is not None:
            token = w.take_out(aid)
            if token is not None:
                kept.append((w, aid, token))
    return kept


def restore(kept: list[tuple]) -> None:
    for w, aid, token in reversed(kept):
        w.put_back(aid, token)


def failed(sv: "Supervisor", b: Batch) -> None:
    """The transaction failed: nothing is acknowledged, so the workers send their completions
    again; refusals are retried by expiry."""
    log.error("could not record %d completions; the workers will send them again",
              len(b.results))
    sv.refusals.extend(b.refusals)
    sv.lost_pending.difference_update(f"{k[0]}.{k[1]}" for _, k, _ in b.lost)


def committed(sv: "Supervisor", b: Batch) -> None:
    """The batch is durable: free the slots, acknowledge, tell subscribers."""
    for hid, k, _ in b.lost:
        aid = f"{k[0]}.{k[1]}"
        sv.lost_pending.discard(aid)
        w = sv.registry.by_id.get(hid)
        if w is not None:
            w.remove(aid)      # ended now, or already ended: either way not running there
    sv.counters["completions"] += len(b.ended)
    for e in b.ended:
        w = sv.registry.by_id.get(e.host_id)
        if w is not None:
            w.remove(e.attempt_id)
    for identity, ids in b.acks.items():
        sv.send_worker(identity, p.CompleteAck(list(ids)))
    sv.note(b.touched)


def check_liveness(sv: "Supervisor", mono: float) -> None:
    """Mark silent workers DOWN; requeue their frames once the old processes cannot run."""
    down, release = [], []
    for w in sv.registry.by_id.values():
        if w.down_since is None and mono - w.last_seen > sv.cfg.host_expiry:
            sv.registry.disconnect(w, mono)
            down.append(w)
        elif (w.down_since is not None and not w.released
              and mono - w.down_since > sv.cfg.release_after):
            release.append(w)
    if not down and not release:
        return
    now = sv.clock()
    deltas, touched = Deltas(), work.Touched()
    with sv.engine.begin() as conn:
        # Silent here, but maybe connected to another supervisor sharing the database: that
        # one owns it now, and its frames are not ours to release.
        taken = foreign_hosts(sv, conn, [w.host_id for w in down + release])
        if taken:
            for w in down + release:
                if w.host_id in taken:
                    log.info("worker %s is now served by another supervisor", w.name)
                    sv.registry.forget(w)
            down = [w for w in down if w.host_id not in taken]
            release = [w for w in release if w.host_id not in taken]
        host_store.mark_down(conn, [w.host_id for w in down])
        results = {}
        for w in release:
            for a in work.running_on_host(conn, w.host_id):
                results[(a.frame_id, a.number)] = (f"lost: {w.name} down for more than "
                                                   f"{sv.cfg.release_after:g} s")
        work.end_attempts(conn, results, now, deltas, touched)
        work.settle(conn, deltas, touched, now)
    for w in down:
        log.warning("worker %s is DOWN (silent for %.1f s)", w.name, mono - w.last_seen)
        touched.hosts.add(w.host_id)
    for w in release:
        if w.running or results:
            log.warning("released the frames of %s", w.name)
        w.clear()
        w.released = True
    sv.note(touched)
    if results:
        sv.dispatch_needed = True


def tell_totals(sv: "Supervisor", host_ids: set[int]) -> None:
    """Tell connected workers among `host_ids` their slot total when it changed (a lock,
    unlock, ban, slot setting or drain), so rqd itself refuses launches while locked."""
    for hid in host_ids:
        w = sv.registry.by_id.get(hid)
        if w is not None and w.identity is not None and w.told_total != w.total:
            w.told_total = w.total
            sv.send_worker(w.identity, p.Ack(slots=w.total))


def note_ban_expiry(sv: "Supervisor", conn, now: float) -> None:
    """Wake the dispatcher when the earliest bad-host ban still in force ends: a frame that
    only fits on that host would otherwise wait for an unrelated event."""
    until = conn.execute(select(func.min(JobHost.banned_until))
                         .where(JobHost.banned_until > now)).scalar()
    if until:
        sv.wake_at(sv.mono() + (until - now) + 0.01)


def foreign_hosts(sv: "Supervisor", conn, host_ids: list[int]) -> set[int]:
    """Those of `host_ids` that another live supervisor serves: UP under another owner, and
    reported recently (a dead supervisor's hosts go stale and may be taken over)."""
    if not host_ids:
        return set()
    fresh = sv.clock() - sv.stale_after
    rows = conn.execute(select(Host.id, Host.supervisor_id, Host.state, Host.last_seen)
                        .where(Host.id.in_(host_ids))).all()
    return {r.id for r in rows if r.state == "UP" and r.supervisor_id not in ("", None, sv.owner)
            and (r.last_seen or 0) >= fresh}


def adopt_stale(sv: "Supervisor"):
    """Take over hosts UP in the database that nobody reports on any more (their supervisor
    died): they go DOWN here and their frames are released by the usual rule.  The query runs
    on the housekeeping thread; the take-over on the loop."""
    before, engine = sv.clock() - sv.stale_after, sv.engine

    def work():
        with engine.connect() as conn:
            stale = host_store.stale_hosts(conn, before)
            conn.rollback()
        return lambda sv: _adopt(sv, stale) if stale else None
    return work


def _adopt(sv: "Supervisor", stale: list[dict]) -> None:
    mono = sv.mono()
    for h in stale:
        if h["id"] not in sv.registry.by_id:
            log.info("taking over %s: UP but not heard of for a while", h["name"])
            w = sv.registry.get_or_add(h["id"], h["name"])
            w.last_seen = mono - sv.cfg.host_expiry       # DOWN at the next liveness check


def write_figures(sv: "Supervisor", part: int = 0, parts: int = 1) -> None:
    """Write the latest heartbeat figures of the workers that reported since last time, of
    those in slice `part` of `parts` (by host id)."""
    if sv.figures.busy(FIGURES):
        return    # still writing the last slice: these workers' figures wait for their next
    now = sv.clock()
    figures, stats, touched = [], [], work.Touched()
    for w in sv.registry.by_id.values():
        if w.figures is None or w.host_id % parts != part:
            continue
        f, w.figures = w.figures, None
        figures.append({"hid": w.host_id, "seen": now, "load": f["load"], "cpu": f["cpu"],
                        "free": f["free"], "disk": f["disk"], "nimby": f["nimby"],
                        "draining": f["draining"]})
        touched.hosts.add(w.host_id)
        for r in f["running"]:
            key = parse_attempt_id(r.attempt_id)
            if key:
                stats.append({"f": key[0], "n": key[1], "rss": r.rss, "pk": r.peak_rss,
                              "cpu": r.cpu_time})
                touched.frames.add(key[0])
    if not figures:
        return
    engine = sv.engine

    def write():
        with engine.begin() as conn:
            host_store.write_figures(conn, figures)
        work.update_running_stats(engine, stats)
        return lambda sv: sv.note(touched)
    sv.figures.submit(FIGURES, write)
