"""Another client's `jobs` while one client floods the supervisor.

A flooding client keeps --in-flight requests (list_jobs, list_frames and pings) outstanding,
sending one more for each reply, for --seconds; meanwhile another client asks `jobs` in a
loop.  Prints that client's `jobs` latency (p50, p99, max; goal p99 < 1 s), how many flood
requests were answered and how many were told "busy", and the supervisor's RSS growth over
the run (goal < 150 MB).

    python benchmarks/flood.py [--in-flight 5000] [--seconds 30] [--jobs 50] [--db sqlite|postgres]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import click
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchfarm import supervisor  # noqa: E402
from cuefarm import protocol as p  # noqa: E402


def _flood(port: int, in_flight: int, stop: threading.Event, job_id: int,
           counts: dict[str, int]) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.setsockopt(zmq.RCVHWM, 0)
    sock.connect(f"tcp://127.0.0.1:{port}")
    bodies = [p.ListJobs(), p.ListFrames(job_id, limit=100), p.Ping()]
    rid = 0

    def send() -> None:
        nonlocal rid
        rid += 1
        sock.send(p.encode(bodies[rid % len(bodies)], rid, "flooder"))
    for _ in range(in_flight):
        send()
    while not stop.is_set():
        if not sock.poll(100):
            continue
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            body = p.decode(data)[1]
            counts["busy" if isinstance(body, p.Error) and body.code == "busy"
                   else "answered"] += 1
            send()
    sock.close(0)


@click.command()
@click.option("--in-flight", default=5000, show_default=True)
@click.option("--seconds", default=30.0, show_default=True)
@click.option("--jobs", "njobs", default=50, show_default=True, help="jobs in the farm")
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="sqlite",
              show_default=True)
def main(in_flight: int, seconds: float, njobs: int, db: str) -> None:
    with supervisor(db) as (proc, client, port):
        ids = client.submit([{"name": f"j{i}", "project": "bench", "layers": [
            {"name": "r", "command": ["true"], "range": "1-200"}]} for i in range(njobs)])
        sv = psutil.Process(proc.pid)
        rss0 = sv.memory_info().rss
        stop = threading.Event()
        counts = {"answered": 0, "busy": 0}
        flooder = threading.Thread(target=_flood, args=(port, in_flight, stop, ids[0], counts))
        flooder.start()
        time.sleep(1.0)               # the flood is under way before the first look
        latencies, peak = [], rss0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            listed = client.jobs()
            latencies.append(time.perf_counter() - t0)
            if len(listed) != njobs:
                raise SystemExit(f"jobs answered {len(listed)} jobs, not {njobs}")
            peak = max(peak, sv.memory_info().rss)
            time.sleep(0.05)
        stop.set()
        flooder.join()
        latencies.sort()
        q = statistics.quantiles(latencies, n=100)
        print(f"db={db} in_flight={in_flight} seconds={seconds:g}")
        print(f"other client's jobs: n={len(latencies)} p50={1000 * q[49]:.1f} ms "
              f"p99={1000 * q[98]:.1f} ms max={1000 * latencies[-1]:.1f} ms (goal p99 < 1000)")
        print(f"flood: answered={counts['answered']} busy={counts['busy']}")
        print(f"supervisor RSS: start={rss0 / 2**20:.0f} MB peak={peak / 2**20:.0f} MB "
              f"growth={(peak - rss0) / 2**20:.0f} MB (goal < 150)")


if __name__ == "__main__":
    main()
