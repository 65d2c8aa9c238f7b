"""The supervisor and rqd lift their limit on open files to the hard limit when they start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cuefarm import Client
from cuefarm.openfiles import lift_limit
from tests.farm import PYTHON, answers, free_port_block, wait_until

resource = pytest.importorskip("resource")


def _soft_limit(pid: int) -> str:
    limits = Path(f"/proc/{pid}/limits").read_text()
    return next(x for x in limits.splitlines() if x.startswith("Max open files")).split()[3]


@pytest.fixture
def low_soft_limit():
    """A preexec_fn starting a process with the common soft limit of 1,024, and the hard
    limit it should lift it to."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc/PID/limits")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1024:
        pytest.skip(f"the hard limit is {hard}: nothing to lift")

    def low() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024), hard))
    return low, "unlimited" if hard == resource.RLIM_INFINITY else str(hard)


def test_the_supervisor_lifts_its_open_files_limit_before_it_listens(tmp_path, low_soft_limit):
    """Every connected worker holds a file in the supervisor."""
    low, hard = low_soft_limit
    port = free_port_block()
    sv = subprocess.Popen([PYTHON, "-m", "supervisor", "--port", str(port), "--db",
                           f"sqlite:///{tmp_path / 'fd.db'}"], preexec_fn=low,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with Client(f"127.0.0.1:{port}", timeout=0.5) as c:
            wait_until(lambda: answers(c), 30, message="the supervisor to answer")
        assert _soft_limit(sv.pid) == hard
    finally:
        sv.terminate()
        sv.wait(10)


def test_rqd_lifts_its_open_files_limit(tmp_path, low_soft_limit):
    """Every running frame holds files in rqd (no supervisor needs to answer for that)."""
    low, hard = low_soft_limit
    rqd = subprocess.Popen([PYTHON, "-m", "rqd", "--supervisor", f"127.0.0.1:{free_port_block()}",
                            "--name", "fd-test", "--slots", "1", "--state-dir",
                            str(tmp_path / "state")], preexec_fn=low,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: rqd.poll() is not None or _soft_limit(rqd.pid) == hard, 30,
                   message="rqd's soft limit lifted")
        assert rqd.poll() is None, "rqd exited"
        assert _soft_limit(rqd.pid) == hard
    finally:
        rqd.terminate()
        rqd.wait(10)


def test_lifting_within_this_process_reaches_the_hard_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 512), hard))
        now = lift_limit()
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == now
        if hard != resource.RLIM_INFINITY:
            assert now == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
