"""Several supervisors on one PostgreSQL database.

- wake-up: jobs of one frame submitted through supervisor A, one at a time, while the only
  workers are connected to supervisor B: how long from the submit's commit (its reply) to B's
  dispatch pass launching it (the Launch reaching B's worker), p50/p99, next to the same
  submitted through B itself;
- throughput: frames/s end to end with the simulated workers split over 1, 2, ... supervisor
  processes (the scheduling benchmark's jobs: fair share, tags, requirements, limits, which
  count for the whole farm), and, in the same run, refill: how long a freed slot stood empty
  until its next frame arrived (p50/p99, as the workers saw it, while frames were waiting);
- refill: frames of 20 s (+-50%) behind a full farm, the workers split over 1, 2, ...
  supervisors: how long a freed slot stands empty in the steady state (p50/p99/max), measured
  as `scheduling.py` measures it for one supervisor (nobody asking anything meanwhile).

    python benchmarks/farm_bus.py [--jobs 200] [--workers 4000] [--frames 60000]
                                  [--runtime 0] [--jitter 0]
                                  [--supervisors 1,2] [--refill-runtime 20] [--window 20]
                                  [--cases wakeup,throughput,refill]
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchfarm import database, start_supervisor  # noqa: E402
from benchmarks.host_reports import raise_fd_limit  # noqa: E402
from benchmarks.scheduling import PROJECTS, jobs, pct, run_fleet, submit  # noqa: E402
from rqd.fleet import Fleet  # noqa: E402


@contextmanager
def supervisors(count: int):
    """`count` supervisor processes on one new PostgreSQL database: yields
    [(client, port, process)]."""
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-bench-"))
    env = {**os.environ, "CUEFARM_CONFIG": str(tmp / "none.toml")}
    with database("postgres", tmp) as url, ExitStack() as stack:
        out = []
        for _ in range(count):
            proc, client, port = start_supervisor(url, env, "--heartbeat", "2", wait=60.0)
            stack.callback(proc.wait)
            stack.callback(proc.terminate)
            out.append((client, port, proc))
        yield out


def one_frame(i: int) -> dict:
    return {"name": f"wake{i:04d}", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1", "max_retries": 0}]}


def wakeup(count: int) -> None:
    with supervisors(2) as [(a, _, _), (b, port_b, _)]:
        fleet = Fleet(f"127.0.0.1:{port_b}", 4, record=True, runtime=0.0)
        stop = threading.Event()
        thread = threading.Thread(target=fleet.run, kwargs={"until": stop.is_set}, daemon=True)
        thread.start()
        while sum(h["state"] == "UP" for h in b.hosts()) < 4:
            time.sleep(0.2)
        figures = {}
        for name, client in (("through B itself", b), ("through A", a)):
            delays = []
            for i in range(count):
                seen = len(fleet.ledger)
                client.submit([one_frame(i)])
                t0 = time.monotonic()
                while True:
                    launches = [e for e in fleet.ledger[seen:] if e[0] == "launch"]
                    if launches:
                        delays.append(max(0.0, launches[0][1] - t0))
                        break
                    if time.monotonic() - t0 > 10:
                        delays.append(10.0)
                        break
                    time.sleep(0.0005)
                time.sleep(0.02)      # let the frame end: each measured launch finds B idle
            delays.sort()
            figures[name] = delays
            print(f"wake-up {name}: submit committed (its reply) -> B's dispatch pass launched "
                  f"it (the Launch at B's worker), {count} jobs: p50 "
                  f"{pct(delays, 0.5):.1f} ms, p99 {pct(delays, 0.99):.1f} ms, max "
                  f"{pct(delays, 1.0):.1f} ms", flush=True)
        stop.set()
        thread.join()
        fleet.close()


@contextmanager
def split_farm(count: int, workers: int, procs: int, runtime: float, jitter: float):
    """`count` supervisors and `workers` simulated workers split over them in `procs`
    processes, the scheduling benchmark's projects and limits set, every worker UP: yields
    (a client of the first supervisor, a function stopping the fleets and returning their
    results [(completed, refills)], the supervisor and simulator processes as psutil's)."""
    raise_fd_limit()
    with supervisors(count) as svs:
        client = svs[0][0]
        total = workers
        for name, (guaranteed, most) in PROJECTS.items():
            client.set_project(name, guaranteed=int(guaranteed * total),
                               max_slots=int(most * total))
        client.set_limit("arnold", int(0.6 * total))
        client.set_limit("nuke", max(1, workers // 2), per_host=True)
        specs = [{"name": f"sim-{i:05d}", "slots": 1, "memory_mb": 65536 if i % 2 else 32768,
                  "tags": ["gpu", "linux"] if i % 4 == 0 else ["linux"]}
                 for i in range(workers)]
        out: mp.Queue = mp.Queue()
        stop = mp.Event()
        fleets = []
        for k in range(procs):      # each simulator process serves one supervisor's share
            port = svs[k % count][1]
            fleets.append(mp.Process(target=run_fleet, args=(port, specs[k::procs], runtime,
                                                             jitter, stop, out)))
        for f in fleets:
            f.start()
        results: list = []

        def finish() -> list:
            stop.set()
            results.extend(out.get(timeout=120) for _ in fleets)
            return results
        try:
            while sum(h["state"] == "UP" for h in client.hosts()) < workers:
                time.sleep(0.5)
            yield client, finish, ([psutil.Process(proc.pid) for _, _, proc in svs],
                                   [psutil.Process(f.pid) for f in fleets])
        finally:
            stop.set()
            for f in fleets:
                f.join(timeout=30)
                if f.is_alive():
                    f.terminate()


def throughput(count: int, workers: int, frames: int, procs: int, runtime: float = 0.0,
               jitter: float = 0.0) -> float:
    with split_farm(count, workers, procs, runtime, jitter) as (client, finish, (svs, sims)):
        t0, lo = time.perf_counter(), time.monotonic()
        busy0, svs0, sims0 = _busy(), _cpu(svs), _cpu(sims)
        ids, _ = submit(client, jobs(30, frames // 30))
        # Refills count while frames still wait (at the end, a freed slot has none to get).
        hi = None
        while True:
            rows = [client.job(i) for i in ids]
            if hi is None and sum(r["waiting"] for r in rows) == 0:
                hi = time.monotonic()
            if all(r["state"] == "FINISHED" for r in rows):
                break
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        cores = os.cpu_count() or 1
        busy = (_busy() - busy0) / elapsed / cores
        sv_cpu = (_cpu(svs) - svs0) / elapsed / cores
        sim_cpu = (_cpu(sims) - sims0) / elapsed / cores
        rest = busy - sv_cpu - sim_cpu
        done = sum(client.job(i)["succeeded"] for i in ids)
        refills = [r for _, times in finish() for r in times]
    rate = done / elapsed
    times = sorted(dt for t, dt in refills if lo <= t <= (hi or float("inf")))
    print(f"throughput with {count} supervisor(s): {workers} workers, {done} frames in 30 jobs "
          f"(runtimes {runtime:g} s +-{100 * jitter:.0f}%): {rate:.0f} frames/s end to end; "
          f"refill (slot freed -> next launch, {len(times)} refills while frames waited) p50 "
          f"{pct(times, 0.5):.1f} ms, p99 {pct(times, 0.99):.1f} ms; the machine's "
          f"{cores} cores {100 * busy:.0f}% busy: supervisors {100 * sv_cpu:.0f}%, simulated "
          f"workers {100 * sim_cpu:.0f}%, the rest (PostgreSQL, this script) {100 * rest:.0f}%",
          flush=True)
    return rate


def _cpu(procs: list) -> float:
    """Seconds of CPU `procs` (psutil's) have spent, children not counted."""
    return sum(sum(p.cpu_times()[:2]) for p in procs)


def _busy() -> float:
    """Seconds of CPU the whole machine has spent busy since boot, all cores together."""
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)


def refill(count: int, workers: int, procs: int, runtime: float, jitter: float,
           window: float) -> None:
    """Steady-state refill with the workers split over `count` supervisors, as the scheduling
    benchmark's refill case measures it for one: a deep queue, the first wave let end, then
    `window` seconds measured with nothing else asking the supervisors anything."""
    settle = runtime * (1 + jitter) + 5
    per_job = int(workers * (2 + (settle + window) / max(runtime, 0.1))) // 100 + 1
    with split_farm(count, workers, procs, runtime, jitter) as (client, finish, _):
        submit(client, jobs(100, per_job))
        time.sleep(settle)
        lo = time.monotonic()
        time.sleep(window)
        hi = time.monotonic()
        left = sum(j["waiting"] for j in client.jobs())
        refills = [r for _, times in finish() for r in times]
    times = sorted(dt for t, dt in refills if lo <= t <= hi)
    print(f"refill with {count} supervisor(s): {workers} workers, runtimes {runtime:g} s "
          f"+-{100 * jitter:.0f}%, {len(times)} refills in {window:g} s, {left} frames still "
          f"waiting: slot free for p50 {pct(times, 0.5):.1f} ms, p99 {pct(times, 0.99):.1f} ms, "
          f"max {pct(times, 1.0):.1f} ms", flush=True)


@click.command()
@click.option("--jobs", "count", type=int, default=200, help="jobs in the wake-up case")
@click.option("--workers", type=int, default=4000)
@click.option("--frames", type=int, default=60000)
@click.option("--procs", type=int, default=2, help="simulator processes")
@click.option("--runtime", type=float, default=0.0, help="frame runtime, throughput case")
@click.option("--jitter", type=float, default=0.0,
              help="frame runtimes spread over runtime * (1 +- jitter)")
@click.option("--supervisors", default="1,2", help="supervisor counts for the throughput case")
@click.option("--refill-runtime", type=float, default=20.0,
              help="frame runtime in the refill case (spread +-50%)")
@click.option("--window", type=float, default=20.0, help="seconds measured in the refill case")
@click.option("--cases", default="wakeup,throughput,refill")
def main(count, workers, frames, procs, runtime, jitter, supervisors, refill_runtime, window,
         cases):
    wanted = set(cases.split(","))
    if "wakeup" in wanted:
        wakeup(count)
    if "throughput" in wanted:
        rates = {n: throughput(n, workers, frames, max(procs, n), runtime, jitter)
                 for n in map(int, supervisors.split(","))}
        if 1 in rates:
            for n, r in rates.items():
                if n != 1:
                    print(f"{n} supervisors: {r / rates[1]:.2f}x one supervisor's throughput")
    if "refill" in wanted:
        for n in map(int, supervisors.split(",")):
            refill(n, workers, max(procs, n), refill_runtime, 0.5, window)


if __name__ == "__main__":
    main()
