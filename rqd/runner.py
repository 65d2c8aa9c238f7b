"""Running frames: launch a process in its own group, watch it, measure it, kill its tree.

A frame gets a clean environment (see `frame_env`), never rqd's own, and runs in the job's
`cwd` or, when the job gives none, in a fresh directory of its own,
`<state dir>/work/<farm id>/<attempt id>`, removed after the frame if it left it empty.

Each frame runs in its own session (POSIX) so that its whole tree can be signalled as one process
group, and no signal aimed at rqd (a Ctrl-C in a terminal) reaches it.  Given the daemon's
poller, on Linux each process is watched through a pidfd in that poller: when it becomes
readable the daemon calls `reap()`, which collects the exit onto `Runner.exits`.  Elsewhere (or
without a poller) a watcher thread per process waits for it, puts the `Exit` on `Runner.exits`
and calls `wake()`.  Everything else happens on the daemon's thread.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import queue
import signal
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import zmq

from cuefarm import protocol as p
from cuefarm.config import FRAME_ENV_ALLOW
from cuefarm.frames import expand_command
from rqd import logs, machine
from rqd.accounts import RunAs
from rqd.progress import ProgressReader
from rqd.state import RunningRecord
from rqd.timeouts import FrameTimeouts

log = logging.getLogger(__name__)

SIGKILL = getattr(signal, "SIGKILL", signal.SIGTERM)
# Empty working directories kept for reuse (at most): more than a host has slots is waste.
MAX_SPARE_CWDS = 64
LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0)


class LaunchError(Exception):
    """The frame's process could not be started."""


@dataclass
class Exit:
    """What the watcher thread learned when a frame's process ended."""

    attempt_id: str
    exit_status: int
    stopped: float              # epoch
    cpu_time: float = 0.0       # from the kernel's rusage of the process and its reaped children
    max_rss: int = 0            # bytes, largest single process


@dataclass
class Attempt:
    """A frame process this rqd is running."""

    launch: p.Launch
    pid: int
    pgid: int
    create_time: float
    started: float                      # epoch
    log_path: Path
    rss: int = 0
    peak_rss: int = 0
    cpu_time: float = 0.0
    descendants: list[psutil.Process] = field(default_factory=list)
    kill_reason: str | None = None      # set once a kill was asked for
    kill_due: float | None = None       # monotonic time of the SIGKILL after the grace period
    lost: str = ""                      # why it was killed when not the frame's fault
    timeouts: FrameTimeouts | None = None   # None: no runtime or output limit
    timed_out: str = ""                 # the timeout reason, once a limit killed it
    own_cwd: str = ""                   # the working directory made for it (no job cwd)
    progress: ProgressReader | None = None  # reads the progress lines it printed
    _proc: psutil.Process | None = None
    _proc_looked: bool = False

    @property
    def proc(self) -> psutil.Process | None:
        """psutil's handle on the process (None once it is gone), made the first time it is
        needed: most short frames end before anything measures or stops them.  Until the
        daemon reaps it the pid cannot name another process, and the create time checks it."""
        if not self._proc_looked:
            self._proc_looked = True
            self._proc = machine.same_process(self.pid, self.create_time)
        return self._proc

    @property
    def attempt_id(self) -> str:
        return self.launch.attempt_id

    @property
    def slots(self) -> int:
        return self.launch.slots

    def timeout_due(self) -> float | None:
        """The monotonic time its timeouts next need a look; None when there is nothing to
        watch (no limits, or it is being killed already)."""
        if self.timeouts is None or self.kill_reason is not None:
            return None
        return self.timeouts.due()

    def record(self) -> RunningRecord:
        return RunningRecord(self.attempt_id, self.pid, self.create_time, self.pgid,
                             self.started, str(self.log_path), self.slots)


def _allowed(name: str, allow: tuple[str, ...] | list[str]) -> bool:
    if sys.platform.startswith("win"):      # variable names ignore case there
        return any(fnmatch.fnmatchcase(name.upper(), pat.upper()) for pat in allow)
    return any(fnmatch.fnmatchcase(name, pat) for pat in allow)


def inherited_env(allow: tuple[str, ...] | list[str] = FRAME_ENV_ALLOW) -> dict[str, str]:
    """The variables of rqd's own environment named by `allow` (names or shell-style patterns
    such as LC_*)."""
    return {k: v for k, v in os.environ.items() if _allowed(k, allow)}


