"""The rqd main loop: register, heartbeat, launch and kill frames, report completions.

One thread owns everything (sockets, the running table, the state directory).  Frame exits
arrive through their pidfds in the loop's poller (Linux; elsewhere watcher threads report them
through `Runner.exits` and a wake-up socket).  The loop sleeps in a zmq poll whose timeout is
the time to the next timer, so an idle rqd uses no CPU.  Each turn of the loop ends with one
durable write of the state changes it made (the frames it started, the completions it kept and
the acknowledgements it got) and only then reports the turn's completions, in one message.  Frame timeouts (see
rqd.timeouts) are among those timers: a frame's log is looked at only when a limit falls due.

Besides running frames the loop keeps the host's own locks: the idle lock (NIMBY, evaluated on
the heartbeat timer) and a drain asked for by the supervisor (accept nothing new, then exit,
reboot or stay up once the last frame has ended).
"""

from __future__ import annotations

import itertools
import logging
import math
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import zmq

import cuefarm
from cuefarm import pathmap
from cuefarm import protocol as p
from cuefarm.config import HEARTBEAT_MAX, RqdConfig, parse_address
from rqd import accounts, admission, drain, logs, machine, nimby
from rqd.admission import Refusal
from rqd.keys import worker_keys
from rqd.link import Link
from rqd.nimby import IdleProbe, NimbyMonitor
from rqd.runner import Attempt, LaunchError, Runner, kill_orphan
from rqd.state import StateDir, StateLocked

log = logging.getLogger(__name__)

SUPERVISOR_MESSAGES = frozenset({"registered", "refused", "ack", "reregister", "launch", "kill",
                                 "complete_ack", "log_request", "error", "drain"})
MAX_COMPLETIONS_PER_MESSAGE = 500
ACK_WAIT_ON_STOP = 2.0      # how long a stopping rqd waits for its last completions' acks
ACK_WAIT_ON_DRAIN = 30.0    # the same after a drain: the supervisor asked for this exit
PURGE_REASON = "purged by idle lock"
LOCKED = "locked"               # refusal: an admin locked this host
RESOURCES_TTL = 0.25            # seconds a free memory / disk reading serves launches


def _interval(value: float, default: float) -> float:
    """A usable timer interval from untrusted input."""
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return default
    return min(max(float(value), 0.05), 3600.0)


