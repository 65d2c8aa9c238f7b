"""The supervisor assembled: a context for the handlers, a loop around them, and the start-up
that rebuilds the live view from the database."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Callable

from sqlalchemy import Engine

import cuefarm
from cuefarm.config import SupervisorConfig
from supervisor import (auditing, bigsubmit, billing, keys_api, presence, schedules, trust,
                        workerlink)
from cuefarm import keys as keyfiles
from cuefarm.config import ConfigError
from supervisor import pipeline as pipeline_parts
from supervisor.context import Context
from supervisor.intake import Intake
from supervisor.live import Live, default_admission
from supervisor.loop import GC_FREEZE, GarbageCollector, Loop
from supervisor.outbox import Outbox
from supervisor.roles import loopback, policy_from_config
from supervisor.store import farm, hostadmin
from supervisor.store import keys as key_store
from supervisor.store import hosts as host_store
from supervisor.store import submit as submit_store
from supervisor.store import work
from supervisor.store.engine import Checkpointer, SoleSupervisor, migrate

log = logging.getLogger(__name__)
SCHEDULES_EVERY = 20.0     # seconds between looks at the lock schedules
SUBMISSIONS_EVERY = 3600.0       # seconds between prunings of old submission ids
SUBMISSIONS_KEPT = 7 * 86400.0   # a retried submit comes within minutes; kept a week


def forget_submissions(cx: Context) -> Callable[[], None]:
    before, engine = cx.clock() - SUBMISSIONS_KEPT, cx.engine

    def work() -> None:
        with engine.begin() as conn:
            submit_store.forget_submissions(conn, before)
    return work


class Supervisor:
    def __init__(self, cfg: SupervisorConfig, engine: Engine,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic, threads: bool = True,
                 pipeline: "pipeline_parts.PipelineSettings | None" = None):
        self.cfg, self.engine, self.clock = cfg, engine, clock
        live = Live(work.FailurePolicy(cfg.bad_host_failures, cfg.bad_host_period),
                    default_admission(cfg))
        self.cx = Context(
            cfg=cfg, engine=engine, clock=clock, mono=monotonic, live=live, intake=Intake(),
            out=Outbox(), id=uuid.uuid4().hex[:12],
            # Who owns the hosts it serves, in the database: stable across restarts (this
            # machine and port), unlike `id`, which names one run.
            owner=f"{socket.gethostname()}:{cfg.port}"[:64],
            policy=policy_from_config(cfg), pipeline=pipeline)
        self.loop = Loop(self.cx, threads)
        self.collect_garbage = GarbageCollector(monotonic)
        self.sole: SoleSupervisor | None = None
        self.checkpointer: Checkpointer | None = None

    @property
    def id(self) -> str:
        return self.cx.id

    def start(self) -> None:
        """Migrate the schema and rebuild the live view from the database.  DatabaseInUse when
        another supervisor runs on the same SQLite database."""
        self.sole = SoleSupervisor(self.engine, f"{self.cx.owner}, run {self.cx.id}")
        migrate(self.engine)
        self._keys()
        if self.engine.dialect.name == "sqlite":     # only there are jobs stored in slices
            with self.engine.begin() as conn:
                bigsubmit.forget_unfinished(conn)
            # A test farm stepped by hand (no threads) leaves the log to SQLite's own copying.
            if self.loop.threads and self.engine.url.database not in (None, "", ":memory:"):
                self.checkpointer = Checkpointer(self.engine)
        recover(self.cx)
        loop = self.loop
        if self.cx.gate is not None:
            loop.add_background(keys_api.RELOAD_EVERY, keys_api.reload)
        # Done once per farm: by whichever supervisor sharing the database holds the duty.
        loop.add_periodic(SCHEDULES_EVERY, schedules.apply, duty="lock schedules")
        loop.add_background(max(1.0, self.cfg.host_expiry), workerlink.adopt_stale,
                            duty="host expiry")
        billing.attach(self.cx, loop, loop.figures_of_the_loop)
        loop.add_background(presence.BEAT, presence.beats(self.clock()))
        loop.add_background(SUBMISSIONS_EVERY, forget_submissions, duty="submission ids")
        loop.add_background(SUBMISSIONS_EVERY, auditing.forget_old, duty="audit retention")
        pipeline_parts.attach(self)

    def _keys(self) -> None:
        """With a supervisor key: the authenticator and the key table (the owner's key, if
        set up, recorded as an admin's).  Without: refuse an address other machines reach
        unless told `insecure`."""
        cfg, cx = self.cfg, self.cx
        try:
            key = trust.own_key(cfg)
            owner = trust.owner_key(cfg) if key is not None else None
        except keyfiles.KeyFileError as exc:
            raise ConfigError(f"supervisor keys: {exc}") from None
        if key is None:
            if loopback(cfg.bind):
                log.info("no supervisor key in %s: listening without keys on %s (this machine "
                         "only)", trust.keys_dir(cfg), cfg.bind)
                return
            if not cfg.insecure:
                raise ConfigError(
                    f"no supervisor key in {trust.keys_dir(cfg)}: refusing to listen on "
                    f"{cfg.bind} without keys, where anyone who reaches the ports could run "
                    f"code on every worker.  Make keys with `cuefarm keys init`, or start "
                    f"with --insecure to run without them anyway")
            log.warning("INSECURE: listening on %s without keys: anyone who reaches these "
                        "ports may claim to be any user and run code on every worker", cfg.bind)
            return
        with self.engine.begin() as conn:
            if owner is not None and key_store.ensure_owner(conn, owner.public, owner.name,
                                                            self.clock()):
                log.info("recorded the owner's key (%s, %s) as an admin's", owner.name,
                         owner.fingerprint)
            table = key_store.load(conn)
        cx.gate = trust.Gate(self.loop.ctx, key, table)
        keys_api.apply_table(cx, table)
        log.info("keys on: %d user and %d worker key(s) in force", len(table.users),
                 len(table.workers))

    def bind(self, endpoints: tuple[str, str, str] | None = None) -> None:
        self.loop.bind(endpoints)

    def run(self) -> None:
        log.info("supervisor %s (cuefarm %s) listening on %s:%d-%d", self.cx.id,
                 cuefarm.__version__, self.cfg.bind, self.cfg.port, self.cfg.port + 2)
        # The process's garbage collection is the supervisor's to tune only when it runs as
        # the process (not when a test steps its loop).
        self.loop.add_periodic(GC_FREEZE, self.collect_garbage)
        self.loop.run()

    def request_stop(self) -> None:
        """Stop after the turn under way (safe from a signal handler)."""
        self.loop.request_stop()

    def close(self) -> None:
        pipeline_parts.detach(self)
        self.loop.close()
        if self.cx.gate is not None:
            self.cx.gate.stop()
        try:
            presence.stopped(self.cx)
        except Exception as exc:     # noqa: BLE001 - stopping anyway: it drops off in seconds
            log.warning("could not take this supervisor off the list: %s", exc)
        if self.checkpointer is not None:      # last: the writes above are copied too
            self.checkpointer.stop()
        if self.sole is not None:
            self.sole.release()


def recover(cx: Context) -> None:
    """After a start: hosts UP in the database wait for their workers to come back and say
    what they run; frames on hosts that are gone wait for the release rule; the admission
    policy and the central path rules are loaded."""
    registry, now = cx.live.registry, cx.mono()
    fresh = cx.clock() - cx.stale_after
    with cx.engine.begin() as conn:
        cx.farm_id = farm.farm_id(conn)
        for h in host_store.up_hosts(conn):
            if (h["supervisor_id"] not in ("", None, cx.owner)
                    and (h["last_seen"] or 0) >= fresh):
                continue        # another live supervisor serves it: leave it alone
            # They were UP when the last supervisor stopped: give them until expiry to come
            # back and say what they run.
            w = registry.get_or_add(h["id"], h["name"])
            w.slots, w.locked, w.last_seen = h["slots_configured"], h["lock"] == "LOCKED", now
            w.down_since = None
        others = [hid for hid in work.hosts_with_running(conn) if hid not in registry.by_id]
        # Frames on DOWN hosts (or hosts gone stale): the release timer starts now, as we
        # cannot know more.  Not those of hosts another supervisor serves.
        taken = workerlink.foreign_hosts(cx, conn, others)
        names = host_store.host_names(conn, others)
        for hid in others:
            if hid not in taken:
                w = registry.get_or_add(hid, names.get(hid) or f"host-{hid}")
                w.down_since = now
    with cx.engine.connect() as conn:
        cx.live.path_map_rows = hostadmin.path_map_rows(conn)
        cx.live.admission = hostadmin.admission_policy(conn, default_admission(cx.cfg))
        until = work.earliest_ban_end(conn, cx.clock())
        conn.rollback()
    if until:
        cx.out.wake_at(now + (until - cx.clock()) + 0.01)

