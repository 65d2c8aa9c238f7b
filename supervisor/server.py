"""The supervisor process: three sockets, one loop, batched work per turn.

Each turn drains what arrived on the worker link and the client API, applies the completions
and refusals of the whole turn in one transaction, runs a dispatch pass when something freed
capacity or added work, then publishes events.  Nothing runs on a fixed interval on that path;
timers only cover liveness (host expiry, releasing frames of lost hosts) and writing heartbeat
figures.  Database work off that path (event rows, read-only requests, heartbeat figures,
metrics and metering) runs on `Background` threads; the loop keeps every socket and the live
state, and applies what they hand back.
"""

from __future__ import annotations

import gc
import heapq
import logging
import socket
import sys
import time
import uuid
from collections import Counter
from typing import Any, Callable

import zmq
from sqlalchemy import Engine, select

import cuefarm
from cuefarm import protocol as p
from cuefarm.config import SupervisorConfig
from supervisor import clientapi, dispatch, registration, schedules, workerlink
from supervisor.background import Background
from supervisor.events import Publisher
from supervisor.matching import Matcher
from supervisor.registry import Registry
from supervisor.store import hostadmin
from supervisor.store.engine import migrate
from supervisor.store.models import Attempt, Host
from supervisor.store.work import FailurePolicy, Touched

log = logging.getLogger(__name__)
DRAIN = 5000          # messages taken from one socket per turn at most


SLOW_TASK = 0.1       # seconds; a periodic task holding the loop longer is logged
_NOBLOCK, _NOBLOCK_MORE = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)
# Seconds between writes of one slice of the hosts' heartbeat figures.  Small slices often: a
# write overlapping a dispatch pass slows it (the database and the GIL are shared), and with
# 4,000 hosts a slice a second (800 rows) put 10-20 ms on the passes it met.
FIGURE_SLICE = 0.2
SWITCH_INTERVAL = 0.0005   # seconds; see run()
SLOW_TURN = 0.1       # seconds; a whole loop turn taking longer is logged with its slow steps
# Python's full garbage collection walks every live object: with thousands of workers in the
# registry it held the loop for 100-150 ms several times a minute.  What has lived for a
# while is frozen (left out of collections) every GC_FREEZE seconds, and a full collection
# of everything, frozen too, runs once every GC_FULL seconds.
GC_THRESHOLDS = (5_000, 20, 100)
GC_FREEZE = 60.0
GC_FULL = 3600.0


