"""End-to-end dispatch throughput: submit -> every frame succeeded, through simulated workers.

Starts a real supervisor process (SQLite and/or PostgreSQL) and a fleet of simulated workers in
another process (real protocol, real sockets, frames complete at once), submits one job of
trivial frames and prints frames/s end to end and supervisor CPU per frame.

    python benchmarks/dispatch.py [--frames 20000] [--workers 100] [--slots 10] [--db sqlite|postgres|both]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import click
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchfarm import supervisor  # noqa: E402


def run(kind: str, frames: int, workers: int, slots: int, runtime: float) -> dict:
    with supervisor(kind) as (sv, client, port):
        fleet = subprocess.Popen([sys.executable, "-m", "rqd.fleet", "--supervisor",
                                  f"127.0.0.1:{port}", "--workers", str(workers), "--slots",
                                  str(slots), "--runtime", str(runtime)],
                                 stderr=subprocess.DEVNULL)
        try:
            while len([h for h in client.hosts() if h["state"] == "UP"]) < workers:
                time.sleep(0.2)
            proc = psutil.Process(sv.pid)
            cpu0 = sum(proc.cpu_times()[:2])
            t0 = time.perf_counter()
            [job_id] = client.submit([{"name": "bench", "layers": [
                {"name": "trivial", "command": ["true"], "range": f"1-{frames}",
                 "max_retries": 0}]}])
            t_submit = time.perf_counter() - t0
            while client.job(job_id)["state"] != "FINISHED":
                time.sleep(0.05)
            elapsed = time.perf_counter() - t0
            cpu = sum(proc.cpu_times()[:2]) - cpu0
            job = client.job(job_id)
        finally:
            fleet.terminate()
            fleet.wait()
    return {"db": kind, "frames": frames, "slots": workers * slots, "submit_s": t_submit,
            "elapsed_s": elapsed, "frames_per_s": frames / elapsed,
            "supervisor_cpu_ms_per_frame": 1000 * cpu / frames, "succeeded": job["succeeded"]}


@click.command()
@click.option("--frames", type=int, default=20000)
@click.option("--workers", type=int, default=100)
@click.option("--slots", type=int, default=10)
@click.option("--runtime", type=float, default=0.0, help="seconds each simulated frame takes")
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both")
def main(frames, workers, slots, runtime, db):
    kinds = ["sqlite", "postgres"] if db == "both" else [db]
    for kind in kinds:
        r = run(kind, frames, workers, slots, runtime)
        print(f"{r['db']:8s} {r['frames']} frames on {r['slots']} slots: "
              f"{r['frames_per_s']:.0f} frames/s end to end ({r['elapsed_s']:.2f} s, submit "
              f"{r['submit_s']:.2f} s), supervisor CPU {r['supervisor_cpu_ms_per_frame']:.3f} "
              f"ms/frame, succeeded {r['succeeded']}")


if __name__ == "__main__":
    main()
