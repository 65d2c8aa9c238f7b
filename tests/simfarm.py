"""A deterministic farm in the test's own thread: the real supervisor (store, handlers, loop)
over in-process ZeroMQ sockets, simulated workers and a client that speak the real protocol,
and clocks the test moves by hand.  No process, no thread, no sleep: a case takes milliseconds.

    farm = SimFarm(db_url)
    farm.add_worker("h1", slots=4)
    [job] = farm.submit([{"name": "j", "project": "p", "layers": [...]}])
    farm.run_until_done([job])        # advance simulated time until the jobs finish
    farm.ledger                       # what ran where and when (simulated monotonic seconds)

Workers run each frame for `runtime` simulated seconds (or until the test ends it with
`finish`), end it with the exit status (and reason) they were given, heartbeat every
`heartbeat_interval`, resend completions not yet acknowledged, and answer launches, kills,
acks and re-registration as rqd does.  `farm.client()` is the real client library on the
farm's socket, and `farm.cli(...)` runs the command line against the farm.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import zmq
from click.testing import CliRunner, Result
from sqlalchemy import text

import cuefarm
from cuefarm import protocol as p
from cuefarm.cli import cli
from cuefarm.client import Client, CueFarmError
from cuefarm.config import SupervisorConfig
from supervisor.server import Supervisor
from supervisor.store.billing_models import Base   # with the billing tables registered
from supervisor.store.engine import make_engine

_names = itertools.count(1)


class ManualClock:
    """A wall clock and a monotonic clock that move only when told."""

    def __init__(self, wall: float = 1_800_000_000.0, mono: float = 1_000.0):
        self.wall_now, self.mono_now = wall, mono

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def advance(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


class SimWorker:
    """One simulated rqd on a DEALER socket."""

    def __init__(self, farm: "SimFarm", name: str, slots: int, runtime: float | None,
                 exit_status: int = 0, reason: str = "", **facts: Any):
        self.farm, self.name, self.slots, self.runtime = farm, name, slots, runtime
        # how its frames end by themselves: 0 succeeds; 1 fails; 127 with "launch failed: ..."
        # is rqd's report of a program it could not start
        self.exit_status, self.reason = exit_status, reason
        self.facts = {"os": "linux", "cores": slots, "memory_mb": 65536, **facts}
        self.sock = farm.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(farm.endpoints[1])
        self.host_id: int | None = None
        self.total: int | None = None          # the slot total the supervisor last said
        self.running: dict[str, p.Launch] = {}
        self.due: dict[str, float] = {}       # attempt id -> when it ends by itself (mono)
        self.unacked: dict[str, p.Completion] = {}
        self.sent_at: dict[str, float] = {}   # attempt id -> when its completion was last sent
        self.launch_seq = 0
        self.refused: str | None = None
        self.refuse = ""         # when set, every launch is refused with this reason (as rqd)
        self.next_beat = farm.clock.mono()
        self.alive = True
        self.received: list[p.Body] = []

    def register(self) -> None:
        f = self.facts
        self.send(p.Register(
            name=self.name, hostname=self.name, os=f["os"], cores=f["cores"],
            memory_mb=f["memory_mb"], slots=self.slots, version=cuefarm.__version__,
            running=[p.RunningAttempt(aid) for aid in self.running],
            completions=list(self.unacked.values()), tags=list(f.get("tags", [])),
            gpus=f.get("gpus", 0), launch_seq=self.launch_seq))

    def send(self, body: p.Body) -> None:
        self.sock.send(p.encode(body), zmq.NOBLOCK)

    def heartbeat(self) -> None:
        """A heartbeat, then (as rqd does) the completions still unacknowledged a heartbeat
        interval after they were last sent: a transaction that failed acknowledged none."""
        now, interval = self.farm.clock.mono(), self.farm.cfg.heartbeat_interval
        self.next_beat = now + interval
        self.send(p.Heartbeat(running=[p.RunningAttempt(aid) for aid in self.running],
                              kept=list(self.unacked), launch_seq=self.launch_seq))
        stale = [c for aid, c in self.unacked.items()
                 if now - self.sent_at.get(aid, now) >= 0.9 * interval]
        if stale:
            for c in stale:
                self.sent_at[c.attempt_id] = now
            self.send(p.Complete(stale))

    def finish(self, attempt_id: str, exit_status: int = 0, reason: str = "") -> None:
        """End a running attempt and report it."""
        self.running.pop(attempt_id)
        self.due.pop(attempt_id, None)
        now = self.farm.clock.wall()
        c = p.Completion(attempt_id, exit_status, now, now, reason=reason)
        self.unacked[attempt_id] = c
        self.sent_at[attempt_id] = self.farm.clock.mono()
        self.farm.ledger.append(("end", self.farm.clock.mono(), self.name, attempt_id))
        self.send(p.Complete([c]))

    def read(self) -> bool:
        """Handle what the supervisor sent; True when anything came."""
        got = False
        while True:
            try:
                data = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return got
            got = True
            _, body = p.decode(data, p.MAX_WORKER_MESSAGE)
            self.received.append(body)
            self._handle(body)

    def _handle(self, body: p.Body) -> None:
        farm = self.farm
        if isinstance(body, p.Registered):
            self.host_id, self.refused = body.host_id, None
            self.launch_seq = 0         # as rqd: this supervisor numbers its own launches
        elif isinstance(body, p.Refused):
            self.refused = body.reason
        elif isinstance(body, p.Reregister):
            self.register()
        elif isinstance(body, p.Ack):
            if body.slots is not None:
                self.total = body.slots
        elif isinstance(body, p.Launch):
            self.launch_seq = max(self.launch_seq, body.seq)
            if self.refuse:
                self.send(p.Refuse(body.attempt_id, self.refuse))
                return
            self.running[body.attempt_id] = body
            farm.ledger.append(("launch", farm.clock.mono(), self.name, body))
            if self.runtime is not None:
                self.due[body.attempt_id] = farm.clock.mono() + self.runtime
        elif isinstance(body, p.Kill):
            for aid in body.attempt_ids:
                if aid in self.running:
                    self.finish(aid, -15, f"killed: {body.reason}")
        elif isinstance(body, p.CompleteAck):
            for aid in body.attempt_ids:
                self.unacked.pop(aid, None)
                self.sent_at.pop(aid, None)

    def close(self) -> None:
        self.sock.close(0)


@dataclass
class SimFarm:
    """The real supervisor stepped by hand; see the module docstring."""

    db: Any           # a database URL, or an Engine the farm uses and leaves open
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = ManualClock()
        self.cfg = SupervisorConfig(**{"host_expiry": 10.0, "release_after": 10.0,
                                       "heartbeat_interval": 1.0, "metrics_port": 0,
                                       **self.settings})
        self.own_engine = isinstance(self.db, str)
        self.engine = make_engine(self.db) if self.own_engine else self.db
        self.sv = Supervisor(self.cfg, self.engine, clock=self.clock.wall,
                             monotonic=self.clock.mono, threads=False)
        self.sv.start()
        base = f"inproc://simfarm-{uuid.uuid4().hex[:8]}-{next(_names)}"
        self.endpoints = (f"{base}-client", f"{base}-workers", f"{base}-events")
        self.sv.bind(self.endpoints)
        self.loop = self.sv.loop
        self.ctx = self.loop.ctx
        self.client_sock = self.ctx.socket(zmq.DEALER)
        self.client_sock.setsockopt(zmq.LINGER, 0)
        self.client_sock.connect(self.endpoints[0])
        self.request_ids = itertools.count(1)
        self.workers: dict[str, SimWorker] = {}
        # ("launch", mono, worker, Launch) and ("end", mono, worker, attempt id), in order
        self.ledger: list[tuple[str, float, str, Any]] = []

    # -- running ----------------------------------------------------------------------------------

    def settle(self, turns: int = 10_000) -> None:
        """Step the loop, and let the workers answer, until nothing is left to do now."""
        for _ in range(turns):
            self.loop.step(0)
            moved = False
            for w in list(self.workers.values()):
                if w.alive:
                    moved = w.read() or moved
            if not moved and self._quiet():
                return
        raise AssertionError(f"the farm did not settle in {turns} turns")

    def _quiet(self) -> bool:
        loop, cx = self.loop, self.sv.cx
        if loop.dispatch_needed or cx.intake or cx.out or loop.turns:
            return False
        if loop.wakeups and loop.wakeups[0] <= self.clock.mono():
            return False
        events = loop.poller.poll(0)
        return not [s for s, _ in events if s in (loop.client_sock, loop.worker_sock)]

    def advance(self, seconds: float) -> None:
        """Move both clocks by `seconds`, in steps no longer than a heartbeat: workers
        heartbeat and finish frames when due, and the supervisor's timers run, in order."""
        end = self.clock.mono() + seconds
        while True:
            now = self.clock.mono()
            nxt = min([end] + [t for w in self.workers.values() if w.alive
                               for t in (w.next_beat, *w.due.values())])
            nxt = min(nxt, now + self.cfg.heartbeat_interval)
            self.clock.advance(max(0.0, nxt - now))
            now = self.clock.mono()
            for w in list(self.workers.values()):
                if not w.alive:
                    continue
                for aid in sorted(a for a, t in w.due.items() if t <= now):
                    w.finish(aid, w.exit_status, w.reason)
                if w.next_beat <= now:
                    w.heartbeat()
            self.settle()
            if now >= end:
                return

    def advance_until(self, predicate: Callable[[], Any], limit: float = 3600.0,
                      step: float | None = None) -> Any:
        """Advance simulated time `step` seconds at a time (a heartbeat interval unless
        given) until predicate() is true; its value."""
        end = self.clock.mono() + limit
        while True:
            value = predicate()
            if value:
                return value
            if self.clock.mono() >= end:
                raise AssertionError(f"not so after {limit} simulated s: {predicate}")
            self.advance(step or self.cfg.heartbeat_interval)

    def run_until_done(self, job_ids: list[int], limit: float = 3600.0) -> list[dict]:
        """Advance simulated time until the jobs are finished; their rows."""
        end = self.clock.mono() + limit
        while True:
            rows = [self.ask(p.JobRef(j)).row for j in job_ids]
            if all(r["state"] == "FINISHED" for r in rows):
                return rows
            if self.clock.mono() >= end:
                raise AssertionError(f"jobs not finished after {limit} simulated s: {rows}")
            self.advance(self.cfg.heartbeat_interval)

    # -- workers and requests ---------------------------------------------------------------------

    def add_worker(self, name: str, slots: int = 1, runtime: float | None = 1.0,
                   exit_status: int = 0, reason: str = "", **facts: Any) -> SimWorker:
        """A registered worker (memory_mb, tags, gpus, os, cores in `facts`); its frames end
        by themselves after `runtime` simulated seconds (None: when the test says), with
        `exit_status` and `reason`."""
        w = self.workers[name] = SimWorker(self, name, slots, runtime, exit_status, reason,
                                           **facts)
        w.register()
        self.settle()
        if w.host_id is None:
            raise AssertionError(f"{name} was not registered: {w.refused or w.received}")
        return w

    def exchange(self, body: p.Body, user: str = "alice",
                 type_name: str | None = None) -> p.Envelope:
        """One client request (`type_name` names it when its body type serves several, as
        JobRef does); the reply's envelope, its body not decoded."""
        rid = next(self.request_ids)
        self.client_sock.send(p.encode(body, rid, user, type_name), zmq.NOBLOCK)
        self.settle()
        try:
            data = self.client_sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            raise AssertionError(f"no reply to {type_name or type(body).__name__}") from None
        env = p.decode_envelope(data, p.MAX_CLIENT_MESSAGE)
        assert env.id == rid
        return env

    def ask(self, body: p.Body, user: str = "alice", type_name: str | None = None) -> p.Body:
        """One client request; the reply (an Error is returned, not raised)."""
        return p.decode_body(self.exchange(body, user, type_name))

    def do(self, body: p.Body, user: str = "alice", type_name: str | None = None) -> p.Body:
        """A request that must succeed."""
        reply = self.ask(body, user, type_name)
        if isinstance(reply, p.Error):
            raise AssertionError(f"{type_name or type(body).__name__} refused: {reply}")
        return reply

    def client(self, user: str = "alice") -> "SimClient":
        """The real client library, its requests answered by this farm."""
        return SimClient(self, user)

    def cli(self, *args: str, user: str = "alice") -> Result:
        """The `cuefarm` command line (its parsing, requests and output) run against this
        farm: the CLI connects through `client(user)`."""
        return CliRunner().invoke(cli, list(args),
                                  obj={"connect": lambda address, timeout: self.client(user)})

    def submit(self, jobs: list[dict], user: str = "alice") -> list[int]:
        return self.do(p.Submit(jobs), user).job_ids

    def close(self) -> None:
        for w in self.workers.values():
            w.close()
        self.client_sock.close(0)
        self.sv.close()
        if self.own_engine:
            self.engine.dispose()


class SimClient(Client):
    """cuefarm.Client (what each call sends, how replies and errors come back) with its
    transport swapped for the farm's in-process socket: a request steps the farm until it is
    answered, so nothing waits in real time."""

    def __init__(self, farm: SimFarm, user: str = "alice"):
        super().__init__("127.0.0.1:9770", user=user, context=farm.ctx)
        self.farm = farm

    def request_raw(self, body: p.Body, timeout: float | None = None,
                    type_name: str | None = None) -> p.Envelope:
        env = self.farm.exchange(body, self.user, type_name)
        if env.type == "error":
            error = self.decode_reply(env)
            raise CueFarmError(error.message, error.code, error.field)
        return env


def wipe(engine) -> None:
    """Delete every row (the schema version stays); ids start again from 1."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(text(f"DELETE FROM {name}"))
            if conn.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
                                 )).first():
                conn.execute(text("DELETE FROM sqlite_sequence"))