class Daemon:
    """One rqd: a worker that runs frames for a supervisor."""

    def __init__(self, config: RqdConfig, kill_grace: float = 5.0,
                 context: zmq.Context | None = None, idle_probe: IdleProbe | None = None,
                 clock: Callable[[], float] = time.monotonic):
        """`idle_probe` and `clock` drive idle detection (see rqd.nimby); the probe is only
        used when `config.nimby` is on.  Raise ValueError when the configured path rules are
        not valid."""
        self.cfg = config
        self.name = config.name
        self.os = machine.os_name()
        self.cores = machine.cores()
        self.own_rules = pathmap.parse_rules(config.path_maps)
        self.gpus: list[str] = []
        self.tags: list[str] = []
        self.nimby: NimbyMonitor | None = None
        if config.nimby:
            probe_name = "given"
            if idle_probe is None:
                idle_probe, probe_name = nimby.default_probe()
            self.nimby = NimbyMonitor(idle_probe, config.nimby_idle, clock)
            log.info("idle lock on: unlocks after %g s without local activity (probe: %s)%s",
                     self.nimby.idle_after, probe_name,
                     "; running frames are purged on a lock" if config.nimby_purge else "")
        self.switch_user = accounts.can_switch_user()
        self.drain = drain.DrainState(config.reboot_allowed)
        self.slots = config.slots if config.slots > 0 else self.cores
        self.interval = _interval(config.heartbeat_interval, 2.0)
        self.grace = max(0.0, kill_grace)
        self.state = StateDir(config.state_dir)
        self._own_ctx = context is None
        self.ctx = context or zmq.Context()
        self.poller = zmq.Poller()
        self.timeout = _interval(config.supervisor_timeout, 10.0)
        key, server_key = worker_keys(config)
        self.link = Link(self.ctx, self.poller, [parse_address(a) for a in config.supervisors],
                         max(self.timeout, 3 * self.interval), key, server_key)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_fd = self._wake_r.fileno()
        self.runner = Runner(self.name, config.log_dir, wake=self._wake,
                             work_dir=Path(config.state_dir) / "work",
                             env_allow=config.env_allow, poller=self.poller)
        self.running: dict[str, Attempt] = {}
        self.unacked: dict[str, p.Completion] = {}
        self.to_report: list[p.Completion] = []   # this turn's, sent once they are durable
        self.state_errors = 0
        self._resources_at = -math.inf
        self._resources_now = (0, 0)
        self.launch_seq = 0         # the highest Launch.seq received since registering
        self.sent_at: dict[str, float] = {}
        self.registered = False
        self.noted_registered = ""   # what the state dir says of it (see _note_registered)
        self.host_id: int | None = None
        self.register_due: float | None = None     # set while waiting out a Refused
        self.next_tick = 0.0
        self.prune_due = time.monotonic() + min(60.0, max(1.0, config.log_prune_every))
        self.pruning: threading.Thread | None = None
        self.signals = 0
        self.stopping = False
        self.stop_deadline = 0.0
        self.ack_deadline: float | None = None
        self.bad_messages = 0
        self.granted: int | None = None   # slot total the supervisor gives us (0: locked)
        self.drained = ""            # the previous run ended a drain: say so until registered
        self.release_after = 0.0     # silence after which the supervisor may rerun our frames
        self.last_heard = 0.0        # monotonic time of the last message from any supervisor
        self._ids = itertools.count(1)

    # -- life cycle ---------------------------------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT (or `request_stop`); return the process exit code."""
        try:
            try:
                self.state.open()
            except (StateLocked, OSError) as exc:
                log.error("%s", exc)
                return 1
            self._recover()
            self._install_signals()
            self.poller.register(self._wake_r, zmq.POLLIN)
            machine.cpu_percent()            # prime: the first reading is meaningless
            self._host_facts()
            self._check_nimby()              # the first Register already says whether locked
            log.info("rqd %s: %d slots, state in %s, logs in %s, tags %s%s", self.name,
                     self.slots, self.cfg.state_dir, self.cfg.log_dir, ",".join(self.tags),
                     f", {len(self.own_rules)} path rule(s)" if self.own_rules else "")
            refused = accounts.starter_refused(self.cfg.min_uid)
            if refused:
                log.warning("rqd runs as root, so frames run as the job's user; jobs you "
                            "submit will be refused: %s", refused)
            code = self._loop()
            # A signal after the drain finished means someone stops rqd by hand: no reboot.
            if self.drain.exit_action == "reboot" and not self.signals:
                code = drain.reboot(self.cfg.reboot_command)
            return code
        finally:
            self.runner.close()
            self.link.close()
            try:
                self.state.close()
            except OSError as exc:
                log.error("cannot write the state in %s: %s", self.cfg.state_dir, exc)
            self._wake_r.close()
            self._wake_w.close()
            if self._own_ctx:
                self.ctx.destroy(0)

    def request_stop(self) -> None:
        """Stop as on SIGTERM (safe from a signal handler or another thread)."""
        self.signals += 1
        self._wake()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.request_stop())

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"!")
        except (BlockingIOError, OSError):
            pass        # a byte already waits, or we are closing: either way the loop wakes

    def _recover(self) -> None:
        """Kill what a crashed rqd left running; reload the completions still unacknowledged."""
        for rec in self.state.load_running():
            n = kill_orphan(rec)
            log.warning("attempt %s (pid %d) was left running by a previous rqd: killed %d "
                        "process(es); it is not reported as running", rec.attempt_id, rec.pid, n)
            if rec.log_path:
                try:
                    logs.append(Path(rec.log_path),
                                b"\nkilled: rqd restarted while this attempt was running\n")
                except OSError:
                    pass
            self.state.remove_running(rec.attempt_id)
        self._persist()
        for c in self.state.load_completions():
            self.unacked[c.attempt_id] = c
        self.runner.farm = self.state.load_farm()
        self.drained = self.state.load_drained()
        if self.unacked:
            log.info("%d completion(s) still to report", len(self.unacked))

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> int:
        while True:
            now = time.monotonic()
            if self.signals and not self.stopping:
                self._begin_stop(now)
            elif self.signals > 1 and self.running:
                for a in self.running.values():     # asked twice: no more grace
                    if a.kill_due is not None:
                        self.runner.kill_tree(a)
            elif self.signals and self.ack_deadline is not None:
                # Stopped by hand while a drain waits for acks: wait no longer than a stop does.
                self.ack_deadline = min(self.ack_deadline, now + ACK_WAIT_ON_STOP)
            self._timers(now)
            self._commit(now)
            if self._finished(now):
                log.info("rqd %s stopped", self.name)
                return 0
            timeout = max(0.0, self._next_due(now) - time.monotonic())
            try:
                events = dict(self.poller.poll(math.ceil(timeout * 1000)))
            except zmq.ZMQError as exc:
                if exc.errno == zmq.EINTR:      # a signal: its handler already woke us
                    continue
                raise
            if self._wake_fd in events:      # the poller names a plain socket by its fd
                self._drain_wake()
            self.runner.reap(events)
            self._handle_exits()
            if self.link.sock is not None and self.link.sock in events:
                self._receive()
            self._commit(time.monotonic())

    def _persist(self) -> None:
        """Make this turn's state changes durable (one append and sync for all of them)."""
        try:
            self.state.flush()
        except OSError as exc:
            self.state_errors += 1
            if self.state_errors <= 10 or self.state_errors % 100 == 0:
                log.error("cannot write the state in %s: %s (%d time(s)); it is tried again "
                          "next turn", self.cfg.state_dir, exc, self.state_errors)

    def _commit(self, now: float) -> None:
        """End of a turn: persist, then report the turn's completions (kept until acked)."""
        self._persist()
        self._note_registered()
        if self.to_report:
            report, self.to_report = self.to_report, []
            if self.registered:
                self._send_completions(report, now)

    def _note_registered(self) -> None:
        """Keep the state dir's note of the registration in step with it (written when it
        changes, not once per heartbeat): a container's healthcheck reads it."""
        note = (f"registered with {self.link.endpoint} as host {self.host_id}"
                if self.registered else "")
        if note == self.noted_registered:
            return
        try:
            self.state.save_registered(note)
        except OSError as exc:
            log.error("cannot note the registration in %s: %s", self.cfg.state_dir, exc)
            return                   # tried again next turn
        self.noted_registered = note

    def _timers(self, now: float) -> None:
        self._drain_progress(now)
        link = self.link
        if link.sock is None:
            if now >= link.connect_due:
                link.connect(now)
                self._send_register(now)
        elif self.register_due is not None:
            if now >= self.register_due:
                self._send_register(now)
        elif now >= link.expiry():
            self.registered = False
            link.drop(now, f"no word for {link.timeout:g} s")
        if now >= self.next_tick:
            self._tick(now)
        if now >= self.prune_due:
            self._prune_logs(now)
        self._check_release(now)
        for a in list(self.running.values()):
            if a.kill_due is not None and now >= a.kill_due:
                log.info("%s still alive after %g s: SIGKILL", a.attempt_id, self.grace)
                self.runner.kill_tree(a)
            else:
                self.runner.enforce_timeouts(a, now, self.grace)

    def _next_due(self, now: float) -> float:
        due = [self.next_tick]
        if self.link.sock is None:
            due.append(self.link.connect_due)
        elif self.register_due is not None:
            due.append(self.register_due)
        else:
            due.append(self.link.expiry())
        due.extend(a.kill_due for a in self.running.values() if a.kill_due is not None)
        if self.running and self.release_after:
            due.append(self._release_due())
        # Frame timeouts are deadlines like any other: no polling between them.
        due.extend(d for a in self.running.values() if (d := a.timeout_due()) is not None)
        if self.stopping:
            if self.running:
                due.append(self.stop_deadline)
            if self.ack_deadline is not None:
                due.append(self.ack_deadline)
        return min(due)

    def _tick(self, now: float) -> None:
        """Every heartbeat interval: check the idle lock, measure the frames, heartbeat, resend
        unacked completions."""
        self.next_tick = now + self.interval
        self._check_nimby()
        running = self.runner.sample_all(list(self.running.values()))
        if not self.registered:
            return
        self.link.send(p.Heartbeat(
            running, round(machine.load_1min(), 2), round(machine.cpu_percent(), 1),
            machine.memory_free_mb(), disk_free_mb=machine.disk_free_mb(self.cfg.log_dir),
            gpus=len(self.gpus), nimby=self.nimby_locked, draining=self.drain.active,
            kept=list(self.unacked), launch_seq=self.launch_seq))
        stale = [c for aid, c in self.unacked.items()
                 if now - self.sent_at.get(aid, -math.inf) >= self.interval * 0.9]
        if stale:
            self._send_completions(stale, now)

    def _prune_logs(self, now: float) -> None:
        """Remove old frame logs on a thread of their own (a directory of 100,000 logs takes a
        while); never those of attempts running or not yet acknowledged."""
        self.prune_due = now + max(1.0, self.cfg.log_prune_every)
        days, cap = self.cfg.log_keep_days, self.cfg.log_max_mb
        if (days <= 0 and cap <= 0) or (self.pruning is not None and self.pruning.is_alive()):
            return
        before = time.time() - days * 86400.0 if days > 0 else -math.inf
        keep = set(self.running) | set(self.unacked)
        root = self.runner.root_log_dir

        def prune() -> None:
            removed, freed = logs.prune(root, before, keep, max(0, cap) * machine.MB)
            if removed:
                log.info("removed %d old frame log(s), %.1f MB, from %s", removed,
                         freed / machine.MB, root)
        self.pruning = threading.Thread(target=prune, name="log-pruning", daemon=True)
        self.pruning.start()

    def _release_due(self) -> float:
        """When to stop our frames for want of a supervisor: before it may rerun them elsewhere
        (`release_after` of silence), leaving the kill grace if there is room for it."""
        return self.last_heard + max(0.8 * self.release_after - self.grace,
                                     0.5 * self.release_after)

    def _check_release(self, now: float) -> None:
        """After a long silence the supervisor treats this host as lost and reruns its frames
        elsewhere: make sure ours are dead by then, so one frame never runs twice at once."""
        if not self.running or not self.release_after or now < self._release_due():
            return
        why = f"no word from a supervisor for {now - self.last_heard:.0f} s"
        kill_by = self.last_heard + 0.8 * self.release_after
        for a in self.running.values():
            if a.lost:
                continue
            log.warning("%s: %s; stopping it before the supervisor releases it",
                        a.attempt_id, why)
            a.lost = why
            self.runner.terminate(a, why, self.grace)
            if a.kill_due is not None:
                a.kill_due = max(now, min(a.kill_due, kill_by))

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # -- supervisor messages ------------------------------------------------------------------

    def _receive(self) -> None:
        for data in self.link.receive():
            now = time.monotonic()
            self.link.heard(now)         # anything at all proves the supervisor alive
            self.last_heard = now
            try:
                env, body = p.decode(data, max_size=p.MAX_WORKER_MESSAGE,
                                     allowed=SUPERVISOR_MESSAGES)
            except p.ProtocolError as exc:
                self.bad_messages += 1
                if self.bad_messages <= 10 or self.bad_messages % 100 == 0:
                    log.warning("bad message from the supervisor (%s: %s); %d so far",
                                exc.code, exc.message, self.bad_messages)
                continue
            handler = getattr(self, f"_on_{env.type}")
            try:
                handler(body, now)
            except Exception:  # noqa: BLE001 - one bad message must not stop the worker
                log.exception("handling %s failed", env.type)

    def _on_registered(self, msg: p.Registered, now: float) -> None:
        self.registered = True
        self.register_due = None
        self.host_id = msg.host_id
        self.launch_seq = 0         # this supervisor numbers its own launches
        self.granted = None         # this supervisor says its own right after
        self.interval = min(_interval(msg.heartbeat_interval, self.interval), HEARTBEAT_MAX)
        if self.drained:
            self.drained = ""      # the supervisor knows now
            try:
                self.state.clear_drained()
            except OSError as exc:
                log.error("cannot clear the drain marker: %s", exc)
        # Acks only answer heartbeats: a timeout shorter than a few intervals would flap.
        self.link.timeout = max(self.timeout, 3 * self.interval)
        ra = msg.release_after
        self.release_after = (min(float(ra), 1e6) if isinstance(ra, (int, float))
                              and math.isfinite(ra) and ra > 0 else 0.0)
        self.next_tick = min(self.next_tick, now + self.interval)
        self.link.connected()
        self._join_farm(msg.farm_id)
        log.info("registered with %s as host %d (heartbeat every %g s)",
                 self.link.endpoint, msg.host_id, self.interval)
        rest = [c for aid, c in self.unacked.items()
                if now - self.sent_at.get(aid, -math.inf) >= self.interval * 0.9]
        if rest:
            self._send_completions(rest, now)

    def _join_farm(self, farm: str) -> None:
        """Serve `farm` from now on.  Attempt ids are unique within one farm only, so what
        this rqd ran or kept for another farm is stopped and set aside, never reported here,
        and logs go to a directory of the farm's own."""
        old = self.runner.farm
        if not farm or farm == old or not logs.safe_attempt_id(farm):
            return
        if old:
            for aid, a in list(self.running.items()):
                log.warning("%s belongs to farm %s, not to farm %s served now: killed",
                            aid, old, farm)
                self.runner.kill_tree(a)
                self.runner.write_footer(a.log_path, p.Completion(
                    aid, -1, a.started, time.time(), a.peak_rss, a.cpu_time,
                    f"killed: rqd now serves another farm ({farm})"))
                self.running.pop(aid)
                self.state.remove_running(aid)
            if self.unacked:
                try:
                    where = self.state.set_aside_completions(old)
                except OSError as exc:
                    where = f"(not moved: {exc})"
                log.warning("%d completion(s) of farm %s are not reported to farm %s; kept "
                            "in %s", len(self.unacked), old, farm, where)
                self.unacked.clear()
                self.sent_at.clear()
                self.to_report.clear()
        log.info("serving farm %s; frame logs in %s", farm, self.runner.root_log_dir / farm)
        self.runner.farm = farm
        try:
            self.state.save_farm(farm)
        except OSError as exc:
            log.error("cannot record the farm served in %s: %s", self.cfg.state_dir, exc)

    def _on_refused(self, msg: p.Refused, now: float) -> None:
        self.registered = False
        retry = msg.retry_after if math.isfinite(msg.retry_after) else 30.0
        retry = min(max(retry, 0.5), 3600.0)
        self.register_due = now + retry
        log.warning("the supervisor refused registration: %s; retrying in %g s",
                    msg.reason, retry)

    def _on_ack(self, msg: p.Ack, now: float) -> None:
        if msg.slots is not None and msg.slots != self.granted:
            log.info("the supervisor gives this host %d slot(s)%s", msg.slots,
                     " (locked)" if msg.slots == 0 else "")
            self.granted = msg.slots

    def _on_error(self, msg: p.Error, now: float) -> None:
        log.warning("the supervisor reported an error: %s: %s", msg.code, msg.message)

    def _on_reregister(self, msg: p.Reregister, now: float) -> None:
        log.info("the supervisor asks to register again: %s", msg.reason)
        self.registered = False
        self._send_register(now)

    def _on_drain(self, msg: p.Drain, now: float) -> None:
        self.drain.handle(msg, self.stopping)
        if self.drain.active:
            log.info("%d frame(s) still running", len(self.running))

    def _on_launch(self, msg: p.Launch, now: float) -> None:
        aid = msg.attempt_id
        self.launch_seq = max(self.launch_seq, msg.seq)
        if not logs.safe_attempt_id(aid):
            self.link.send(p.Refuse(aid[:200], "attempt id is not a plain name"))
            return
        if aid in self.running:
            log.info("launch of %s again: already running", aid)
            return
        if aid in self.unacked:     # it already ran here: report that again instead
            log.info("launch of %s again: already finished", aid)
            self._send_completions([self.unacked[aid]], now)
            return
        try:
            reason = self._refusal(msg)
            if reason:
                raise Refusal(reason)
            ready = admission.prepare(msg, self.own_rules, self.os, self.cfg.min_uid,
                                      self.switch_user, self.cfg.deny_users)
        except Refusal as exc:
            log.info("refusing %s: %s", aid, exc)
            self.runner.write_refusal(msg, str(exc))
            self.link.send(p.Refuse(aid, str(exc)))
            return
        try:
            attempt = self.runner.launch(ready.launch, ready.run_as, ready.submitted_command)
        except LaunchError as exc:
            self._complete(self.runner.failed_launch(msg, str(exc)), now)
            return
        self.running[aid] = attempt
        self.state.save_running(attempt.record())     # durable at the end of this turn

    def _refusal(self, msg: p.Launch) -> str:
        if self.stopping:
            return admission.STOPPING
        if self.drain.active:
            return admission.DRAINING
        if self.nimby_locked:
            return admission.IDLE_LOCKED
        if self.granted == 0:
            return LOCKED
        if msg.slots < 0:
            return f"bad slot count {msg.slots}"
        used = sum(a.slots for a in self.running.values())
        if used + msg.slots > self.slots:
            return (f"not enough free slots: {used} of {self.slots} in use, "
                    f"{msg.slots} asked")
        reserved = sum(max(0, a.launch.memory_mb - a.rss // machine.MB)
                       for a in self.running.values())
        memory_free, disk_free = self._resources()
        return admission.resource_refusal(
            memory_mb=msg.memory_mb, memory_free_mb=memory_free,
            reserved_mb=reserved, disk_free_mb=disk_free,
            min_free_disk_mb=self.cfg.min_free_disk_mb, log_dir=self.cfg.log_dir)

    def _resources(self) -> tuple[int, int]:
        """Free memory and log disk (MB), measured at most every RESOURCES_TTL seconds: a
        burst of launches shares one reading (the memory they reserve is counted apart)."""
        now = time.monotonic()
        if now - self._resources_at >= RESOURCES_TTL:
            self._resources_at = now
            self._resources_now = (machine.memory_free_mb(),
                                   machine.disk_free_mb(self.cfg.log_dir))
        return self._resources_now

    def _on_kill(self, msg: p.Kill, now: float) -> None:
        for aid in msg.attempt_ids:
            attempt = self.running.get(aid)
            if attempt is not None:
                self.runner.terminate(attempt, msg.reason, self.grace)
            elif aid in self.unacked:       # it ended already: say so again
                self._send_completions([self.unacked[aid]], now)
            elif logs.safe_attempt_id(aid):
                # Never launched here (the Launch went astray) or long finished and acked:
                # either way nothing runs, and the supervisor must hear that to close it.
                log.info("kill of %s: not running here; reporting it lost", aid)
                t = time.time()
                self._complete(p.Completion(aid, -1, t, t, reason=f"lost: not running on "
                                            f"{self.name}"), now)

    def _on_complete_ack(self, msg: p.CompleteAck, now: float) -> None:
        for aid in msg.attempt_ids:
            self.unacked.pop(aid, None)
            self.sent_at.pop(aid, None)
            self.state.remove_completion(aid)

    def _on_log_request(self, msg: p.LogRequest, now: float) -> None:
        reply = p.LogReply(msg.token, msg.attempt_id[:200])
        if not logs.safe_attempt_id(msg.attempt_id):
            reply.error = "bad attempt id"
        else:
            try:
                reply.offset, reply.size, reply.data = logs.read_range(
                    self.runner.log_path(msg.attempt_id), msg.offset, msg.limit)
            except FileNotFoundError:
                reply.error = f"no log of attempt {msg.attempt_id} on {self.name}"
            except OSError as exc:
                reply.error = f"cannot read the log: {exc}"
        self.link.send(reply)

    # -- reports ------------------------------------------------------------------------------

    def _send_register(self, now: float) -> None:
        self.register_due = None
        self.link.heard(now)      # the supervisor has a full timeout to answer
        kept = list(self.unacked.values())
        completions = kept[:MAX_COMPLETIONS_PER_MESSAGE]
        # The rest follow in Complete messages once registered; their ids tell the supervisor
        # not to take those attempts for lost meanwhile.
        more = [c.attempt_id for c in kept[MAX_COMPLETIONS_PER_MESSAGE:]]
        body = p.Register(
            name=self.name, hostname=machine.hostname(), os=self.os,
            cores=self.cores, memory_mb=machine.memory_mb(), slots=self.slots,
            version=cuefarm.__version__,
            running=self.runner.sample_all(list(self.running.values())),
            completions=completions, tags=list(self.tags), gpus=len(self.gpus),
            disk_free_mb=machine.disk_free_mb(self.cfg.log_dir), nimby=self.nimby_locked,
            path_maps=list(self.own_rules), kept=more, drained=self.drained,
            launch_seq=self.launch_seq, farm_id=self.runner.farm)
        if self.link.send(body, next(self._ids)):
            for c in completions:
                self.sent_at[c.attempt_id] = now

    def _send_completions(self, completions: list[p.Completion], now: float) -> None:
        for i in range(0, len(completions), MAX_COMPLETIONS_PER_MESSAGE):
            batch = completions[i:i + MAX_COMPLETIONS_PER_MESSAGE]
            if self.link.send(p.Complete(batch)):
                for c in batch:
                    self.sent_at[c.attempt_id] = now

    def _complete(self, completion: p.Completion, now: float) -> None:
        """Keep a completion in place of its running attempt; it is reported at the end of the
        turn, once that is durable."""
        self.unacked[completion.attempt_id] = completion
        self.state.save_completion(completion)
        self.state.remove_running(completion.attempt_id)
        self.to_report.append(completion)

    def _handle_exits(self) -> None:
        while True:
            try:
                ex = self.runner.exits.get_nowait()
            except queue.Empty:
                return
            attempt = self.running.pop(ex.attempt_id, None)
            if attempt is None:
                continue
            self._complete(self.runner.finish(attempt, ex), time.monotonic())

    # -- host facts and the idle lock --------------------------------------------------------

    def _host_facts(self) -> None:
        """GPUs (asked once: they do not come and go) and the tags they imply."""
        self.gpus = machine.gpus()
        tags: list[str] = []
        for tag in [*self.cfg.tags, *machine.hardware_tags(self.os, len(self.gpus))]:
            if tag and tag not in tags:
                tags.append(tag)
        self.tags = tags
        if self.gpus:
            log.info("%d GPU(s): %s", len(self.gpus), "; ".join(self.gpus))

    @property
    def nimby_locked(self) -> bool:
        return self.nimby is not None and self.nimby.locked

    def _check_nimby(self) -> None:
        if self.nimby is None or not self.nimby.update():
            return
        if not self.nimby.locked:
            log.info("idle lock released: no local activity for %g s", self.nimby.idle_after)
            return
        log.info("idle lock: a local user is active; refusing frames%s",
                 f", purging {len(self.running)} running" if self.cfg.nimby_purge
                 and self.running else "")
        if self.cfg.nimby_purge:
            for a in self.running.values():
                a.lost = a.lost or PURGE_REASON
                self.runner.terminate(a, PURGE_REASON, self.grace)

    # -- draining and stopping ----------------------------------------------------------------

    def _drain_progress(self, now: float) -> None:
        """Once a drain has nothing left running, begin the exit it asked for (if any)."""
        if self.stopping or self.running or not self.drain.active:
            return
        action = self.drain.settle()
        if action is None:
            return
        log.info("drained: %s once the supervisor acknowledges %d completion(s)",
                 "rebooting" if action == "reboot" else "exiting", len(self.unacked))
        self.stopping = True
        self.stop_deadline = now
        self.ack_deadline = now + ACK_WAIT_ON_DRAIN
        try:
            self.state.save_drained(action)
        except OSError as exc:
            log.error("cannot record the finished drain in %s: %s", self.cfg.state_dir, exc)

    def _begin_stop(self, now: float) -> None:
        self.stopping = True
        self.stop_deadline = now + self.grace + 5.0
        log.info("stopping: killing %d running frame(s)", len(self.running))
        for a in self.running.values():
            a.lost = a.lost or "rqd stopped"
            self.runner.terminate(a, "rqd stopped", self.grace)

    def _finished(self, now: float) -> bool:
        if not self.stopping:
            return False
        if self.running:
            if now < self.stop_deadline:
                return False
            log.error("%d frame(s) did not end in time; exiting anyway", len(self.running))
            return True
        if self.ack_deadline is None:
            self.ack_deadline = now + ACK_WAIT_ON_STOP
        if not self.unacked:
            return True
        if not self.registered and self.drain.exit_action is None:
            return True     # a stop on a signal does not wait for a supervisor to come back
        if now >= self.ack_deadline:
            log.warning("%d completion(s) unacknowledged; they are kept for the next start",
                        len(self.unacked))
            return True
        return False
