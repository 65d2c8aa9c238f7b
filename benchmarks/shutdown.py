"""How long a busy supervisor takes to exit on SIGTERM.

Starts a supervisor, a fleet of simulated workers heartbeating and running frames, and client
threads submitting jobs in a loop; after a few seconds of that, sends SIGTERM and times the
exit.  Repeats and prints each time and the worst (the goal: every exit within 3 s).

    python benchmarks/shutdown.py [--tries 5] [--workers 1000] [--clients 3] [--db sqlite|postgres]
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchfarm import supervisor  # noqa: E402
from cuefarm import Client, CueFarmError  # noqa: E402


def _submit_loop(address: str, stop: threading.Event, frames: int) -> None:
    client = Client(address, timeout=5)
    try:
        while not stop.is_set():
            client.submit([{"name": "load", "project": "bench", "layers": [
                {"name": "r", "command": ["true"], "range": f"1-{frames}"}]}])
    except CueFarmError:
        pass            # the supervisor stopped under us
    finally:
        client.close()


def one(kind: str, workers: int, clients: int, frames: int, load_for: float) -> float:
    with supervisor(kind) as (sv, client, port):
        fleet = subprocess.Popen([sys.executable, "-m", "rqd.fleet", "--supervisor",
                                  f"127.0.0.1:{port}", "--workers", str(workers), "--slots", "2",
                                  "--runtime", "0.2"], stdout=subprocess.DEVNULL)
        stop = threading.Event()
        threads = [threading.Thread(target=_submit_loop, args=(f"127.0.0.1:{port}", stop, frames))
                   for _ in range(clients)]
        try:
            deadline = time.monotonic() + 120
            while sum(h["state"] == "UP" for h in client.hosts()) < workers:
                if time.monotonic() > deadline:
                    raise SystemExit("the workers did not all come up")
                time.sleep(0.5)
            for t in threads:
                t.start()
            time.sleep(load_for)
            t0 = time.monotonic()
            sv.send_signal(signal.SIGTERM)
            sv.wait(60)
            return time.monotonic() - t0
        finally:
            stop.set()
            for t in threads:
                t.join(10)
            fleet.terminate()
            fleet.wait()


@click.command()
@click.option("--tries", type=int, default=5)
@click.option("--workers", type=int, default=1000)
@click.option("--clients", type=int, default=3)
@click.option("--frames", type=int, default=2000, help="frames in each submitted job")
@click.option("--load-for", type=float, default=5.0, help="seconds of load before SIGTERM")
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="sqlite")
def main(tries, workers, clients, frames, load_for, db):
    times = [one(db, workers, clients, frames, load_for) for _ in range(tries)]
    for i, t in enumerate(times, 1):
        print(f"try {i}: exited {t:.2f} s after SIGTERM")
    print(f"{db}: {workers} workers, {clients} clients submitting {frames}-frame jobs: "
          f"worst {max(times):.2f} s, median {sorted(times)[len(times) // 2]:.2f} s")


if __name__ == "__main__":
    main()
