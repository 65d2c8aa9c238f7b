"""Test supervisors forked from a process that has already imported the supervisor.

A test farm's supervisor spends most of its start importing (SQLAlchemy, the models, the
protocol): about a second of CPU, several hundred times a suite.  Each test process keeps one
helper process (`python -m tests.forkstart`) that imports the supervisor once and then forks
a real process per request, which runs `python -m MODULE ARGS` (the supervisor, or a module
that wraps it) with the farm's own arguments, environment and log file.  The test sees a `Forked` process with the parts of `subprocess.Popen` the farm uses
(pid, poll, wait, send_signal, terminate, kill, returncode): signals go straight to the
supervisor's pid; its exit status comes from the helper, which is its parent.

The helper imports nothing that starts a thread, so forking it is safe; a child restores the
default signal handling and runs the module as `python -m` would (runpy), exiting through the
interpreter's own shutdown.  When the test process ends (its pipe to the
helper closes) the helper kills the supervisors it forked and exits.
"""

from __future__ import annotations

import atexit
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


# -- the helper process ---------------------------------------------------------------------

def _serve() -> None:
    import select

    import psycopg2  # noqa: F401 - PostgreSQL farms fork with their driver loaded too
    import sqlalchemy.dialects.postgresql.psycopg2  # noqa: F401
    import sqlalchemy.dialects.sqlite.pysqlite  # noqa: F401

    import supervisor.main  # noqa: F401
    if threading.active_count() != 1:
        sys.exit("tests.forkstart: importing the supervisor started a thread; cannot fork")
    requests = sys.stdin.buffer
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)               # a stray print must not reach the reply channel
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: set[int] = set()
    while True:
        ready, _, _ = select.select([requests, wake_r], [], [])
        if wake_r in ready:
            os.read(wake_r, 4096)
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            replies.write(json.dumps({"exit": pid,
                                      "code": os.waitstatus_to_exitcode(status)}) + "\n")
        if requests in ready:
            line = requests.readline()
            if not line:                # the test process is gone: so are its supervisors
                for pid in children:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                return
            req = json.loads(line)
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                replies.close()
                _child(req, [wake_r, wake_w])
            children.add(pid)
            replies.write(json.dumps({"pid": pid}) + "\n")


def _child(req: dict[str, Any], wake: list[int]) -> None:
    """Become the supervisor: never returns (SystemExit unwinds to the interpreter's exit)."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in wake:
        os.close(fd)
    null = os.open(os.devnull, os.O_RDONLY)      # in place of the helper's request pipe
    os.dup2(null, 0)
    os.close(null)
    log = os.open(req["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(req["env"])
    module, *args = req["argv"]
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)    # exits (SystemExit)
    raise SystemExit(0)


# -- the test process's side ----------------------------------------------------------------

class Forked:
    """A supervisor forked by the helper: what the farm uses of subprocess.Popen."""

    def __init__(self, helper: "_Helper", pid: int, args: list[str]) -> None:
        self._helper = helper
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._helper.exit_code(self.pid, 0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            code = self._helper.exit_code(self.pid, timeout)
            if code is None:
                raise subprocess.TimeoutExpired(self.args, timeout)
            self.returncode = code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Helper:
    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.forkstart"], cwd=ROOT,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()            # one fork request at a time
        self.cond = threading.Condition()
        self.exits: dict[int, int] = {}
        self.pids: list[int] = []
        self.gone = False
        threading.Thread(target=self._read, name="forkstart", daemon=True).start()
        atexit.register(self.close)

    def _read(self) -> None:
        for line in self.proc.stdout:
            msg = json.loads(line)
            with self.cond:
                if "exit" in msg:
                    self.exits[msg["exit"]] = msg["code"]
                else:
                    self.pids.append(msg["pid"])
                self.cond.notify_all()
        with self.cond:
            self.gone = True
            self.cond.notify_all()

    def spawn(self, argv: list[str], env: dict[str, str], log: Path) -> Forked:
        with self.lock:
            with self.cond:
                if self.gone:
                    raise RuntimeError("the supervisor fork helper has exited")
            self.proc.stdin.write(json.dumps({"argv": argv, "env": env,
                                              "log": str(log)}).encode() + b"\n")
            self.proc.stdin.flush()
            with self.cond:
                if not self.cond.wait_for(lambda: self.pids or self.gone, 60):
                    raise RuntimeError("the supervisor fork helper did not answer")
                if not self.pids:
                    raise RuntimeError("the supervisor fork helper has exited")
                return Forked(self, self.pids.pop(0), argv)

    def exit_code(self, pid: int, timeout: float | None) -> int | None:
        with self.cond:
            self.cond.wait_for(lambda: pid in self.exits or self.gone, timeout)
            return self.exits.get(pid)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


_helper: _Helper | None = None
_helper_lock = threading.Lock()


def start(argv: list[str], env: dict[str, str], log: Path) -> Forked:
    """`python -m MODULE ARGS...` (argv: [MODULE, ARGS...]) with `env`, its output appended
    to `log`, forked."""
    global _helper
    with _helper_lock:
        if _helper is None or _helper.gone:
            _helper = _Helper()
        helper = _helper
    return helper.spawn(argv, env, log)


if __name__ == "__main__":
    _serve()
