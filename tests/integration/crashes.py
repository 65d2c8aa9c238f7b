"""Kill -9 at points of a run: one job of short ledger frames on three real rqd; the supervisor
(or a worker) is killed with SIGKILL when given fractions of the frames have ended, and started
again.  Shared by tests/integration/test_crash_points.py and benchmarks/crash_points.py."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path
from typing import Any

from tests.farm import Farm, wait_until
from tests.integration import ledger

WORKERS = ("k1", "k2", "k3")


def _ended(book: Path) -> int:
    if not book.exists():
        return 0
    return sum(1 for line in book.read_text().splitlines() if line.startswith("end "))


def _starts_after(book: Path, t: float) -> float | None:
    """The earliest start time in the ledger later than `t`, or None."""
    if not book.exists():
        return None
    later = [float(line.split()[4]) for line in book.read_text().splitlines()
             if line.startswith("start ") and float(line.split()[4]) > t]
    return min(later) if later else None


def overlaps(book: Path) -> int:
    """Pairs of runs of one frame that overlapped in time."""
    n = 0
    for intervals in ledger.runs(book).values():
        intervals.sort()
        n += sum(1 for (_, e1), (s2, _) in zip(intervals, intervals[1:]) if e1 > s2)
    return n


def run(farm: Farm, tmp: Path, frames: int, supervisor_kills: int, worker_kills: int,
        seed: int, slots: int = 4, duration: float = 0.1, timeout: float = 600.0,
        log=print) -> dict[str, Any]:
    """Run one job of `frames` frames on WORKERS (started here) on `farm`'s running
    supervisor, killing the supervisor `supervisor_kills` times and a random worker
    `worker_kills` times at evenly spread points of its progress; return the figures:
    overlaps, lost (frames not SUCCEEDED, or with no run that ended), retries (charged),
    restart_to_launch (longest seconds from starting a supervisor again to the first frame
    start after it answers), kills, seconds."""
    rnd = random.Random(seed)
    cmd, book = ledger.command(tmp, duration)
    for name in WORKERS:
        farm.start_rqd(name, slots)
    farm.wait_hosts_up(list(WORKERS), timeout=60)
    c = farm.client(timeout=60)
    t0 = time.monotonic()
    [job_id] = c.submit([{"name": "crash-points", "project": "p", "layers": [
        {"name": "r", "command": cmd, "range": f"1-{frames}", "max_retries": 3}]}])
    kills = ["supervisor"] * supervisor_kills + ["worker"] * worker_kills
    rnd.shuffle(kills)
    restart_to_launch = 0.0
    for i, what in enumerate(kills):
        point = frames * (i + 1) // (len(kills) + 1)
        wait_until(lambda: _ended(book) >= point, timeout, 0.02,
                   message=f"{point} frames to end")
        if what == "supervisor":
            farm.kill_supervisor(signal.SIGKILL)
            restarted = time.time()
            farm.start_supervisor()
            # Launches the old supervisor sent just before it died may start after that:
            # the next launch is the first frame start after the new one answers.
            up = time.time()
            first = wait_until(lambda: _starts_after(book, up), 60, 0.02,
                               message="a frame to start after the restart")
            took = first - restarted
            restart_to_launch = max(restart_to_launch, took)
            log(f"  supervisor killed at {point} frames ended; next launch {took:.2f} s "
                f"after its restart")
        else:
            name = rnd.choice(WORKERS)
            farm.kill_rqd(name, signal.SIGKILL)
            time.sleep(rnd.uniform(0.2, 2.0))         # down a while, then back
            farm.start_rqd(name, slots)
            log(f"  worker {name} killed at {point} frames ended, started again")
    c = farm.client(timeout=60)
    job = c.wait(job_id, timeout=timeout)
    seconds = time.monotonic() - t0
    rows = c.frames(job_id)
    runs = ledger.attempts(book)
    ended = {(r["layer"], r["frame"]) for r in runs.values() if r["how"] == "end"}
    lost = sum(1 for f in rows if f["state"] != "SUCCEEDED")
    lost += sum(1 for n in range(1, frames + 1) if ("r", n) not in ended)
    return {"overlaps": overlaps(book), "lost": lost,
            "retries": sum(f["retries"] for f in rows),
            "restart_to_launch": restart_to_launch, "kills": len(kills),
            "succeeded": job["succeeded"], "seconds": seconds,
            "attempts": len(runs)}
