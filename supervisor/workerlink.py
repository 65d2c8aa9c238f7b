"""The worker link: what each worker message means, liveness, and the figures heartbeats bring.

Messages are handled one at a time on the loop; what must be written goes to the intake
(completions, refusals, lost attempts, registrations) and is recorded once per turn.
"""

from __future__ import annotations

import logging
from typing import Callable

import zmq

from cuefarm import protocol as p
from supervisor import farmbus, trust
from supervisor.context import Context
from supervisor.registry import Worker
from supervisor.store import bus, hosthistory
from supervisor.store import hosts as host_store
from supervisor.store import work
from supervisor.store.counters import Deltas
from supervisor.store.models import parse_attempt_id

log = logging.getLogger(__name__)
LOST_AFTER_HEARTBEATS = 2.5     # intervals an attempt may be missing from heartbeats


def handle(cx: Context, frames: list) -> None:
    """One message from a worker: frames are zmq.Frame (received without copying, so the
    peer's address is known for admission)."""
    live, out = cx.live, cx.out
    if len(frames) != 2:
        live.errors["malformed"] += 1
        if frames:      # the first part is the peer's route: answer it
            out.send(frames[0].bytes, p.Error(
                "malformed", f"a worker message is one part, not {len(frames) - 1}"))
        return
    identity, data = frames[0].bytes, frames[1].bytes
    worker = live.registry.by_identity.get(identity)
    # With keys, the key its connection authenticated with says which host it is (None: a
    # revoked key or a person's, which get nothing; "": a key not admitted yet, pending).
    public = trust.user_id(frames[1]) if cx.gate is not None else ""
    host = cx.gate.worker(public) if cx.gate is not None else ""
    if host is None:
        live.errors["unauthenticated"] += 1
        return
    try:
        env, body = p.decode(data, p.MAX_WORKER_MESSAGE, p.WORKER_MESSAGES)
    except p.ProtocolError as exc:
        live.errors[exc.code] += 1
        log.warning("bad message on the worker link: %s", exc.message)
        if cx.gate is None or worker is not None:
            out.send(identity, p.Error(exc.code, exc.message))
        return
    if cx.gate is not None:
        # A pending key may only ask to register; a bound one speaks for its own host only.
        if (not host and not isinstance(body, p.Register)) or (
                worker is not None and host and worker.name != host):
            live.errors["unauthenticated"] += 1
            return
        if isinstance(body, p.Register):
            live.worker_keys[identity] = public
    if isinstance(body, p.Register):
        try:
            address = frames[1].get("Peer-Address") or ""
        except (zmq.ZMQError, UnicodeDecodeError):
            address = ""
        cx.intake.register(identity, body, address)
    elif worker is None:
        # A worker we do not know (we restarted, or it was marked DOWN): it must say what it runs.
        if isinstance(body, p.Complete):
            cx.intake.complete(identity, body.completions)
        out.send(identity, p.Reregister("unknown worker; register again"))
    elif isinstance(body, p.Heartbeat):
        live.counters["reports"] += 1
        worker.last_seen = cx.mono()
        worker.load = body.load
        worker.figures = {"load": body.load, "cpu": body.cpu_percent,
                          "free": body.memory_free_mb, "running": body.running,
                          "disk": body.disk_free_mb, "nimby": body.nimby,
                          "draining": body.draining}
        if body.nimby != worker.nimby:
            worker.nimby = body.nimby
            out.wake()
            out.note(work.Touched(hosts={worker.host_id}))
        _compare_running(cx, worker, body)
        worker.told_total = worker.total
        out.send(identity, p.Ack(slots=worker.total))
    elif isinstance(body, p.Complete):
        worker.last_seen = cx.mono()
        cx.intake.complete(identity, body.completions)
    elif isinstance(body, p.Refuse):
        worker.last_seen = cx.mono()
        cx.intake.refuse(identity, body.attempt_id, body.reason)
    elif isinstance(body, p.LogReply):
        relayed = live.logs.forward(body)
        if relayed is not None:        # asked by another supervisor: back it goes
            supervisor, pieces = relayed
            with cx.begin() as (_, staged):
                for piece in pieces:
                    staged.tell_farm(to=supervisor, log_piece=piece)
            return
        answer = live.logs.answer(body)
        if answer is not None:
            out.reply(*answer)


def _compare_running(cx: Context, worker: Worker, body: p.Heartbeat) -> None:
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
    intake = cx.intake
    completing = intake.completing     # this turn's, not yet recorded (one set, not a scan)
    mono = cx.mono()
    cfg = cx.cfg
    grace = LOST_AFTER_HEARTBEATS * cfg.heartbeat_interval
    unproven = max(grace, cfg.host_expiry + cfg.release_after)
    for aid in worker.running:
        if aid in seen or aid in completing:
            worker.missing.pop(aid, None)
            continue
        since = worker.missing.setdefault(aid, mono)
        wait = grace if worker.launched.get(aid, 0) <= body.launch_seq else unproven
        if mono - since > wait and aid not in intake.lost_pending:
            key = parse_attempt_id(aid)
            if key:
                log.warning("%s does not run %s (left out of its heartbeats for %.1f s): lost",
                            worker.name, aid, mono - since)
                intake.lose(worker.host_id, key, f"lost: {worker.name} does not run it (a "
                                                 "launch or kill went astray)")