def frame_env(launch: p.Launch, worker_name: str, log_path: Path,
              run_as: RunAs | None = None,
              allow: tuple[str, ...] | list[str] = FRAME_ENV_ALLOW,
              inherited: dict[str, str] | None = None) -> dict[str, str]:
    """The frame's environment: the variables of rqd's own named by `allow` (`inherited`, if
    already picked), then the job's, then the user's (HOME, USER, LOGNAME) when it runs as the
    job's user, then the CUE_* variables.  Nothing else of rqd's."""
    env = dict(inherited) if inherited is not None else inherited_env(allow)
    env.update(launch.env)
    if run_as is not None:
        env.update(run_as.env())
    env.update({
        "CUE_JOB": launch.job,
        "CUE_JOB_ID": str(launch.job_id),
        "CUE_LAYER": launch.layer,
        "CUE_FRAME": str(launch.frame_start),
        "CUE_FRAME_START": str(launch.frame_start),
        "CUE_FRAME_END": str(launch.frame_end),
        "CUE_FRAMES": launch.frames,
        "CUE_ATTEMPT": launch.attempt_id,
        "CUE_HOST": worker_name,
        "CUE_THREADS": str(launch.slots),
        "CUE_PROJECT": launch.project,
        "CUE_USER": launch.user,
        "CUE_LOG": str(log_path),
    })
    return env


