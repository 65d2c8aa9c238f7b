"""A fleet of simulated workers in one process, speaking the real worker-link protocol.

For load tests and benchmarks: each simulated worker has its own DEALER socket and name,
registers, heartbeats, and "runs" each launched frame by completing it after `runtime`
seconds (0: at once) with exit status 0, or `fail_rate` of them with 1.  No process is started.

    python -m rqd.fleet --supervisor 127.0.0.1:9770 --workers 100 --slots 10
"""

from __future__ import annotations

import heapq
import logging
import random
import selectors
import socket
import time
from dataclasses import dataclass, field

import click
import zmq

import cuefarm
from cuefarm import protocol as p
from cuefarm.config import parse_address

log = logging.getLogger(__name__)
BEAT_TICK = 0.02      # seconds: heartbeats due within this are sent together
WORKER_TYPES = frozenset({"registered", "refused", "ack", "reregister", "launch", "kill",
                          "complete_ack", "log_request", "error", "drain"})


@dataclass
class SimWorker:
    name: str
    slots: int
    sock: zmq.Socket
    memory_mb: int = 65536
    tags: list[str] = field(default_factory=list)
    gpus: int = 0
    os: str = "linux"
    fail: bool = False              # every frame it runs exits 1
    registered: bool = False
    running: dict[str, float] = field(default_factory=dict)     # attempt id -> started
    unacked: dict[str, p.Completion] = field(default_factory=dict)
    launches: int = 0
    launch_seq: int = 0             # the highest Launch.seq received since registering
    freed: list[float] = field(default_factory=list)   # monotonic times of slots freed


