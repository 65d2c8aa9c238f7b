"""The longest loop turn while huge jobs are stored.

A supervisor with --workers simulated workers heartbeating and running frames, and a client
asking `jobs` in a loop; then one job of --frames frames is submitted, then two such jobs in
one submit.  Prints how long each submit took to be answered, the other client's `jobs`
latency (p50, max) meanwhile, the longest loop turn the supervisor logged (it logs every turn
over 100 ms, with how long its commits and its CPU took; goal: none), and the supervisor's
memory before and after.

    python benchmarks/huge_submit.py [--frames 1000000] [--workers 100] [--db sqlite|postgres]
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import click
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cuefarm import Client  # noqa: E402
from tests.farm import Farm, PostgresDatabase  # noqa: E402

TURN = re.compile(r"a loop turn took (\d+) ms \(([^)]*)\)")


def _ask_jobs(address: str, stop: threading.Event, latencies: list[float]) -> None:
    client = Client(address, timeout=120)
    while not stop.is_set():
        t0 = time.perf_counter()
        client.jobs()
        latencies.append(time.perf_counter() - t0)
        time.sleep(0.05)
    client.close()


def _job(name: str, frames: int) -> dict:
    return {"name": name, "project": "bench", "layers": [
        {"name": "r", "command": ["true"], "range": f"1-{frames}"}]}


@click.command()
@click.option("--frames", default=1_000_000, show_default=True)
@click.option("--workers", default=100, show_default=True)
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="sqlite",
              show_default=True)
def main(frames: int, workers: int, db: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-huge-"))
    pg = PostgresDatabase() if db == "postgres" else None
    farm = Farm(pg.url if pg else f"sqlite:///{tmp / 'huge.db'}", tmp)
    farm.start_supervisor()
    fleet = subprocess.Popen([sys.executable, "-m", "rqd.fleet", "--supervisor", farm.address,
                              "--workers", str(workers), "--slots", "2", "--runtime", "0.5"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stop = threading.Event()
    latencies: list[float] = []
    asker = threading.Thread(target=_ask_jobs, args=(farm.address, stop, latencies))
    try:
        c = Client(farm.address, timeout=1800)
        while sum(h["state"] == "UP" for h in c.hosts()) < workers:
            time.sleep(0.5)
        asker.start()
        time.sleep(2)
        log_start = len((farm.workdir / "supervisor.log").read_bytes())
        supervisor = psutil.Process(farm.supervisor.pid)
        rss_before = supervisor.memory_info().rss
        for label, jobs in ((f"1 x {frames}", [_job("huge", frames)]),
                            (f"2 x {frames}", [_job("huge-a", frames), _job("huge-b", frames)])):
            t0 = time.monotonic()
            ids = c.submit(jobs)
            print(f"submit {label}: answered in {time.monotonic() - t0:.1f} s, jobs {ids}",
                  flush=True)
            time.sleep(2)
        stop.set()
        asker.join()
        text = (farm.workdir / "supervisor.log").read_bytes()[log_start:].decode(errors="replace")
        turns = [(int(ms), steps) for ms, steps in TURN.findall(text)]
        longest = max(turns, default=(0, "none over 100 ms"))
        print(f"loop turns over 100 ms: {len(turns)}; longest {longest[0]} ms ({longest[1]})")
        for line in text.splitlines():
            if TURN.search(line):
                print("  ", line[11:23], TURN.search(line).group(0))
        print(f"supervisor RSS: {rss_before / 2**20:.0f} MB before the submits, "
              f"{supervisor.memory_info().rss / 2**20:.0f} MB after")
        print(f"other client's jobs: n={len(latencies)} "
              f"p50={1000 * statistics.median(latencies):.0f} ms "
              f"max={1000 * max(latencies):.0f} ms")
    finally:
        stop.set()
        fleet.terminate()
        fleet.wait()
        farm.stop()
        if pg:
            pg.drop()
        shutil.rmtree(tmp, ignore_errors=True)     # its database holds 3,000,000 frames


if __name__ == "__main__":
    main()
