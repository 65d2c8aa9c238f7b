"""What a handler gets: the configuration, the database, the clocks, the live state, the intake
and the outbox, and nothing of the loop (sockets, threads, timers)."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol

from sqlalchemy import Connection, Engine

from cuefarm import protocol as p
from cuefarm.config import SupervisorConfig
from supervisor import farmbus
from supervisor.intake import Intake
from supervisor.live import Live
from supervisor.outbox import Outbox
from supervisor.roles import Policy
from supervisor.store import bus
from supervisor.store.engine import reading


@dataclass
class Context:
    cfg: SupervisorConfig
    engine: Engine
    clock: Callable[[], float]      # wall clock (epoch seconds): what is stored
    mono: Callable[[], float]       # monotonic clock: every timer
    live: Live
    intake: Intake
    out: Outbox
    id: str                         # this run of the supervisor (clients resync when it changes)
    owner: str                      # who serves its hosts, stable across restarts
    policy: Policy                  # who is an artist, a wrangler, an admin
    billing: Any = None             # licences, metering, usage, metrics (supervisor.billing)
    farm_id: str = ""               # the database's identity (supervisor.store.farm)
    pipeline: Any = None            # notifications and retention (supervisor.pipeline)
    gate: Any = None                # keys and their authenticator (supervisor.trust); None: none
    # Told how long each commit made through begin() took, in seconds (the loop's stopwatch:
    # a slow turn's log says how much of it the disk's flushes took).
    on_commit: Callable[[float], None] | None = None

    @property
    def stale_after(self) -> float:
        """A host UP in the database but not reported on for this long has lost its
        supervisor."""
        return self.cfg.host_expiry + 2 * self.cfg.figures_interval

    @contextmanager
    def begin(self) -> Iterator[tuple[Connection, Outbox]]:
        """A transaction and the effects staged with it: they reach the loop's outbox only if
        it commits."""
        staged = Outbox()
        with self.engine.connect() as conn, conn.begin() as transaction:
            yield conn, staged
            if bus.shared(self.engine):   # delivered to the other supervisors on commit
                for notice in farmbus.notices_of(self.id, staged):
                    bus.announce(conn, notice)
            t0 = time.perf_counter()
            transaction.commit()
            if self.on_commit is not None:
                self.on_commit(time.perf_counter() - t0)
        self.out.merge(staged)

    def kill(self, out: Outbox, kills: list[tuple[str, int]], reason: str = "requested") -> None:
        """Record in `out` a Kill for each host connected here that runs some of `kills`
        [(attempt id, host id)], addressed to its connection as it is now; the kills of
        other hosts go to the supervisors that serve them (on a shared database)."""
        by_host: dict[int, list[str]] = {}
        for aid, hid in kills:
            by_host.setdefault(hid, []).append(aid)
        elsewhere = []
        for hid, ids in by_host.items():
            w = self.live.registry.by_id.get(hid)
            if w is not None and w.identity is not None:
                out.send(w.identity, p.Kill(ids, reason))
            else:
                elsewhere += [(aid, hid) for aid in ids]
        if elsewhere and bus.shared(self.engine):
            out.kill_elsewhere(elsewhere, reason)

    def read(self, fn: Callable[[Connection], object]):
        """fn(conn) on a connection that writes nothing."""
        with reading(self.engine) as conn:
            try:
                return fn(conn)
            finally:
                conn.rollback()


class Timers(Protocol):
    """How a part asks the loop for periodic work (the loop implements it)."""

    def add_periodic(self, interval: float, fn: Callable[[Context], None],
                     duty: str | None = None) -> None:
        """fn(cx) on the loop every `interval` monotonic seconds (with `duty`: only while this
        supervisor does that duty for the farm)."""

    def add_background(self, interval: float,
                       fn: Callable[[Context], Callable[[], Any] | None],
                       duty: str | None = None) -> None:
        """Every `interval` seconds fn(cx) runs on the loop and returns the database work to
        do (or None); that runs on the housekeeping thread and may return a callable, run on
        the loop with the context when it is done."""

    def holds(self, duty: str) -> bool:
        """Whether this supervisor does `duty` for the farm now."""
