"""Real frames end to end: a supervisor and real rqd processes running real commands.

Starts a real supervisor (SQLite and/or PostgreSQL) and N real rqd processes on this machine,
runs a job of `/bin/true` frames and then a job of `sleep 0.2` frames, and prints for each:
frames/s end to end, supervisor and rqd CPU per frame (their own processes, not the frames),
and the latency from a slot coming free to the next launch on that host (p50/p99), measured
from the frames' own start and stop times.

    python benchmarks/real_frames.py [--frames 1000] [--sleep-frames 200] [--workers 2]
                                     [--slots 8] [--db sqlite|postgres|both]
                                     [--dir DIR] [--py-spy DIR]

The supervisor's database and each rqd's state and logs go into a new directory under `--dir`
(default: the data directory, where rqd keeps them when not told otherwise). Each frame creates
its log and working directory there, so the file system counts in rqd's CPU: the script prints
what creating a file costs there and in the system's temporary directory (on one virtual
machine here it went from 20 to 800 µs of CPU a file within an hour, on the same disk).

`--py-spy DIR` records each process with py-spy (if installed) into DIR as collapsed stacks
(flamegraph.pl input), sampling only the thread holding the GIL: where the CPU goes, not
the waits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchfarm import database, start_supervisor  # noqa: E402
from cuefarm.config import data_dir  # noqa: E402


def _own_cpu(proc: psutil.Process) -> float:
    """User + system CPU of the process itself (its children, the frames, are not counted)."""
    t = proc.cpu_times()
    return t.user + t.system


def refill_latencies(frames: list[dict]) -> list[float]:
    """Seconds from each attempt's stop to the next start on the same host (the slot it freed
    being filled again), pairing each stop with the first start after it not yet paired."""
    by_host: dict[str, list[dict]] = {}
    for f in frames:
        if f["host"] and f["started_at"] and f["stopped_at"]:
            by_host.setdefault(f["host"], []).append(f)
    out: list[float] = []
    for rows in by_host.values():
        stops = sorted(r["stopped_at"] for r in rows)
        starts = sorted(r["started_at"] for r in rows)
        j = 0
        for stop in stops:
            while j < len(starts) and starts[j] < stop:
                j += 1
            if j == len(starts):
                break
            out.append(starts[j] - stop)
            j += 1
    return out


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_job(client, procs: dict[str, psutil.Process], name: str, command: list[str],
            frames: int) -> dict:
    cpu0 = {k: _own_cpu(p) for k, p in procs.items()}
    sys0 = {k: p.cpu_times().system for k, p in procs.items()}
    t0 = time.time()
    [job_id] = client.submit([{"name": name, "layers": [
        {"name": "run", "command": command, "range": f"1-{frames}", "max_retries": 0}]}])
    # Polled slowly (a read costs the supervisor CPU too); the end is the last frame's own
    # stop time, so the polling interval does not count.
    while (job := client.job(job_id))["state"] != "FINISHED":
        time.sleep(0.25)
    # Read before the frame rows are fetched: that read is the benchmark's, not the farm's.
    cpu = {k: _own_cpu(p) - cpu0[k] for k, p in procs.items()}
    system = {k: p.cpu_times().system - sys0[k] for k, p in procs.items()}
    rows = client.frames(job_id)
    elapsed = max(r["stopped_at"] or 0 for r in rows) - t0
    lat = refill_latencies(rows)
    rqd_cpu = sum(v for k, v in cpu.items() if k != "supervisor")
    return {"job": name, "frames": frames, "elapsed_s": elapsed,
            "frames_per_s": frames / elapsed, "succeeded": job["succeeded"],
            "sv_ms": 1000 * cpu["supervisor"] / frames, "rqd_ms": 1000 * rqd_cpu / frames,
            "sv_sys_ms": 1000 * system["supervisor"] / frames,
            "rqd_sys_ms": 1000 * sum(v for k, v in system.items() if k != "supervisor") / frames,
            "refill_p50_ms": 1000 * _pct(lat, 0.5), "refill_p99_ms": 1000 * _pct(lat, 0.99)}


def create_cost_us(directory: Path, n: int = 300) -> float:
    """CPU microseconds this process spends creating (and closing) one empty file in a new
    directory under `directory`."""
    base = Path(tempfile.mkdtemp(prefix="cuefarm-create-", dir=directory))
    try:
        t0 = time.process_time()
        for i in range(n):
            os.close(os.open(base / f"{i}.log", os.O_WRONLY | os.O_CREAT, 0o666))
        return 1e6 * (time.process_time() - t0) / n
    finally:
        shutil.rmtree(base, ignore_errors=True)


def run(kind: str, frames: int, sleep_frames: int, workers: int, slots: int,
        spy: Path | None, where: Path) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-real-", dir=where))
    env = {**os.environ, "CUEFARM_CONFIG": str(tmp / "none.toml")}
    results: list[dict] = []
    with database(kind, tmp) as url:
        sv, client, port = start_supervisor(url, env)
        rqds: list[subprocess.Popen] = []
        spies: list[subprocess.Popen] = []
        try:
            for i in range(workers):
                rqds.append(subprocess.Popen(
                    [sys.executable, "-m", "rqd", "--supervisor", f"127.0.0.1:{port}",
                     "--name", f"real{i}", "--slots", str(slots), "--state-dir",
                     str(tmp / f"rqd{i}"), "--log-level", "warning", "--min-free-disk-mb", "0",
                     "--min-uid", "0"],
                    env=env))
            while len([h for h in client.hosts() if h["state"] == "UP"]) < workers:
                if any(r.poll() is not None for r in rqds):
                    raise SystemExit("an rqd exited before registering")
                time.sleep(0.1)
            time.sleep(1.0)          # past the registration's first heartbeats
            if spy is not None:
                spy.mkdir(parents=True, exist_ok=True)
                for name, pid in [("supervisor", sv.pid)] + [(f"rqd{i}", r.pid)
                                                             for i, r in enumerate(rqds)]:
                    spies.append(subprocess.Popen(
                        ["py-spy", "record", "--pid", str(pid), "--rate", "250", "--nonblocking",
                         "--gil", "--format", "raw",
                         "-o", str(spy / f"{kind}-{name}.txt")], stdout=subprocess.DEVNULL))
                time.sleep(1)
            procs = {"supervisor": psutil.Process(sv.pid)}
            procs.update({f"rqd{i}": psutil.Process(r.pid) for i, r in enumerate(rqds)})
            for name, command, n in (("true", ["/bin/true"], frames),
                                     ("sleep", ["sleep", "0.2"], sleep_frames)):
                if n:
                    r = run_job(client, procs, name, command, n)
                    r.update(db=kind, slots=workers * slots)
                    results.append(r)
        finally:
            for s in spies:
                s.send_signal(2)
            for s in spies:
                s.wait()
            for r in rqds:
                r.terminate()
            for r in rqds:
                r.wait()
            sv.terminate()
            sv.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    return results


def machine_spawn_rate(n: int = 1000) -> float:
    """How many `/bin/true` processes per second Python starts and reaps here, one at a time."""
    t0 = time.perf_counter()
    for _ in range(n):
        subprocess.run(["/bin/true"])
    return n / (time.perf_counter() - t0)


@click.command()
@click.option("--frames", type=int, default=1000, help="/bin/true frames")
@click.option("--sleep-frames", type=int, default=200, help="'sleep 0.2' frames")
@click.option("--workers", type=int, default=2)
@click.option("--slots", type=int, default=8)
@click.option("--db", type=click.Choice(["sqlite", "postgres", "both"]), default="both")
@click.option("--dir", "where", type=click.Path(path_type=Path), default=None,
              help="Where the run's database, rqd state and logs go (default: the data dir).")
@click.option("--py-spy", "spy", type=click.Path(path_type=Path), default=None)
def main(frames, sleep_frames, workers, slots, db, where, spy):
    where = where or data_dir()
    where.mkdir(parents=True, exist_ok=True)
    print(f"this machine starts /bin/true from Python at {machine_spawn_rate():.0f} processes/s "
          f"({os.cpu_count()} cores)")
    print(f"creating a file costs {create_cost_us(where):.0f} µs of CPU in {where} "
          f"({create_cost_us(Path(tempfile.gettempdir())):.0f} µs in {tempfile.gettempdir()})")
    kinds = ["sqlite", "postgres"] if db == "both" else [db]
    for kind in kinds:
        for r in run(kind, frames, sleep_frames, workers, slots, spy, where):
            print(f"{r['db']:8s} {r['frames']:5d} {r['job']:5s} frames on {workers} rqd x {slots} "
                  f"slots: {r['frames_per_s']:6.0f} frames/s ({r['elapsed_s']:.2f} s), "
                  f"supervisor CPU {r['sv_ms']:.2f} ms/frame ({r['sv_sys_ms']:.2f} in the kernel), "
                  f"rqd CPU {r['rqd_ms']:.2f} ms/frame ({r['rqd_sys_ms']:.2f} in the kernel), "
                  f"refill p50 {r['refill_p50_ms']:.1f} ms p99 {r['refill_p99_ms']:.1f} ms, "
                  f"succeeded {r['succeeded']}")


if __name__ == "__main__":
    main()