class Stopwatch:
    """Times each step of a loop turn: the longest turn since the last look is a metric
    (`loop.turn_max`), and a turn longer than SLOW_TURN is logged with its slowest step, so
    whoever sees late acknowledgements knows which part of the loop held them."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self.clock = clock
        self.t0 = self.last = clock()
        self.steps: list[tuple[str, float]] = []
        self.longest = 0.0         # seconds, since take_longest()

    def start_turn(self) -> None:
        self.t0 = self.last = self.clock()
        self.steps.clear()

    def lap(self, step: str) -> None:
        now = self.clock()
        self.steps.append((step, now - self.last))
        self.last = now

    def end_turn(self) -> None:
        took = self.last - self.t0
        self.longest = max(self.longest, took)
        if took > SLOW_TURN:
            worst = sorted(self.steps, key=lambda s: -s[1])[:3]
            log.warning("a loop turn took %.0f ms (%s)", 1000 * took,
                        ", ".join(f"{name} {1000 * t:.0f} ms" for name, t in worst))

    def take_longest(self) -> float:
        out, self.longest = self.longest, 0.0
        return out


def collect_garbage(sv: "Supervisor") -> None:
    """Freeze what survived since the last time; once every GC_FULL seconds, first collect
    everything (cycles among frozen objects included) and log how long that held the loop."""
    now = sv.mono()
    if now >= sv.next_full_gc:
        sv.next_full_gc = now + GC_FULL
        gc.unfreeze()
        t0 = time.perf_counter()
        found = gc.collect()
        log.info("full garbage collection: %d objects in %.0f ms", found,
                 1000 * (time.perf_counter() - t0))
    gc.freeze()


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Supervisor:
    def __init__(self, cfg: SupervisorConfig, engine: Engine,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.cfg = cfg
        self.engine = engine
        self.clock = clock
        self.mono = monotonic
        self.id = uuid.uuid4().hex[:12]
        # Who owns the hosts it serves, in the database: stable across restarts (this machine
        # and port), unlike `id`, which names one run (clients resync when it changes).
        self.owner = f"{socket.gethostname()}:{cfg.port}"[:64]
        # A host UP in the database but not reported on for this long has lost its supervisor.
        self.stale_after = cfg.host_expiry + 2 * cfg.figures_interval
        self.registry = Registry()
        # Launch sequence numbers start from the wall clock in microseconds, so a restarted
        # supervisor's launches are numbered above anything a worker saw from the last run.
        self._launch_seq = time.time_ns() // 1000
        self.matcher = Matcher()
        self.layer_cache: dict[int, dict] = {}      # static layer fields, by layer id
        self.failure_policy = FailurePolicy(cfg.bad_host_failures, cfg.bad_host_period)
        self.bans = dispatch.Bans()                 # bad-host bans in force, cached
        self.errors: Counter[str] = Counter()
        self.dispatch_needed = True
        self.completions: list[tuple[bytes, p.Completion]] = []
        self.completing: set[str] = set()       # attempt ids in `completions`
        self.registrations: list[tuple[bytes, p.Register, str]] = []   # identity, body, address
        self.refusals: list[tuple[bytes, str, str]] = []       # identity, attempt id, reason
        self.lost: list[tuple[int, tuple[int, int], str]] = []  # host, (frame, number), why
        self.lost_pending: set[str] = set()                     # attempt ids in `lost`
        self.hosts_changed: set[int] = set()   # hosts whose slot total may have changed
        self.wakeups: list[float] = []     # heap of monotonic times to run a dispatch pass
        self.pending_logs: dict[int, tuple[list[bytes], int, float]] = {}
        self.log_tokens = 0
        self.next_liveness = 0.0
        self.next_figures = 0.0
        self.figure_slice = 0
        # [next due (monotonic), interval, fn(sv), runs in the background]
        self.periodic: list[list] = []
        self.housekeeping: Background | None = None   # periodic database work, off the loop
        self.reader: Background | None = None         # client requests that only read
        self.reader_seq = 0
        # Event counts since start (dispatched, completions, reports, ...), for metrics.
        self.counters: Counter[str] = Counter()
        # How many workers may hold a worker licence at once (None: no cap); see licensing.
        self.licence_cap: Callable[[], int | None] = lambda: None
        self.path_map_rows: list[dict] = []       # central path rules, cached
        self.admission: dict = {}
        self.ctx = zmq.Context.instance()
        self.client_sock = self.worker_sock = None
        self.publisher: Publisher | None = None
        self.figures: Background | None = None        # heartbeat figures, written off the loop
        self.stopwatch = Stopwatch()
        self.next_full_gc = monotonic() + GC_FULL
        self.stopping = False
        # A byte on this pair wakes the poller: request_stop() writes it from a signal handler.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- set-up -----------------------------------------------------------------------------------

    def bind(self) -> None:
        host = self.cfg.bind
        self.client_sock = self._router(p.MAX_CLIENT_MESSAGE, f"tcp://{host}:{self.cfg.port}")
        self.worker_sock = self._router(p.MAX_WORKER_MESSAGE, f"tcp://{host}:{self.cfg.port + 1}")
        pub = self.ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, 10_000)
        pub.setsockopt(zmq.XPUB_VERBOSER, 1)   # count every subscriber, not distinct topics
        pub.bind(f"tcp://{host}:{self.cfg.port + 2}")
        self.housekeeping = Background(self.ctx, "housekeeping")
        self.figures = Background(self.ctx, "figures")
        self.reader = Background(self.ctx, "reader")
        self.publisher = Publisher(pub, self.id, builder=Background(self.ctx, "events"))

    def _router(self, max_size: int, endpoint: str) -> zmq.Socket:
        s = self.ctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)   # an unroutable send raises instead of vanishing
        # ZeroMQ drops the connection of a peer past MAXMSGSIZE; below that, decode() answers
        # an oversized message with an error reply, so the limit there is twice ours.
        s.setsockopt(zmq.MAXMSGSIZE, 2 * max_size)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.setsockopt(zmq.RCVHWM, 100_000)
        s.bind(endpoint)
        return s

    def start(self) -> None:
        """Migrate the schema and rebuild the live view from the database."""
        migrate(self.engine)
        now = self.mono()
        fresh = self.clock() - self.stale_after
        with self.engine.begin() as conn:
            for h in conn.execute(select(Host.id, Host.name, Host.lock, Host.slots_configured,
                                         Host.supervisor_id, Host.last_seen)
                                  .where(Host.state == "UP")):
                if (h.supervisor_id not in ("", None, self.owner)
                        and (h.last_seen or 0) >= fresh):
                    continue        # another live supervisor serves it: leave it alone
                # They were UP when the last supervisor stopped: give them until expiry to
                # come back and say what they run.
                w = self.registry.get_or_add(h.id, h.name)
                w.slots, w.locked, w.last_seen = h.slots_configured, h.lock == "LOCKED", now
                w.down_since = None
            lost = conn.execute(select(Attempt.host_id).where(Attempt.state == "RUNNING")
                                .distinct()).scalars().all()
            others = [hid for hid in lost if hid not in self.registry.by_id]
            # Frames on DOWN hosts (or hosts gone stale): the release timer starts now, as we
            # cannot know more.  Not those of hosts another supervisor serves.
            taken = workerlink.foreign_hosts(self, conn, others)
            for hid in others:
                if hid not in taken:
                    row = conn.execute(select(Host.name).where(Host.id == hid)).scalar()
                    w = self.registry.get_or_add(hid, row or f"host-{hid}")
                    w.down_since = now
        self.next_liveness = now + self.cfg.host_expiry
        with self.engine.connect() as conn:
            self.path_map_rows = hostadmin.path_map_rows(conn)
            self.admission = hostadmin.admission_policy(conn, self.default_admission())
            conn.rollback()
        with self.engine.connect() as conn:
            workerlink.note_ban_expiry(self, conn, self.clock())
            conn.rollback()
        self.add_periodic(20.0, schedules.apply)
        self.add_periodic(GC_FREEZE, collect_garbage)
        self.add_background(max(1.0, self.cfg.host_expiry), workerlink.adopt_stale)
        from supervisor import billing    # licences, metering, usage, metrics
        billing.attach(self)

    def default_admission(self) -> dict:
        return {"mode": self.cfg.admission_mode, "networks": list(self.cfg.admission_networks),
                "patterns": list(self.cfg.admission_patterns)}

    # -- sending ----------------------------------------------------------------------------------

    def next_launch_seq(self) -> int:
        self._launch_seq += 1
        return self._launch_seq

    def send_worker(self, identity: bytes, body: p.Body) -> bool:
        try:
            # Two plain sends with int flags: send_multipart's enum arithmetic costs more
            # than the sends themselves at thousands of heartbeats a second.
            self.worker_sock.send(identity, _NOBLOCK_MORE)
            self.worker_sock.send(p.encode(body), _NOBLOCK)
            return True
        except zmq.ZMQError as exc:   # EHOSTUNREACH (gone) or EAGAIN (not reading)
            log.warning("cannot send %s to a worker: %s", type(body).__name__, exc)
            return False

    def reply(self, route: list[bytes], request_id: int, body: p.Body) -> None:
        try:
            self.client_sock.send_multipart([*route, p.encode(body, request_id)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.info("client went away before its reply: %s", exc)

    def send_kills(self, kills: list[tuple[str, int]], reason: str = "requested") -> None:
        """Ask workers to kill attempts: [(attempt id, host id)], one message per host."""
        by_host: dict[int, list[str]] = {}
        for aid, hid in kills:
            by_host.setdefault(hid, []).append(aid)
        for hid, ids in by_host.items():
            w = self.registry.by_id.get(hid)
            if w is not None and w.identity is not None:
                self.send_worker(w.identity, p.Kill(ids, reason))

    def wake_at(self, when: float) -> None:
        """Run a dispatch pass at monotonic time `when` (a backoff or ban ends then)."""
        if len(self.wakeups) < 10_000:
            heapq.heappush(self.wakeups, when)

    def note(self, touched: Touched) -> None:
        self.publisher.note(touched)
        self.hosts_changed.update(touched.hosts)

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        # Every socket call releases the GIL; with the default 5 ms switch interval, a busy
        # background thread (event rows, metrics) would make each reacquisition wait that long
        # and heartbeats queue up behind it.  A shorter interval keeps the loop responsive.
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()             # what start() loaded lives as long as the process
        poller = zmq.Poller()
        poller.register(self.client_sock, zmq.POLLIN)
        poller.register(self.worker_sock, zmq.POLLIN)
        poller.register(self.publisher.sock, zmq.POLLIN)
        poller.register(self.housekeeping.wake, zmq.POLLIN)
        poller.register(self.figures.wake, zmq.POLLIN)
        poller.register(self.reader.wake, zmq.POLLIN)
        poller.register(self.publisher.builder.wake, zmq.POLLIN)
        log.info("supervisor %s (cuefarm %s) listening on %s:%d-%d", self.id, cuefarm.__version__,
                 self.cfg.bind, self.cfg.port, self.cfg.port + 2)
        poller.register(self._wake_r, zmq.POLLIN)
        while not self.stopping:
            ready = dict(poller.poll(self._timeout_ms()))
            if self._wake_r.fileno() in ready:
                self._drain_wake()
                if self.stopping:
                    break     # what arrived is left unread: clients and workers ask again
            self.stopwatch.start_turn()
            if self.worker_sock in ready:
                self._drain(self.worker_sock, workerlink.handle, copy=False)
                self.stopwatch.lap("worker messages")
            if self.client_sock in ready:
                self._drain(self.client_sock, clientapi.handle, limit=200)
                self.stopwatch.lap("client requests")
            if self.publisher.sock in ready:
                self.publisher.on_subscription()
            self.turn()
        log.info("supervisor stopping")

    def request_stop(self) -> None:
        """Leave the loop once the turn under way is done.  Safe from a signal handler or
        another thread: it sets a flag and wakes the poller, it never raises into running code
        (an exception raised there would be caught, and swallowed, by whatever it interrupted)."""
        self.stopping = True
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass        # a byte already waits, or we are closing: the loop wakes either way

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(512):
                pass
        except (BlockingIOError, OSError):
            pass

    def add_periodic(self, interval: float, fn: Callable[["Supervisor"], None]) -> None:
        """Run fn(self) on the loop every `interval` monotonic seconds, off the dispatch path
        (housekeeping that acts on the loop's state: lock schedules)."""
        self.periodic.append([self.mono() + interval, interval, fn, False])

    def add_background(self, interval: float,
                       fn: Callable[["Supervisor"], Callable[[], Any] | None]) -> None:
        """Every `interval` seconds, fn(self) runs on the loop and returns the database work to
        do (or None): that runs on the housekeeping thread and may return a callable, run on
        the loop with the supervisor when it is done.  A pass still running when the next is
        due makes that one skip."""
        self.periodic.append([self.mono() + interval, interval, fn, True])

    def _run_periodic(self, now: float) -> None:
        for task in self.periodic:
            if now >= task[0]:
                task[0] = now + task[1]
                fn, background = task[2], task[3]
                if background and self.housekeeping.busy(fn):
                    continue
                started = self.mono()
                try:
                    out = fn(self)
                    if background and out is not None:
                        self.housekeeping.submit(fn, out)
                except Exception:   # housekeeping must not stop dispatch
                    self.errors["internal"] += 1
                    log.exception("periodic task %s failed", _name(fn))
                took = self.mono() - started
                if took > SLOW_TASK:
                    log.warning("periodic task %s held the loop for %.0f ms", _name(fn),
                                1000 * took)

    def _apply_background(self, fn, result, error: BaseException | None) -> None:
        if error is not None:
            self.errors["internal"] += 1
            log.error("periodic task %s failed", _name(fn), exc_info=error)
        elif callable(result):
            try:
                result(self)
            except Exception:
                self.errors["internal"] += 1
                log.exception("periodic task %s failed", _name(fn))

    def turn(self) -> None:
        """Everything after reading: batched writes, dispatch, timers, events."""
        lap = self.stopwatch.lap
        for bg in (self.housekeeping, self.figures):
            for fn, result, error in bg.collect():
                self._apply_background(fn, result, error)
        for _, result, error in self.reader.collect():
            if error is not None:     # serve() answers errors itself: this is a bug
                self.errors["internal"] += 1
                log.error("reader thread failed", exc_info=error)
            elif result[2] is not None:
                self.reply(*result)
        lap("background results")
        registration.flush(self)
        lap("registrations")
        if self.wakeups and self.wakeups[0] <= self.mono():
            while self.wakeups and self.wakeups[0] <= self.mono():
                heapq.heappop(self.wakeups)
            self.dispatch_needed = True
        if self.hosts_changed:
            changed, self.hosts_changed = self.hosts_changed, set()
            workerlink.tell_totals(self, changed)
        # The turn's completions and its dispatch pass share one transaction: the slots they
        # free are filled in it.
        batch = workerlink.take(self)
        if batch is not None or self.dispatch_needed:
            self.dispatch_needed = False
            dispatch.run_pass(self, batch)
        lap("completions and dispatch")
        now = self.mono()
        if now >= self.next_liveness:
            self.next_liveness = now + 1.0
            workerlink.check_liveness(self, now)
            clientapi.expire_log_requests(self, now)
        if now >= self.next_figures:
            # One slice of the hosts at a time, each written once per figures_interval: a
            # thousand rows a second in small writes rather than five thousand at once.
            slices = max(1, round(self.cfg.figures_interval / FIGURE_SLICE))
            self.next_figures = now + self.cfg.figures_interval / slices
            self.figure_slice = (self.figure_slice + 1) % slices
            workerlink.write_figures(self, self.figure_slice, slices)
        lap("timers")
        self._run_periodic(now)
        lap("housekeeping")
        self.publisher.send_built()
        self.publisher.flush(self.engine, now)
        lap("events")
        self.stopwatch.end_turn()

    def _drain(self, sock: zmq.Socket, handler, limit: int = DRAIN, copy: bool = True) -> None:
        for _ in range(limit):
            try:
                if copy:
                    frames = sock.recv_multipart(zmq.NOBLOCK)
                else:               # Frames: the parts of one message, read by `more`
                    frame = sock.recv(_NOBLOCK, copy=False)
                    frames = [frame]
                    while frame.more:
                        frame = sock.recv(_NOBLOCK, copy=False)
                        frames.append(frame)
            except zmq.Again:
                return
            try:
                handler(self, frames)
            except Exception:   # a bug handling one message must not take the farm down
                self.errors["internal"] += 1
                log.exception("error handling a message")

    def _timeout_ms(self) -> int:
        if (self.dispatch_needed or self.completions or self.refusals or self.registrations
                or self.lost):
            return 0
        now = self.mono()
        due = [self.next_liveness - now, self.next_figures - now,
               *(task[0] - now for task in self.periodic)]
        if self.wakeups:
            due.append(self.wakeups[0] - now)
        ev = self.publisher.due_in(now)
        if ev is not None:
            due.append(ev)
        return max(0, int(min(due) * 1000) + 1)

    def close(self, grace: float = 2.0) -> None:
        """Close the sockets; give the background threads `grace` seconds in all to finish
        the piece they are on (each is one transaction: one cut short is rolled back)."""
        deadline = time.monotonic() + grace
        for bg in (self.housekeeping, self.figures, self.reader,
                   self.publisher and self.publisher.builder):
            if bg is not None:
                bg.close(max(0.0, deadline - time.monotonic()))
        for s in (self.client_sock, self.worker_sock, self.publisher and self.publisher.sock):
            if s is not None:
                s.close(0)
        self._wake_r.close()
        self._wake_w.close()
