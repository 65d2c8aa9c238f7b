"""The loop: sockets, poller, timers, background threads and the stop flag, and nothing else.

Each turn drains what arrived on the worker link and the client API, registers the workers
that asked, records the turn's completions in the dispatch pass's transaction, runs the
timers, then carries out the effects the handlers left in the outbox and publishes events.
Nothing runs on a fixed interval on the dispatch path; timers only cover liveness, heartbeat
figures and housekeeping.  Database work off that path runs on `Background` threads, which
hand back callables the loop applies.  A signal sets the stop flag and wakes the poller: the
turn under way finishes, then the loop returns.
"""

from __future__ import annotations

import gc
import heapq
import logging
from collections import deque
import socket
import sys
import threading
import time
from typing import Any, Callable

import zmq

from cuefarm import openfiles
from cuefarm import protocol as p
from supervisor import (access, auditing, bigsubmit, clientapi, dispatch, farmlink,
                        registration, submitproc, trust, workerlink)
from supervisor.background import Background
from supervisor.context import Context
from supervisor.events import Publisher
from supervisor.store import bus
from supervisor.store.work import Touched

log = logging.getLogger(__name__)
DRAIN = 5000          # messages taken from one socket per turn at most
CLIENT_DRAIN = 200    # requests served per turn at most (round-robin over clients)
CLIENT_READ = 2000    # requests read off the client socket per turn at most
# Per client connection: requests waiting here at most (beyond, the client is told to wait for
# its replies), and requests that only read handed to the reader thread at once.  One client's
# flood of requests then slows that client only.
PEER_QUEUE = 1000
PEER_QUEUE_BYTES = 32 * 1024 * 1024
PEER_READS = 4
SLOW_TASK = 0.1       # seconds; a periodic task holding the loop longer is logged
_NOBLOCK, _NOBLOCK_MORE = int(zmq.NOBLOCK), int(zmq.NOBLOCK | zmq.SNDMORE)
# Seconds between writes of one slice of the hosts' heartbeat figures.  Small slices often: a
# write overlapping a dispatch pass slows it (the database and the GIL are shared), and with
# 4,000 hosts a slice a second (800 rows) put 10-20 ms on the passes it met.
FIGURE_SLICE = 0.2
FIGURES = "heartbeat figures"   # the key of their writes on the figures thread
SWITCH_INTERVAL = 0.0001   # seconds; see run()
# Connections the kernel holds for each listening socket until ZeroMQ accepts them.  ZeroMQ's
# default is 100: thousands of workers reconnecting at once (a supervisor restarted) overflowed
# it, the kernel dropped their connection requests, and each one dropped waited for TCP to try
# again, 1, 3, 7, 15, 31 s later (5,000 workers took 4 s to register in some runs, 30 in
# others).  The kernel takes at most net.core.somaxconn of it.
LISTEN_BACKLOG = 8192
SLOW_TURN = 0.1       # seconds; a whole loop turn taking longer is logged with its slow steps
SUBMIT_GRACE = 20.0   # seconds a stopping supervisor gives huge submits being stored to finish
# Python's full garbage collection walks every live object: with thousands of workers in the
# registry it held the loop for 100-150 ms several times a minute.  What has lived for a
# while is frozen (left out of collections) every GC_FREEZE seconds, and a full collection
# of everything, frozen too, runs once every GC_FULL seconds.
# Seconds: on a database shared with other supervisors, a dispatch pass at least this often,
# whatever the farm bus said (it wakes the dispatcher at once; this covers a notice lost while
# its connection was down).
FARM_PASS = 2.0
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
        self.committing = 0.0      # seconds of this turn spent in commits, on the loop's thread
        self.cpu0 = 0.0            # the loop thread's CPU time when the turn started
        self.thread = threading.get_ident()

    def start_turn(self) -> None:
        self.t0 = self.last = self.clock()
        self.cpu0 = time.thread_time()
        self.steps.clear()
        self.committing = 0.0

    def note_commit(self, seconds: float) -> None:
        """A commit took `seconds` (Context.on_commit): counted if it was the loop's."""
        if threading.get_ident() == self.thread:
            self.committing += seconds

    def lap(self, step: str) -> None:
        now = self.clock()
        self.steps.append((step, now - self.last))
        self.last = now

    def end_turn(self) -> None:
        took = self.last - self.t0
        self.longest = max(self.longest, took)
        if took > SLOW_TURN:
            worst = sorted(self.steps, key=lambda s: -s[1])[:3]
            log.warning("a loop turn took %.0f ms (%s; commits %.0f ms, on a CPU %.0f ms)",
                        1000 * took,
                        ", ".join(f"{name} {1000 * t:.0f} ms" for name, t in worst),
                        1000 * self.committing, 1000 * (time.thread_time() - self.cpu0))

    def take_longest(self) -> float:
        out, self.longest = self.longest, 0.0
        return out