class Fleet:
    def __init__(self, address: str, workers: int | list[dict], slots: int = 1,
                 runtime: float = 0.0, fail_rate: float = 0.0, prefix: str | None = None,
                 heartbeat: float = 2.0, memory_mb: int = 65536, record: bool = False,
                 refills: bool = False, jitter: float = 0.0):
        """`workers` is a count (all alike) or a list of dicts with name, slots and optionally
        memory_mb, tags, gpus, os.  With `record`, every launch and end is kept in `ledger`
        as (event, monotonic time, worker name, Launch or attempt id).  With `refills`, each
        launch onto a slot an earlier frame freed appends (monotonic time, seconds the slot
        stood free) to `refill_times`."""
        host, port = parse_address(address)
        self.endpoint = f"tcp://{host}:{port + 1}"
        self.ctx = zmq.Context.instance()
        self.runtime, self.fail_rate = runtime, fail_rate
        self.jitter = min(max(jitter, 0.0), 1.0)   # runtimes spread over runtime * (1 +- jitter)
        self.heartbeat = heartbeat
        self.memory_mb = memory_mb
        prefix = prefix or f"sim-{socket.gethostname()}"
        if isinstance(workers, int):
            workers = [{"name": f"{prefix}-{i:05d}", "slots": slots} for i in range(workers)]
        self.workers = [SimWorker(sock=self._socket(), **{"memory_mb": memory_mb, **spec})
                        for spec in workers]
        self.record, self.refills = record, refills
        self.refill_times: list[tuple[float, float]] = []
        self.ledger: list[tuple[str, float, str, object]] = []
        self.by_sock = {w.sock: w for w in self.workers}
        self.timers: list[tuple[float, str, str]] = []   # (due, worker name, attempt id)
        self.by_name = {w.name: w for w in self.workers}
        self.completed = 0
        self.launched = 0
        # Sockets that may hold unread messages although their FD did not signal: sending on
        # a ZeroMQ socket can consume the signal of a message that arrived meanwhile.
        self.unread: set[int] = set()
        self.by_index = {i: w for i, w in enumerate(self.workers)}
        self.index = {w.name: i for i, w in enumerate(self.workers)}

    def _send(self, w: SimWorker, body: p.Body) -> None:
        w.sock.send(p.encode(body))
        self.unread.add(self.index[w.name])

    def _socket(self) -> zmq.Socket:
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, p.MAX_WORKER_MESSAGE)
        s.connect(self.endpoint)
        return s

    def register(self, w: SimWorker) -> None:
        self._send(w, p.Register(
            name=w.name, hostname=w.name, os=w.os, cores=w.slots, memory_mb=w.memory_mb,
            slots=w.slots, version=cuefarm.__version__, tags=w.tags, gpus=w.gpus,
            running=[p.RunningAttempt(a, started=t) for a, t in w.running.items()],
            completions=list(w.unacked.values()), launch_seq=w.launch_seq))

    def _complete(self, w: SimWorker, aid: str, status: int, reason: str = "") -> p.Completion:
        started = w.running.pop(aid, time.time())
        if self.record:
            self.ledger.append(("end", time.monotonic(), w.name, aid))
        if self.refills:
            w.freed.append(time.monotonic())
        c = p.Completion(aid, status, started, time.time(), reason=reason)
        w.unacked[aid] = c
        self.completed += 1
        return c

    def _status(self, w: SimWorker) -> int:
        if w.fail or (self.fail_rate and random.random() < self.fail_rate):
            return 1
        return 0

    def handle(self, w: SimWorker, body: p.Body, batch: dict[str, list]) -> None:
        if isinstance(body, p.Registered):
            w.registered = True
            w.launch_seq = 0
        elif isinstance(body, p.Reregister):
            self.register(w)
        elif isinstance(body, p.Refused):
            log.warning("%s refused: %s", w.name, body.reason)
        elif isinstance(body, p.Launch):
            w.launches += 1
            w.launch_seq = max(w.launch_seq, body.seq)
            self.launched += 1
            if self.record:
                self.ledger.append(("launch", time.monotonic(), w.name, body))
            if w.freed:
                now = time.monotonic()
                self.refill_times.append((now, now - w.freed.pop(0)))
            w.running[body.attempt_id] = time.time()
            if self.runtime <= 0:
                status = self._status(w)
                batch.setdefault(w.name, []).append(self._complete(w, body.attempt_id, status))
            else:
                took = self.runtime * random.uniform(1 - self.jitter, 1 + self.jitter)
                heapq.heappush(self.timers, (time.monotonic() + took, w.name,
                                             body.attempt_id))
        elif isinstance(body, p.Kill):
            for aid in body.attempt_ids:
                if aid in w.running:
                    batch.setdefault(w.name, []).append(
                        self._complete(w, aid, -15, "killed: " + body.reason))
        elif isinstance(body, p.CompleteAck):
            for aid in body.attempt_ids:
                w.unacked.pop(aid, None)
        elif isinstance(body, p.LogRequest):
            data = f"simulated log of {body.attempt_id}\n".encode()
            self._send(w, p.LogReply(body.token, body.attempt_id, 0, len(data), data))

    def run(self, duration: float | None = None, until=None) -> None:
        """Serve until `duration` passes or `until()` returns true."""
        for w in self.workers:
            self.register(w)
        # Woken through each socket's FD by epoll: only the sockets with something to read
        # cost anything, where a zmq.Poller would look at all of them on every wake-up.
        selector = selectors.DefaultSelector()
        for i, w in enumerate(self.workers):
            selector.register(w.sock.getsockopt(zmq.FD), selectors.EVENT_READ, i)
        end = None if duration is None else time.monotonic() + duration
        # Heartbeats spread evenly over the interval, as real workers' are (they start at
        # different times): all at once would be a burst no farm sends.
        step = self.heartbeat / max(1, len(self.workers))
        next_beat, beat_i = time.monotonic() + step, 0
        try:
            while True:
                now = time.monotonic()
                if (end is not None and now >= end) or (until is not None and until()):
                    return
                # Beats due within BEAT_TICK go together: waking for every one of thousands
                # would spend the simulator's CPU on wake-ups.
                waits = [max(next_beat - now, BEAT_TICK)]
                if self.timers:
                    waits.append(self.timers[0][0] - now)
                if end is not None:
                    waits.append(end - now)
                timeout = 0 if self.unread else max(0.0, min(waits)) + 0.001
                for key, _ in selector.select(timeout):
                    self.unread.add(key.data)
                batch: dict[str, list] = {}
                check, self.unread = self.unread, set()
                for i in check:
                    self._read(self.by_index[i], batch)
                self._tick(batch)
                if now - next_beat > self.heartbeat:   # far behind (a stall): skip, not burst
                    next_beat = now + step
                while self.workers and time.monotonic() >= next_beat:
                    w = self.workers[beat_i]
                    beat_i = (beat_i + 1) % len(self.workers)
                    next_beat += step
                    self._beat(w)
        finally:
            selector.close()

    def _read(self, w: SimWorker, batch: dict[str, list]) -> None:
        """Every message waiting on one worker's socket (reading also re-arms its FD)."""
        if not w.sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            return
        while True:
            try:
                data = w.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                _, body = p.decode(data, p.MAX_WORKER_MESSAGE, WORKER_TYPES)
            except p.ProtocolError as exc:
                log.warning("%s: %s", w.name, exc.message)
                continue
            self.handle(w, body, batch)

    def _tick(self, batch: dict[str, list]) -> None:
        """End the frames whose runtime is over; send the completions of this wake-up."""
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, name, aid = heapq.heappop(self.timers)
            w = self.by_name[name]
            if aid in w.running:
                status = self._status(w)
                batch.setdefault(name, []).append(self._complete(w, aid, status))
        for name, comps in batch.items():
            self._send(self.by_name[name], p.Complete(comps))

    def _beat(self, w: SimWorker) -> None:
        self._send(w, p.Heartbeat(
            running=[p.RunningAttempt(a, started=t) for a, t in w.running.items()],
            memory_free_mb=w.memory_mb, kept=list(w.unacked), launch_seq=w.launch_seq))
        if w.unacked:
            self._send(w, p.Complete(list(w.unacked.values())))

    def close(self) -> None:
        for w in self.workers:
            w.sock.close(0)


@click.command()
@click.option("--supervisor", default="127.0.0.1:9770")
@click.option("--workers", type=int, default=10)
@click.option("--slots", type=int, default=8)
@click.option("--runtime", type=float, default=0.0, help="seconds each frame takes")
@click.option("--fail-rate", type=float, default=0.0)
@click.option("--duration", type=float, default=None)
@click.option("--prefix", default=None)
def main(supervisor, workers, slots, runtime, fail_rate, duration, prefix):
    """Run a simulated fleet against a supervisor."""
    logging.basicConfig(level="INFO")
    fleet = Fleet(supervisor, workers, slots, runtime, fail_rate, prefix)
    try:
        fleet.run(duration)
    except KeyboardInterrupt:
        pass
    finally:
        fleet.close()


if __name__ == "__main__":
    main()
