"""Fixtures for rqd tests: a simulated supervisor speaking the real protocol, and rqd processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest
import zmq

from cuefarm import protocol as p
from tests.farm import wait_until

WAIT = 60.0         # generous: a loaded 2-core machine may be slow; a pass never waits this long


class FakeSupervisor:
    """The worker-link side of a supervisor: a real ROUTER socket and the real protocol.

    While waiting for a message it answers heartbeats with Ack (unless `auto_ack` is off), as a
    supervisor does, accepts every Register when `auto_register` is on, and remembers everything
    it received in `received`.
    """

    def __init__(self, ctx: zmq.Context):
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1", min_port=20001,
                                                  max_port=60000)
        self.address = f"127.0.0.1:{self.port - 1}"      # what rqd is told: the client API port
        self.identity: bytes | None = None
        self.auto_ack = True
        self.auto_register = False
        self.received: list[tuple[str, p.Body]] = []

    def close(self) -> None:
        self.sock.close(0)

    def recv(self, timeout: float) -> tuple[str, p.Body] | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        identity, data = self.sock.recv_multipart()
        self.identity = identity
        env, body = p.decode(data, max_size=p.MAX_WORKER_MESSAGE,
                             allowed=p.WORKER_MESSAGES)
        self.received.append((env.type, body))
        if env.type == "heartbeat" and self.auto_ack:
            self.send(p.Ack())
        elif env.type == "register" and self.auto_register:
            self.send(p.Registered(host_id=1, heartbeat_interval=0.2))
        return env.type, body

    def expect(self, type_name: str, match=lambda body: True, timeout: float = WAIT) -> p.Body:
        """Wait for a message of `type_name` for which `match(body)` is true; skip others."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = self.recv(left)
            if got is not None and got[0] == type_name and match(got[1]):
                return got[1]
        raise AssertionError(f"no {type_name} within {timeout} s; got "
                             f"{[t for t, _ in self.received[-20:]]}")

    def pump(self, seconds: float) -> None:
        """Keep answering for a while."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.recv(left)

    def send(self, body: p.Body) -> None:
        self.send_raw(p.encode(body))

    def send_raw(self, *frames: bytes) -> None:
        assert self.identity is not None, "rqd has not spoken yet"
        self.sock.send_multipart([self.identity, *frames])

    def completion(self, attempt_id: str, timeout: float = WAIT) -> p.Completion:
        """Wait for a Complete that carries `attempt_id`; return its one completion of it."""
        body = self.expect("complete", lambda b: any(c.attempt_id == attempt_id
                                                     for c in b.completions), timeout)
        [c] = [c for c in body.completions if c.attempt_id == attempt_id]
        return c

    def register(self, interval: float = 0.2, host_id: int = 1) -> p.Register:
        """Wait for rqd's Register and accept it."""
        reg = self.expect("register")
        self.send(p.Registered(host_id=host_id, heartbeat_interval=interval))
        return reg


def launch(attempt_id: str, command, **kw) -> p.Launch:
    """A Launch with plausible defaults."""
    fields = dict(job_id=1, job="job1", project="proj", user="artist", layer="render",
                  frame_id=1, frames="1", frame_start=1, frame_end=1, slots=1)
    fields.update(kw)
    return p.Launch(attempt_id=attempt_id, command=command, **fields)


def running_ids(body: p.Heartbeat | p.Register) -> list[str]:
    """The attempt ids a Heartbeat or Register says are running."""
    return [r.attempt_id for r in body.running]


def gone(pids) -> bool:
    """True when none of `pids` is a live process (a zombie awaiting its reaper counts as dead)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


@pytest.fixture
def supervisor(zctx):
    sup = FakeSupervisor(zctx)
    yield sup
    sup.close()


@pytest.fixture
def start_rqd(tmp_path):
    """Start `python -m rqd` as a real process; stop it (and check it stops cleanly) afterwards."""
    procs: list[subprocess.Popen] = []

    def start(*supervisors: FakeSupervisor, name: str = "w1", slots: int = 2,
              state_dir: Path | None = None, extra: tuple[str, ...] = (),
              config: str = "", env: dict[str, str] | None = None) -> subprocess.Popen:
        """`config` is the text of an [rqd] section; `env` adds to rqd's environment."""
        state_dir = state_dir or tmp_path / f"state-{name}"
        config_file = tmp_path / f"rqd-{name}-{len(procs)}.toml"
        if config:
            config_file.write_text(f"[rqd]\n{config}\n")
        args = [sys.executable, "-m", "rqd", "--name", name, "--slots", str(slots),
                "--state-dir", str(state_dir), "--heartbeat", "0.2", "--kill-grace", "2",
                "--log-level", "DEBUG", *extra]
        for sup in supervisors:
            args += ["--supervisor", sup.address]
        env = dict(os.environ, CUEFARM_CONFIG=str(config_file), PYTHONUNBUFFERED="1",
                   **(env or {}))
        err = open(tmp_path / f"rqd-{name}-{len(procs)}.stderr", "wb")
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        err.close()
        proc.state_dir = state_dir          # type: ignore[attr-defined]
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rqd_output(tmp_path: Path) -> str:
    return "\n".join(f.read_text(errors="replace") for f in sorted(tmp_path.glob("rqd-*.stderr")))


@pytest.fixture
def helpers():
    """The helpers above, for test modules (which do not import conftest)."""
    return SimpleNamespace(launch=launch, gone=gone, running_ids=running_ids,
                           wait_until=partial(wait_until, timeout=WAIT),
                           WAIT=WAIT, rqd_output=rqd_output, FakeSupervisor=FakeSupervisor)