class GarbageCollector:
    """Freezes what survived since the last time; once every GC_FULL seconds, first collects
    everything (cycles among frozen objects included) and logs how long that held the loop."""

    def __init__(self, mono: Callable[[], float]):
        self.mono = mono
        self.next_full = mono() + GC_FULL

    def __call__(self, cx: Context | None = None) -> None:
        now = self.mono()
        if now >= self.next_full:
            self.next_full = now + GC_FULL
            gc.unfreeze()
            t0 = time.perf_counter()
            found = gc.collect()
            log.info("full garbage collection: %d objects in %.0f ms", found,
                     1000 * (time.perf_counter() - t0))
        gc.freeze()


def _check_somaxconn(path: str = "/proc/sys/net/core/somaxconn") -> int | None:
    """Warn when the kernel holds fewer waiting connections than a farm reconnecting at once
    needs (see LISTEN_BACKLOG); the kernel's limit, None where it cannot be read."""
    try:
        with open(path) as f:
            most = int(f.read())
    except (OSError, ValueError):
        return None
    if most < 1024:
        log.warning("net.core.somaxconn is %d: at most %d workers reconnecting at once are "
                    "held until accepted, the rest try again seconds later; raise it (sysctl "
                    "-w net.core.somaxconn=%d) on a farm of thousands", most, most,
                    LISTEN_BACKLOG)
    return most