class Runner:
    """Starts and tracks frame processes for one rqd."""

    def __init__(self, worker_name: str, log_dir: str | Path,
                 wake: Callable[[], None] = lambda: None, work_dir: str | Path | None = None,
                 env_allow: tuple[str, ...] | list[str] = FRAME_ENV_ALLOW,
                 poller: zmq.Poller | None = None):
        """`work_dir` holds the working directories of frames whose job gives no cwd
        (default: a `work` directory beside `log_dir`); `env_allow` names the variables of
        rqd's environment a frame inherits; `poller`, where the daemon waits, watches the
        frames' pidfds (Linux)."""
        self.worker_name = worker_name
        self.hostname = machine.hostname()
        self.root_log_dir = Path(log_dir)
        self.root_work_dir = Path(work_dir) if work_dir else self.root_log_dir.parent / "work"
        self.env_allow = tuple(env_allow)
        self.farm = ""
        self.wake = wake
        self.exits: queue.Queue[Exit] = queue.Queue()
        self.poller = poller if hasattr(os, "pidfd_open") else None
        self.pidfds: dict[int, tuple[str, subprocess.Popen]] = {}
        self._made_dirs: set[Path] = set()
        # Empty working directories of ended attempts, (path, owner uid), kept as
        # <work dir>/.spare-N and renamed into place for the next attempt of that user
        # instead of made anew (see _own_cwd).
        self._spare_cwds: list[tuple[str, int]] = []
        self._cwd_look: tuple | None = None    # what a new working directory looks like here
        self._null: int | None = None        # /dev/null, every frame's stdin
        self._dirs: tuple[str, Path, Path] = ("", self.root_log_dir, self.root_work_dir)
        # rqd's environment does not change while it runs: pick what frames inherit once.
        self.inherited = inherited_env(self.env_allow)

    def _farm_dirs(self) -> tuple[str, Path, Path]:
        if self._dirs[0] != self.farm:
            farm = self.farm
            self._dirs = (farm, self.root_log_dir / farm if farm else self.root_log_dir,
                          self.root_work_dir / farm if farm else self.root_work_dir)
        return self._dirs

    @property
    def log_dir(self) -> Path:
        """Where the logs of the current farm go: attempt ids are only unique within a farm
        (one database), so each farm has a directory of its own."""
        return self._farm_dirs()[1]

    @property
    def work_dir(self) -> Path:
        return self._farm_dirs()[2]

    def _devnull(self) -> int:
        if self._null is None:
            self._null = os.open(os.devnull, os.O_RDONLY)
            os.set_inheritable(self._null, False)
        return self._null

    def log_path(self, attempt_id: str) -> Path:
        return logs.log_path(self.log_dir, attempt_id)

    def _open_in(self, directory: Path, make):
        """`make()` something in `directory`, creating the directory the first time (or again
        when someone removed it meanwhile)."""
        if directory in self._made_dirs:
            try:
                return make()
            except FileNotFoundError:
                self._made_dirs.discard(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._made_dirs.add(directory)
        return make()

    def _own_cwd(self, cwd: str, uid: int) -> None:
        """Make `cwd`, a new attempt's own empty working directory for user `uid`.

        Making a directory allocates an inode, which on some file systems costs far more than
        the rest of a launch; so an empty directory an earlier attempt of the same user left
        is renamed to `cwd` instead.  `_retire_cwd` only keeps directories that cannot be told
        from a new one: empty, a real directory, owned by that user, the usual mode and no
        extended attributes (no ACLs; a security label must be the one a new directory gets).
        Only the same user's: a process the earlier frame left behind may still have the
        directory as its own working directory.
        """
        parent = str(self.work_dir)
        for i in range(len(self._spare_cwds) - 1, -1, -1):
            spare, owner = self._spare_cwds[i]
            if owner == uid and os.path.dirname(spare) == parent:
                del self._spare_cwds[i]
                try:
                    os.rename(spare, cwd)
                    return
                except OSError:
                    _remove_if_empty(spare)
                break
        self._open_in(self.work_dir, lambda: _mkdir(cwd))
        if self._cwd_look is None and hasattr(os, "listxattr"):
            try:
                self._cwd_look = _look(cwd, os.lstat(cwd))
            except OSError:
                pass

    def _retire_cwd(self, cwd: str) -> None:
        """An ended attempt's own working directory: gone from its place either way.  Kept
        as a spare for `_own_cwd` when empty and as new; otherwise removed if empty (what a
        frame left stays for whoever wants it)."""
        if self._cwd_look is not None and len(self._spare_cwds) < MAX_SPARE_CWDS:
            try:
                st = os.lstat(cwd)
                if stat.S_ISDIR(st.st_mode) and _look(cwd, st) == self._cwd_look:
                    with os.scandir(cwd) as entries:
                        empty = next(entries, None) is None
                    if empty:
                        # Fixed names: a restarted rqd's spares replace what a killed one left.
                        taken = {os.path.basename(path) for path, _ in self._spare_cwds}
                        name = next(f".spare-{i}" for i in range(MAX_SPARE_CWDS + 1)
                                    if f".spare-{i}" not in taken)
                        spare = os.path.join(os.path.dirname(cwd), name)
                        os.rename(cwd, spare)      # onto an empty leftover spare, if any
                        self._spare_cwds.append((spare, st.st_uid))
                        return
            except OSError:
                pass
        _remove_if_empty(cwd)

    def launch(self, launch: p.Launch, run_as: RunAs | None = None,
               submitted_command: list[str] | str | None = None) -> Attempt:
        """Start the frame's process; raise LaunchError when it cannot start.

        `launch` is already translated for this host; `submitted_command` (the command before
        translation) only goes into the log header.  With `run_as` the process runs as that
        user; the log is created by rqd first, then handed to the user so the frame can write
        to it and rqd can still read it.
        """
        path = self.log_path(launch.attempt_id)
        command = expand_command(launch.command, launch.frame_start, launch.frame_end)
        if submitted_command is not None:
            submitted_command = expand_command(submitted_command, launch.frame_start,
                                               launch.frame_end)
        env = frame_env(launch, self.worker_name, path, run_as, self.env_allow, self.inherited)
        started = time.time()
        try:
            logfile = self._open_in(self.log_dir, lambda: os.open(path, LOG_FLAGS, 0o666))
        except OSError as exc:
            raise LaunchError(f"cannot open log {path}: {exc}") from None
        cwd = launch.cwd or str(self.work_dir / launch.attempt_id)
        try:
            if launch.cwd is None:
                self._own_cwd(cwd, run_as.uid if run_as is not None else _uid())
                if run_as is not None:
                    os.chown(cwd, run_as.uid, run_as.gid)
            elif not os.path.isdir(cwd):
                raise LaunchError(f"the working directory {cwd} does not exist on this host")
            _write_all(logfile, logs.header(
                attempt_id=launch.attempt_id, command=command, cwd=cwd, env=env,
                host=self.worker_name, hostname=self.hostname, started=started,
                job=launch.job, layer=launch.layer, frames=launch.frames,
                submitted=submitted_command, user=run_as.name if run_as else None,
                own_cwd=launch.cwd is None))
            kwargs: dict = {}
            if run_as is not None:
                os.chown(path, run_as.uid, run_as.gid)
                if not run_as.is_current():
                    kwargs.update(run_as.popen_kwargs())
            if sys.platform.startswith("win"):
                kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
            else:
                kwargs["start_new_session"] = True
            # Output is measured from here: the header is not the frame's.
            log_size = os.fstat(logfile).st_size
            started_mono = time.monotonic()
            # The child writes straight to the log's file descriptor: no pipe, no buffering here.
            popen = subprocess.Popen(
                command, shell=isinstance(command, str), cwd=cwd, env=env,
                stdin=self._devnull(), stdout=logfile, stderr=subprocess.STDOUT,
                close_fds=True, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure to start is the frame's result
            why = _launch_error(exc, command)
            try:
                _write_all(logfile, f"\nlaunch failed: {why}\n".encode("utf-8", "replace"))
            except OSError:
                pass
            if launch.cwd is None:
                _remove_if_empty(cwd)
            raise LaunchError(why) from None
        finally:
            os.close(logfile)
        try:
            create_time = machine.create_time(popen.pid)
        except psutil.Error:
            create_time = 0.0     # already gone; the watcher reports its exit
        timeouts = FrameTimeouts(path, launch.timeout, launch.timeout_no_output, started_mono,
                                 log_size)
        attempt = Attempt(launch=launch, pid=popen.pid, pgid=popen.pid, create_time=create_time,
                          started=started, log_path=path,
                          timeouts=timeouts if timeouts.active else None,
                          own_cwd=cwd if launch.cwd is None else "",
                          progress=ProgressReader(path, log_size, launch.frame_start,
                                                  launch.frame_end, launch.frames))
        self._start_watching(attempt.attempt_id, popen)
        log.info("launched %s (pid %d%s): %s", attempt.attempt_id, popen.pid,
                 f", as {run_as.name}" if run_as else "", command)
        return attempt

    def _start_watching(self, attempt_id: str, popen: subprocess.Popen) -> None:
        if self.poller is not None:
            try:
                fd = os.pidfd_open(popen.pid)
            except OSError as exc:       # an old kernel: a thread does it
                log.info("no pidfd for %s (%s): watching it with a thread", attempt_id, exc)
            else:
                self.pidfds[fd] = (attempt_id, popen)
                self.poller.register(fd, zmq.POLLIN)
                return
        threading.Thread(target=self._watch, args=(attempt_id, popen),
                         name=f"watch-{attempt_id}", daemon=True).start()

    def reap(self, events: dict) -> None:
        """Collect the exits of the watched processes whose pidfd `events` (from the
        poller) says are readable."""
        for fd in [fd for fd in events if fd in self.pidfds]:
            attempt_id, popen = self.pidfds[fd]
            try:
                pid, status, usage = os.wait4(popen.pid, os.WNOHANG)
            except ChildProcessError:
                pid, status, usage = popen.pid, None, None
            except InterruptedError:
                continue
            if pid == 0:
                continue                 # not yet (the poll can see it early)
            del self.pidfds[fd]
            self.poller.unregister(fd)
            os.close(fd)
            self.exits.put(_exit_of(attempt_id, popen, status, usage))

    def _watch(self, attempt_id: str, popen: subprocess.Popen) -> None:
        cpu, max_rss = 0.0, 0
        try:
            if hasattr(os, "wait4"):
                # wait4 also gives the kernel's account of CPU and peak memory for the process
                # and its reaped children, which no later sample can see.
                while True:
                    try:
                        _, status, usage = os.wait4(popen.pid, 0)
                        break
                    except InterruptedError:
                        continue
                code = os.waitstatus_to_exitcode(status)
                popen.returncode = code      # reaped here: keep Popen from waiting again
                cpu = usage.ru_utime + usage.ru_stime
                max_rss = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
            else:
                code = popen.wait()
        except ChildProcessError:
            code = popen.returncode if popen.returncode is not None else -1
        except Exception:  # a watcher must always report, whatever happened
            log.exception("watching %s failed", attempt_id)
            code = -1
        self.exits.put(Exit(attempt_id, code, time.time(), cpu, max_rss))
        self.wake()

    def close(self) -> None:
        """Stop watching (the daemon exits): close the pidfds and /dev/null."""
        for fd in list(self.pidfds):
            if self.poller is not None:
                self.poller.unregister(fd)
            os.close(fd)
        self.pidfds.clear()
        for spare, _ in self._spare_cwds:
            _remove_if_empty(spare)
        self._spare_cwds.clear()
        if self._null is not None:
            os.close(self._null)
            self._null = None

    def sample(self, attempt: Attempt) -> p.RunningAttempt:
        """Measure the attempt's process tree now, read the progress lines it printed since
        the last sample, and return it as the protocol reports it."""
        if attempt.proc is not None:
            self._took(attempt, machine.sample_tree(attempt.proc))
        return self._report(attempt)

    def sample_all(self, attempts: list[Attempt]) -> list[p.RunningAttempt]:
        """`sample` of each attempt, their trees found in one look at the process table."""
        live = [a for a in attempts if a.proc is not None]
        if live:
            for a, s in zip(live, machine.sample_trees([a.proc for a in live])):
                self._took(a, s)
        return [self._report(a) for a in attempts]

    @staticmethod
    def _took(attempt: Attempt, s: machine.TreeSample | None) -> None:
        if s is not None:
            attempt.rss = s.rss
            attempt.peak_rss = max(attempt.peak_rss, s.rss)
            attempt.cpu_time = max(attempt.cpu_time, s.cpu_time)
            attempt.descendants = s.descendants

    @staticmethod
    def _report(attempt: Attempt) -> p.RunningAttempt:
        progress = attempt.progress.poll() if attempt.progress is not None else None
        return p.RunningAttempt(attempt.attempt_id, attempt.pid, attempt.rss, attempt.peak_rss,
                                round(attempt.cpu_time, 3), attempt.started, progress)

    def terminate(self, attempt: Attempt, reason: str, grace: float) -> None:
        """Ask the attempt's tree to stop (SIGTERM); `kill_due` says when to SIGKILL it."""
        if attempt.kill_reason is None:
            attempt.kill_reason = reason
        if attempt.proc is not None:
            try:
                attempt.descendants = attempt.proc.children(recursive=True)
            except psutil.Error:
                pass
        machine.signal_group(attempt.pgid, signal.SIGTERM)
        if attempt.kill_due is None:
            attempt.kill_due = time.monotonic() + grace
        log.info("terminating %s (pid %d): %s", attempt.attempt_id, attempt.pid, reason)

    def enforce_timeouts(self, attempt: Attempt, now: float, grace: float) -> bool:
        """Terminate the attempt (as a Kill does) when it exceeded a timeout at monotonic
        `now`; return True when it did."""
        due = attempt.timeout_due()
        if due is None or now < due:
            return False
        reason = attempt.timeouts.check(now) if attempt.timeouts is not None else ""
        if not reason:
            return False
        attempt.timed_out = reason
        log.warning("%s: %s", attempt.attempt_id, reason)
        self.terminate(attempt, reason, grace)
        return True

    def kill_tree(self, attempt: Attempt) -> None:
        """SIGKILL the attempt's process group and every descendant seen alive in it."""
        machine.signal_group(attempt.pgid, SIGKILL)
        for proc in attempt.descendants:
            try:
                proc.kill()       # psutil checks the pid was not reused since the snapshot
            except psutil.Error:
                pass
        attempt.kill_due = None

    def finish(self, attempt: Attempt, ex: Exit) -> p.Completion:
        """Clean up after the process ended: kill leftovers, write the footer, build the result."""
        # Whatever the frame left running in its group is part of the frame: it must not
        # outlive it and overlap a rerun.
        self.kill_tree(attempt)
        if attempt.own_cwd:
            self._retire_cwd(attempt.own_cwd)
        peak = max(attempt.peak_rss, ex.max_rss)
        cpu = round(max(attempt.cpu_time, ex.cpu_time), 3)
        exit_status = ex.exit_status
        # A timeout is only set on an attempt nobody was killing yet, so it names the first
        # cause even when a stop or purge came during the grace period.
        if attempt.timed_out:
            reason = attempt.timed_out
            # A frame may catch SIGTERM and exit 0; a timed-out frame still did not succeed.
            exit_status = exit_status or 1
        elif attempt.lost:
            reason = f"lost: {attempt.lost}"
        elif attempt.kill_reason is not None:
            reason = f"killed: {attempt.kill_reason}" if attempt.kill_reason else "killed"
        elif exit_status == 127 and isinstance(attempt.launch.command, str):
            # The shell's word for a command it could not find (the log has its message).
            reason = "command not found (the shell exited 127)"
        else:
            reason = ""
        completion = p.Completion(attempt.attempt_id, exit_status, attempt.started,
                                  max(ex.stopped, attempt.started), peak, cpu, reason)
        self.write_footer(attempt.log_path, completion)
        log.info("%s ended: exit status %s%s", attempt.attempt_id,
                 logs.describe_status(exit_status), f" ({reason})" if reason else "")
        return completion

    def failed_launch(self, launch: p.Launch, error: str) -> p.Completion:
        """The completion (and log footer) of an attempt whose process never started."""
        now = time.time()
        completion = p.Completion(launch.attempt_id, 127, now, now, 0, 0.0,
                                  f"launch failed: {error}")
        self.write_footer(self.log_path(launch.attempt_id), completion)
        log.warning("%s: launch failed: %s", launch.attempt_id, error)
        return completion

    def write_refusal(self, launch: p.Launch, reason: str) -> None:
        """The log of an attempt this host refused: nothing ran, and why."""
        try:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            logs.append(self.log_path(launch.attempt_id), logs.refusal(
                attempt_id=launch.attempt_id, host=self.worker_name, hostname=self.hostname,
                job=launch.job, layer=launch.layer, frames=launch.frames, reason=reason,
                when=time.time()))
        except OSError as exc:
            log.warning("cannot write the refusal of %s: %s", launch.attempt_id, exc)

    def write_footer(self, path: Path, c: p.Completion) -> None:
        try:
            logs.append(path, logs.footer(exit_status=c.exit_status, started=c.started,
                                          stopped=c.stopped, peak_rss=c.peak_rss,
                                          cpu_time=c.cpu_time, reason=c.reason))
        except OSError as exc:
            log.warning("cannot write the footer of %s: %s", path, exc)


def _launch_error(exc: Exception, command: list[str] | str) -> str:
    """Why a frame's process did not start, in the user's words (the same on every host, so
    a job that cannot start anywhere is told apart from bad hosts)."""
    if isinstance(exc, LaunchError):
        return str(exc)
    if isinstance(exc, FileNotFoundError) and isinstance(command, list) and command:
        return f"command {command[0]!r} not found on this host"
    if isinstance(exc, PermissionError) and isinstance(command, list) and command:
        return f"command {command[0]!r} cannot be run on this host: permission denied"
    return str(exc)


def _exit_of(attempt_id: str, popen: subprocess.Popen, status, usage) -> Exit:
    """The Exit of a process reaped by wait4 (status None: someone else reaped it)."""
    if status is None:
        code = popen.returncode if popen.returncode is not None else -1
        return Exit(attempt_id, code, time.time(), 0.0, 0)
    code = os.waitstatus_to_exitcode(status)
    popen.returncode = code        # reaped here: keep Popen from waiting again
    return Exit(attempt_id, code, time.time(), usage.ru_utime + usage.ru_stime,
                usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _uid() -> int:
    return os.getuid() if hasattr(os, "getuid") else -1


def _look(path: str, st: os.stat_result) -> tuple:
    """What tells a directory from another of the same owner: its mode and extended
    attributes (ACLs, security labels), names and values."""
    names = sorted(os.listxattr(path, follow_symlinks=False))
    return (stat.S_IMODE(st.st_mode),
            tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names))


def _mkdir(path: str) -> None:
    try:
        os.mkdir(path)
    except FileExistsError:
        pass


def _remove_if_empty(path: str) -> None:
    """Remove a frame's own working directory unless the frame left something in it."""
    try:
        os.rmdir(path)
    except OSError:
        pass


def kill_orphan(record: RunningRecord, wait: float = 5.0) -> int:
    """Kill the process group of an attempt left running by a previous rqd; return how many died.

    The leader is killed only if its pid still names the process recorded (same create_time).
    When the leader is gone, the group's remaining members are found by process group: a group
    id cannot be reused while members of the group live.
    """
    victims: list[psutil.Process] = []
    leader = machine.same_process(record.pid, record.create_time)
    if leader is not None:
        try:
            victims = [leader, *leader.children(recursive=True)]
        except psutil.Error:
            victims = [leader]
        machine.signal_group(record.pgid, SIGKILL)
    else:
        try:
            reused = psutil.Process(record.pgid)
            if abs(reused.create_time() - record.create_time) > 0.05:
                # The group leader's pid belongs to another process now, so our group is gone.
                return 0
        except psutil.Error:
            pass
        victims = machine.members_of_group(record.pgid)
        if victims:
            machine.signal_group(record.pgid, SIGKILL)
    for proc in victims:
        try:
            proc.kill()
        except psutil.Error:
            pass
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(machine.alive(v) for v in victims):
        time.sleep(0.05)
    return len(victims)