def check_liveness(cx: Context, mono: float) -> None:
    """Mark silent workers DOWN; requeue their frames once the old processes cannot run."""
    registry, cfg = cx.live.registry, cx.cfg
    down, release = [], []
    for w in registry.by_id.values():
        if w.down_since is None and mono - w.last_seen > cfg.host_expiry:
            registry.disconnect(w, mono)
            down.append(w)
        elif (w.down_since is not None and not w.released
              and mono - w.down_since > cfg.release_after):
            release.append(w)
    if not down and not release:
        return
    now = cx.clock()
    deltas, touched = Deltas(), work.Touched()
    with cx.begin() as (conn, out):
        # Silent here, but maybe connected to another supervisor sharing the database: that
        # one owns it now, and its frames are not ours to release.
        taken = foreign_hosts(cx, conn, [w.host_id for w in down + release])
        if taken:
            for w in down + release:
                if w.host_id in taken:
                    log.info("worker %s is now served by another supervisor", w.name)
                    registry.forget(w)
            down = [w for w in down if w.host_id not in taken]
            release = [w for w in release if w.host_id not in taken]
        host_store.mark_down(conn, [w.host_id for w in down])
        results = {}
        for w in release:
            for a in work.running_on_host(conn, w.host_id):
                results[(a.frame_id, a.number)] = (f"lost: {w.name} down for more than "
                                                   f"{cfg.release_after:g} s")
        work.end_attempts(conn, results, now, deltas, touched)
        work.settle(conn, deltas, touched, now)
        touched.hosts.update(w.host_id for w in down)
        out.note(touched)
        if results:
            out.wake()
    for w in down:
        log.warning("worker %s is DOWN (silent for %.1f s)", w.name, mono - w.last_seen)
    for w in release:
        if w.running or results:
            log.warning("released the frames of %s", w.name)
        w.clear()
        w.released = True


def tell_totals(cx: Context, host_ids: set[int]) -> None:
    """Tell connected workers among `host_ids` their slot total when it changed (a lock,
    unlock, ban, slot setting or drain), so rqd itself refuses launches while locked."""
    for hid in host_ids:
        w = cx.live.registry.by_id.get(hid)
        if w is not None and w.identity is not None and w.told_total != w.total:
            w.told_total = w.total
            cx.out.send(w.identity, p.Ack(slots=w.total))


def foreign_hosts(cx: Context, conn, host_ids: list[int]) -> set[int]:
    """Those of `host_ids` that another live supervisor serves: UP under another owner, and
    reported recently (a dead supervisor's hosts go stale and may be taken over)."""
    if not host_ids:
        return set()
    return host_store.served_elsewhere(conn, host_ids, cx.owner, cx.clock() - cx.stale_after)


def adopt_stale(cx: Context):
    """Take over hosts UP in the database that nobody reports on any more (their supervisor
    died): they go DOWN here and their frames are released by the usual rule.  The query runs
    on the housekeeping thread; the take-over on the loop."""
    before, engine = cx.clock() - cx.stale_after, cx.engine

    def read():
        with engine.connect() as conn:
            stale = host_store.stale_hosts(conn, before)
            conn.rollback()
        return lambda cx: _adopt(cx, stale) if stale else None
    return read


def _adopt(cx: Context, stale: list[dict]) -> None:
    registry, mono = cx.live.registry, cx.mono()
    for h in stale:
        if h["id"] not in registry.by_id:
            log.info("taking over %s: UP but not heard of for a while", h["name"])
            w = registry.get_or_add(h["id"], h["name"])
            w.last_seen = mono - cx.cfg.host_expiry       # DOWN at the next liveness check


def figures_work(cx: Context, part: int = 0, parts: int = 1) -> Callable | None:
    """The write of the latest heartbeat figures of the workers that reported since last
    time, of those in slice `part` of `parts` (by host id); None when there are none.  It runs
    off the loop and hands back the rows it changed."""
    now = cx.clock()
    figures, stats, touched, samples = [], [], work.Touched(), []
    step = max(1.0, cx.cfg.host_history_step)
    bucket = now - now % step
    for w in cx.live.registry.by_id.values():
        if w.figures is None or w.host_id % parts != part:
            continue
        f, w.figures = w.figures, None
        if w.sampled != bucket:     # one point of history per host per step
            w.sampled = bucket
            samples.append({"hid": w.host_id, "t": bucket, "load": float(f["load"]),
                            "mem": max(0, w.memory_mb - f["free"]),
                            "running": len(f["running"])})
        figures.append({"hid": w.host_id, "seen": now, "load": f["load"], "cpu": f["cpu"],
                        "free": f["free"], "disk": f["disk"], "nimby": f["nimby"],
                        "draining": f["draining"]})
        touched.hosts.add(w.host_id)
        for r in f["running"]:
            key = parse_attempt_id(r.attempt_id)
            if key:
                stats.append({"f": key[0], "n": key[1], "rss": r.rss, "pk": r.peak_rss,
                              "cpu": r.cpu_time, "pg": r.progress})
                touched.frames.add(key[0])
    if not figures:
        return None
    engine = cx.engine
    keep_from = now - cx.cfg.host_history_hours * 3600.0
    notices = (farmbus.rows_notices(cx.id, touched.hosts, touched.frames)
               if bus.shared(engine) else [])

    def write():
        with engine.begin() as conn:
            host_store.write_figures(conn, figures)
            if samples:
                hosthistory.write_samples(conn, samples)
                hosthistory.prune(conn, keep_from)
        work.update_running_stats(engine, stats)
        if notices:      # subscribers of the other supervisors see these hosts' figures too
            with engine.begin() as conn:
                for n in notices:
                    bus.announce(conn, n)
        return lambda cx: cx.out.note(touched)
    return write