def _name(fn) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Loop:
    def __init__(self, cx: Context, threads: bool = True):
        """With `threads` False, background work runs on the loop's own thread as it is
        submitted (an in-process test farm that steps the loop by hand)."""
        self.cx = cx
        self.threads = threads
        self.ctx = zmq.Context.instance()
        self.client_sock = self.worker_sock = None
        self.monitors: dict[zmq.Socket, str] = {}    # with keys: failed handshakes, per socket
        self.ready: dict | None = None    # what the last poll found readable (None: no poll)
        self.publisher: Publisher | None = None
        self.housekeeping: Background | None = None   # periodic database work
        self.figures: Background | None = None        # heartbeat figures
        self.reader: Background | None = None         # client requests that only read
        self.big_submits: bigsubmit.BigSubmits | None = None   # huge submits being stored
        self.reader_seq = 0
        # Client requests waiting, per connection (its routing id), served round-robin.
        self.waiting: dict[bytes, deque[list[bytes]]] = {}
        self.waiting_bytes: dict[bytes, int] = {}
        self.turns: deque[bytes] = deque()
        self.reads: dict[bytes, int] = {}          # per connection: reads on the reader thread
        self.read_peer: dict[int, bytes] = {}      # reader key -> its connection
        self.serving: bytes = b""                  # the connection of the request being served
        self.dispatch_needed = True
        self.hosts_changed: set[int] = set()   # hosts whose slot total may have changed
        self.wakeups: list[float] = []     # heap of monotonic times to run a dispatch pass
        self.next_liveness = 0.0
        self.next_figures = 0.0
        self.figure_slice = 0
        # [next due (monotonic), interval, fn(cx), runs in the background]
        self.periodic: list[list] = []
        self.stopwatch = Stopwatch()
        cx.on_commit = self.stopwatch.note_commit
        self.stopping = False
        self.poller: zmq.Poller | None = None    # made at the first step
        # Notices of the other supervisors sharing the database (PostgreSQL), and when this
        # one last ran a dispatch pass on its own account (see FARM_PASS).
        self.listener: bus.Listener | None = None
        self.next_farm_pass = 0.0
        # A byte on this pair wakes the poller: request_stop() writes it from a signal handler.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- set-up -----------------------------------------------------------------------------------

    def bind(self, endpoints: tuple[str, str, str] | None = None) -> None:
        """Listen on the configured address (client API, worker link, events on ports P, P+1,
        P+2), or on the three `endpoints` given."""
        cfg = self.cx.cfg
        if endpoints is None:
            endpoints = tuple(f"tcp://{cfg.bind}:{cfg.port + i}" for i in range(3))
        _check_somaxconn()
        openfiles.lift_limit()      # before anyone can connect
        gate = self.cx.gate
        self.client_sock = self._router(p.MAX_CLIENT_REQUEST, endpoints[0], trust.CLIENT)
        self.worker_sock = self._router(p.MAX_WORKER_MESSAGE, endpoints[1], trust.WORKER)
        pub = self.ctx.socket(zmq.XPUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, 10_000)
        pub.setsockopt(zmq.XPUB_VERBOSER, 1)   # count every subscriber, not distinct topics
        pub.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
        if gate is not None:
            gate.secure(pub, trust.EVENTS)
            pub.setsockopt(zmq.XPUB_MANUAL, 1)     # each subscriber gets its view's topic
        pub.bind(endpoints[2])
        if gate is not None:
            # Connections that could not agree on security at all (no key: no CURVE) never
            # reach the authenticator: each socket's monitor reports them, to be counted.
            self.monitors = {
                s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                                     | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): domain
                for s, domain in ((self.client_sock, trust.CLIENT),
                                  (self.worker_sock, trust.WORKER), (pub, trust.EVENTS))}
        self.housekeeping = Background(self.ctx, "housekeeping", self.threads)
        self.figures = Background(self.ctx, "figures", self.threads)
        self.reader = Background(self.ctx, "reader", self.threads)
        self.big_submits = bigsubmit.BigSubmits(Background(self.ctx, "submits", self.threads),
                                                submitproc.store if self.threads else None)
        self.cx.live.big_submits = self.big_submits
        self.publisher = Publisher(pub, self.cx.id,
                                   builder=Background(self.ctx, "events", self.threads),
                                   hidden_for=self._hidden_for if gate is not None else None)
        if bus.shared(self.cx.engine):
            self.listener = bus.Listener(self.cx.engine)

    def _router(self, max_size: int, endpoint: str, domain: str) -> zmq.Socket:
        s = self.ctx.socket(zmq.ROUTER)
        if self.cx.gate is not None:
            self.cx.gate.secure(s, domain)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)   # an unroutable send raises instead of vanishing
        # ZeroMQ drops the connection of a peer past MAXMSGSIZE; below that, decode() answers
        # an oversized message with an error reply, so the limit there is twice ours.
        s.setsockopt(zmq.MAXMSGSIZE, 2 * max_size)
        s.setsockopt(zmq.SNDHWM, 100_000)
        s.setsockopt(zmq.RCVHWM, 100_000)
        s.setsockopt(zmq.BACKLOG, LISTEN_BACKLOG)
        s.bind(endpoint)
        return s

    def _hidden_for(self, frame: zmq.Frame) -> frozenset[str] | None:
        """The projects an events subscriber may not see, by the key of its connection;
        None for a key that is not (or no longer) a user's."""
        cx = self.cx
        user = cx.gate.user(trust.user_id(frame))
        if user is None:
            cx.live.errors["unauthenticated"] += 1
            return None
        return cx.read(lambda conn: access.hidden_projects(cx.policy, conn, user))

    def add_periodic(self, interval: float, fn: Callable[[Context], None],
                     duty: str | None = None) -> None:
        """Run fn(cx) on the loop every `interval` monotonic seconds, off the dispatch path
        (housekeeping that acts on the live state: lock schedules).  With `duty`, only while
        this supervisor holds that farm duty (see holds())."""
        self.periodic.append([self.cx.mono() + interval, interval, fn, False, duty])

    def add_background(self, interval: float,
                       fn: Callable[[Context], Callable[[], Any] | None],
                       duty: str | None = None) -> None:
        """Every `interval` seconds, fn(cx) runs on the loop and returns the database work to
        do (or None): that runs on the housekeeping thread and may return a callable, run on
        the loop with the context when it is done.  A pass still running when the next is
        due makes that one skip.  With `duty`, only while this supervisor holds that farm duty
        (see holds())."""
        self.periodic.append([self.cx.mono() + interval, interval, fn, True, duty])

    def holds(self, duty: str) -> bool:
        """Whether this supervisor does `duty` (housekeeping done once per farm) now: always
        on a database of its own; on one shared with other supervisors, while it holds the
        duty's lock there (the first to ask takes it; when it stops or dies another does)."""
        if self.listener is None:
            return True
        try:
            held = self.listener.hold(duty)
        except Exception:     # noqa: BLE001 - the bus connection is down: not now
            log.warning("cannot take the farm duty %s now", duty, exc_info=True)
            return False
        if self.listener.pending():     # the query read notices off the socket
            self._farm_notices()
        return held

    def figures_of_the_loop(self) -> dict[str, float]:
        """The loop's own figures for the metrics: events waiting to be published, the
        longest turn since the last sample."""
        pending = self.publisher.pending if self.publisher is not None else None
        backlog = (len(pending.jobs) + len(pending.layers) + len(pending.frames)
                   + len(pending.hosts)) if pending is not None else 0
        return {"events.backlog": float(backlog), "loop.turn_max": self.stopwatch.take_longest()}

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        # Every socket call and every SQLite statement releases the GIL; with the default 5 ms
        # switch interval, a busy background thread (event rows, metrics, a huge submit being
        # stored) would make each reacquisition wait that long and heartbeats queue up behind
        # it.  A short interval keeps the loop responsive: at 0.5 ms, the first passes after
        # a million-frame job became active still took 110-210 ms; at 0.1 ms, under 100.
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc.set_threshold(*GC_THRESHOLDS)
        gc.freeze()             # what start() loaded lives as long as the process
        while not self.stopping:
            self.step(self._timeout_ms())
        self._finish_submits()
        log.info("supervisor stopping")

    def _finish_submits(self, grace: float = SUBMIT_GRACE) -> None:
        """Huge submits being stored when the stop came (supervisor.bigsubmit) are finished
        and answered: their clients wait for them.  Not beyond `grace` seconds: one cut short
        is not answered (the client sends it again) and what it stored goes at the next
        start."""
        big = self.big_submits
        deadline = time.monotonic() + grace
        if big is not None and big.waiting:
            log.info("finishing %d submit(s) before stopping", len(big.waiting))
        while big is not None and big.waiting and time.monotonic() < deadline:
            big.background.wake.poll(100)
            big.collect(self.cx)
            self.flush()

    def step(self, timeout_ms: int = 0) -> None:
        """One turn: wait up to `timeout_ms` for something to do, then do it."""
        if self.poller is None:
            self.next_liveness = self.cx.mono() + self.cx.cfg.host_expiry
            self.poller = zmq.Poller()
            for s in (self.client_sock, self.worker_sock, self.publisher.sock,
                      self.housekeeping.wake, self.figures.wake, self.reader.wake,
                      self.publisher.builder.wake, self.big_submits.background.wake):
                self.poller.register(s, zmq.POLLIN)
            self.poller.register(self._wake_r, zmq.POLLIN)
            for monitor in self.monitors:
                self.poller.register(monitor, zmq.POLLIN)
            if self.listener is not None:
                self.poller.register(self.listener.fileno(), zmq.POLLIN)
            self.big_submits.loop_thread = threading.get_ident()   # it need not pace itself
            self.stopwatch.thread = threading.get_ident()
        between = self.big_submits.between_turns
        between.set()
        ready = self.ready = dict(self.poller.poll(timeout_ms))
        between.clear()
        if self._wake_r.fileno() in ready:
            self._drain_wake()
            if self.stopping:
                return     # what arrived is left unread: clients and workers ask again
        self.stopwatch.start_turn()
        if self.worker_sock in ready:
            self._drain(self.worker_sock, workerlink.handle, copy=False)
            self.stopwatch.lap("worker messages")
        if self.client_sock in ready:
            self._drain(self.client_sock, self._queue_request, limit=CLIENT_READ, copy=False)
        if self.turns:
            self._serve_clients()
            self.stopwatch.lap("client requests")
        if self.publisher.sock in ready:
            self.publisher.on_subscription()
        if self.listener is not None and (self.listener.fileno() in ready
                                          or self.listener.lost()):
            self._farm_notices()
        for monitor, domain in self.monitors.items():
            if monitor in ready:
                self._count_failed_handshakes(monitor, domain)
        self.turn()

    def _count_failed_handshakes(self, monitor: zmq.Socket, domain: str) -> None:
        errors = self.cx.live.errors
        while True:
            try:
                monitor.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            errors["unauthenticated"] += 1
            errors[f"unauthenticated.{domain}"] += 1

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

    def _farm_notices(self) -> None:
        fd = self.listener.fileno()
        try:
            payloads = self.listener.take()
        except Exception:     # noqa: BLE001 - cannot listen: run on, passes on a timer
            self.cx.live.errors["internal"] += 1
            log.exception("farm bus lost")
            self.poller.unregister(fd)
            self.listener = None
            return
        if self.listener.fileno() != fd:      # listening again on a new connection
            self.poller.unregister(fd)
            self.poller.register(self.listener.fileno(), zmq.POLLIN)
        try:
            if farmlink.handle(self.cx, payloads):
                self.publisher.resync()
        except Exception:     # noqa: BLE001 - one bad notice must not stop the loop
            self.cx.live.errors["internal"] += 1
            log.exception("error handling a farm notice")
        self.stopwatch.lap("farm notices")

    def _queue_request(self, cx: Context, frames: list) -> None:
        """Put a client request in its connection's line (see _serve_clients).  `frames`
        are zmq.Frames (the connection's address is noted for the audit trail) or bytes."""
        if frames and isinstance(frames[-1], zmq.Frame):
            try:
                address = frames[-1].get("Peer-Address") or ""
            except (zmq.ZMQError, UnicodeDecodeError):
                address = ""
            if cx.gate is not None and len(frames) > 1:
                # Who sent it is the key its connection authenticated with; a key revoked
                # since gets no answer at all.
                user = cx.gate.user(trust.user_id(frames[-1]))
                if user is None:
                    cx.live.errors["unauthenticated"] += 1
                    return
                users = cx.live.client_users
                if len(users) > 50_000:
                    users.clear()
                users[frames[0].bytes] = user
            frames = [f.bytes for f in frames]
            if address and len(frames) > 1:
                known = cx.live.client_addresses
                if len(known) > 50_000:
                    known.clear()
                known[frames[0]] = address
        peer = frames[0] if len(frames) > 1 else b""
        line = self.waiting.get(peer)
        if line is None:
            line = self.waiting[peer] = deque()
            self.waiting_bytes[peer] = 0
            self.turns.append(peer)
        size = len(frames[-1])
        if len(line) >= PEER_QUEUE or self.waiting_bytes[peer] + size > PEER_QUEUE_BYTES:
            self._too_many(cx, frames)
            return
        line.append(frames)
        self.waiting_bytes[peer] += size

    def _too_many(self, cx: Context, frames: list[bytes]) -> None:
        cx.live.errors["busy"] += 1
        try:
            request_id = p.decode_envelope(frames[-1]).id
        except p.ProtocolError as exc:
            request_id = exc.request_id
        cx.out.reply(frames[:-1], request_id, p.Error(
            "busy", f"more than {PEER_QUEUE} requests from this client wait for the supervisor; "
                    f"wait for replies before sending more"))

    def _serve_clients(self) -> None:
        """Serve waiting client requests, one per connection in turn, CLIENT_DRAIN at most: a
        client with thousands of requests waiting delays another by one request per round,
        not by all of them.  A connection with PEER_READS reads on the reader thread waits its
        turn until one is done."""
        cx = self.cx
        served = 0
        idle = 0
        while (self.turns and served < CLIENT_DRAIN and idle < len(self.turns)
               and not self.stopping):
            peer = self.turns.popleft()
            line = self.waiting[peer]
            if self.reads.get(peer, 0) >= PEER_READS:
                self.turns.append(peer)
                idle += 1
                continue
            idle = 0
            frames = line.popleft()
            self.waiting_bytes[peer] -= len(frames[-1])
            if line:
                self.turns.append(peer)
            else:
                del self.waiting[peer], self.waiting_bytes[peer]
            self.serving = peer
            try:
                clientapi.handle(cx, frames, self._read_off_loop)
            except Exception:   # a bug handling one request must not take the farm down
                cx.live.errors["internal"] += 1
                log.exception("error handling a client request")
            self.send_now()
            served += 1

    def _read_off_loop(self, work: Callable[[], tuple]) -> None:
        """Serve a request that only reads on the reader thread: reading 5,000 hosts or a page
        of 50,000 frames takes a while, and heartbeats and freed slots must not wait.  `work()`
        returns (route, request id, reply); the loop sends the reply."""
        self.reader_seq += 1
        peer = self.serving
        self.reads[peer] = self.reads.get(peer, 0) + 1
        self.read_peer[self.reader_seq] = peer
        self.reader.submit(self.reader_seq, work)

    def turn(self) -> None:
        """Everything after reading: batched writes, dispatch, timers, effects, events."""
        cx, lap = self.cx, self.stopwatch.lap
        for bg in (self.housekeeping, self.figures):
            for fn, result, error in bg.collect(self.ready):
                self._apply_background(fn, result, error)
        for key, result, error in self.reader.collect(self.ready):
            peer = self.read_peer.pop(key, None)
            if peer is not None:
                left = self.reads.get(peer, 1) - 1
                if left > 0:
                    self.reads[peer] = left
                else:
                    self.reads.pop(peer, None)
            if error is not None:     # serve() answers errors itself: this is a bug
                cx.live.errors["internal"] += 1
                log.error("reader thread failed", exc_info=error)
            elif result[2] is not None:
                cx.out.reply(*result)
        self.big_submits.collect(cx, self.ready)
        lap("background results")
        registration.flush(cx)
        self.flush()
        lap("registrations")
        now = cx.mono()
        if self.listener is not None and now >= self.next_farm_pass:
            # A notice missed (the bus reconnected) must not leave work waiting for good.
            self.next_farm_pass = now + FARM_PASS
            self.dispatch_needed = True
        if self.wakeups and self.wakeups[0] <= now:
            while self.wakeups and self.wakeups[0] <= now:
                heapq.heappop(self.wakeups)
            self.dispatch_needed = True
        if self.hosts_changed:
            changed, self.hosts_changed = self.hosts_changed, set()
            workerlink.tell_totals(cx, changed)
        # The turn's completions and its dispatch pass share one transaction: the slots they
        # free are filled in it.
        batch = cx.intake.take(cx.live, cx.out, now)
        if batch is not None or self.dispatch_needed:
            self.dispatch_needed = False
            dispatch.run_pass(cx, batch)
        self.flush()
        lap("completions and dispatch")
        now = cx.mono()
        if now >= self.next_liveness:
            self.next_liveness = now + 1.0
            workerlink.check_liveness(cx, now)
            if cx.gate is not None:
                for domain, n in cx.gate.take_refused().items():
                    cx.live.errors["unauthenticated"] += n
                    cx.live.errors[f"unauthenticated.{domain}"] += n
            for reply in cx.live.logs.expire(now):
                cx.out.reply(*reply)
        if now >= self.next_figures:
            # One slice of the hosts at a time, each written once per figures_interval: a
            # thousand rows a second in small writes rather than five thousand at once.
            slices = max(1, round(cx.cfg.figures_interval / FIGURE_SLICE))
            self.next_figures = now + cx.cfg.figures_interval / slices
            self.figure_slice = (self.figure_slice + 1) % slices
            if not self.figures.busy(FIGURES):   # else these wait for their next slice
                work = workerlink.figures_work(cx, self.figure_slice, slices)
                if work is not None:
                    self.figures.submit(FIGURES, work)
        lap("timers")
        self._run_periodic(now)
        self.flush()
        auditing.flush(cx)
        lap("housekeeping")
        if cx.live.views_changed:
            cx.live.views_changed = False
            self.publisher.views_changed()
        self.publisher.send_built(self.ready)
        self.publisher.flush(cx.engine, now)
        cx.live.event_seq = self.publisher.seq
        lap("events")
        self.stopwatch.end_turn()

    # -- effects ----------------------------------------------------------------------------------

    def send_now(self) -> None:
        """Send the messages and replies recorded so far (after each message handled:
        a heartbeat's acknowledgement must not wait for the rest of the turn)."""
        out = self.cx.out
        if out.messages:
            messages, out.messages = out.messages, []
            for identity, body in messages:
                if not self._send_worker(identity, body):
                    self._undelivered(identity, body)
        if out.replies:
            replies, out.replies = out.replies, []
            for route, rid, body in replies:
                self._reply(route, rid, body)

    def flush(self) -> None:
        """Carry out every effect the handlers recorded (their transactions have committed)."""
        out = self.cx.out
        if not out:
            return      # most turns: nothing to do, and nothing allocated to find that out
        self.send_now()
        t = out.touched
        if t.jobs or t.layers or t.frames or t.hosts:
            out.touched = Touched()
            self.publisher.note(t)
            self.hosts_changed.update(t.hosts)
        if out.dispatch:
            out.dispatch = False
            self.dispatch_needed = True
        if out.wakeups:
            wakeups, out.wakeups = out.wakeups, []
            for when in wakeups:
                if len(self.wakeups) < 10_000:
                    heapq.heappush(self.wakeups, when)

    def _undelivered(self, identity: bytes, body: p.Body) -> None:
        """A message the worker link could not deliver (the worker is gone or not reading)."""
        cx = self.cx
        if isinstance(body, p.Launch):
            cx.intake.refuse(identity, body.attempt_id, "launch could not be delivered")
        elif isinstance(body, p.LogRequest):
            answer = cx.live.logs.unreachable(body.token)
            if answer is not None:
                self._reply(*answer)

    def _send_worker(self, identity: bytes, body: p.Body) -> bool:
        try:
            # Two plain sends with int flags: send_multipart's enum arithmetic costs more
            # than the sends themselves at thousands of heartbeats a second.
            self.worker_sock.send(identity, _NOBLOCK_MORE)
            self.worker_sock.send(p.encode(body), _NOBLOCK)
            return True
        except zmq.ZMQError as exc:   # EHOSTUNREACH (gone) or EAGAIN (not reading)
            log.warning("cannot send %s to a worker: %s", type(body).__name__, exc)
            return False

    def _reply(self, route: list[bytes], request_id: int, body: p.Body) -> None:
        try:
            self.client_sock.send_multipart([*route, p.encode(body, request_id)], zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            log.info("client went away before its reply: %s", exc)

    # -- periodic and background work -------------------------------------------------------------

    def _run_periodic(self, now: float) -> None:
        for task in self.periodic:
            if now >= task[0]:
                task[0] = now + task[1]
                fn, background, duty = task[2], task[3], task[4]
                if background and self.housekeeping.busy(fn):
                    continue
                if duty is not None and not self.holds(duty):
                    continue
                started = self.cx.mono()
                try:
                    out = fn(self.cx)
                    if background and out is not None:
                        self.housekeeping.submit(fn, out)
                except Exception:   # housekeeping must not stop dispatch
                    self.cx.live.errors["internal"] += 1
                    log.exception("periodic task %s failed", _name(fn))
                took = self.cx.mono() - started
                if took > SLOW_TASK:
                    log.warning("periodic task %s held the loop for %.0f ms", _name(fn),
                                1000 * took)

    def _apply_background(self, fn, result, error: BaseException | None) -> None:
        if error is not None:
            self.cx.live.errors["internal"] += 1
            log.error("periodic task %s failed", _name(fn), exc_info=error)
        elif callable(result):
            try:
                result(self.cx)
            except Exception:
                self.cx.live.errors["internal"] += 1
                log.exception("periodic task %s failed", _name(fn))

    def _drain(self, sock: zmq.Socket, handler, limit: int = DRAIN, copy: bool = True) -> None:
        cx = self.cx
        for _ in range(limit):
            if self.stopping:
                return      # stop taking work: what is left is asked again of the next run
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
                handler(cx, frames)
            except Exception:   # a bug handling one message must not take the farm down
                cx.live.errors["internal"] += 1
                log.exception("error handling a message")
            self.send_now()

    def _timeout_ms(self) -> int:
        if self.dispatch_needed or self.cx.intake or self.cx.out:
            return 0
        if any(self.reads.get(peer, 0) < PEER_READS for peer in self.turns):
            return 0          # requests wait that may be served now
        now = self.cx.mono()
        due = [self.next_liveness - now, self.next_figures - now,
               *([self.next_farm_pass - now] if self.listener is not None else []),
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
                   self.big_submits and self.big_submits.background,
                   self.publisher and self.publisher.builder):
            if bg is not None:
                bg.close(max(0.0, deadline - time.monotonic()))
        for s in (self.client_sock, self.worker_sock, self.publisher and self.publisher.sock):
            if s is not None:
                if self.monitors:
                    s.disable_monitor()
                s.close(0)
        for monitor in self.monitors:
            monitor.close(0)
        if self.listener is not None:
            self.listener.close()
        self._wake_r.close()
        self._wake_w.close()
