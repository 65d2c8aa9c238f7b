"""Scheduling at studio scale, with requirements, fair share and limits switched on.

A real supervisor (PostgreSQL by default) and thousands of simulated workers in separate
processes (real protocol, one DEALER socket each).  Three projects with guarantees and maximums,
a per-frame limit and a node-locked limit, layers with tags and a requirement expression.
Prints, for each case:

- throughput: frames/s end to end (submit -> every frame succeeded), frames complete at once;
- refill: how long a freed slot stands empty until its next frame arrives (p50/p99/max, as the
  workers saw it; process start not counted) with ~10,000 frames queued, then with 1,000,000;
  runtimes spread by --jitter (with 0 every slot frees at the same instant: a burst);
- submit: seconds to submit one 100,000-frame job.

    python benchmarks/scheduling.py [--workers 4000] [--slots 1] [--db postgres|sqlite]
                                    [--cases throughput,refill,million]
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path

import click
import psutil
import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchfarm import supervisor  # noqa: E402
from benchmarks.host_reports import raise_fd_limit  # noqa: E402
from rqd.fleet import Fleet  # noqa: E402

PROJECTS = {"show_a": (0.4, 0.8), "show_b": (0.3, 0.7), "show_c": (0.0, 1.0)}  # share of slots


def run_fleet(port: int, specs: list[dict], runtime: float, jitter: float, stop,
              out: mp.Queue) -> None:
    """One process of simulated workers: serves until `stop`, then returns its refill times."""
    raise_fd_limit()
    zmq.Context.instance().set(zmq.MAX_SOCKETS, len(specs) + 100)   # default 1023
    fleet = Fleet(f"127.0.0.1:{port}", specs, runtime=runtime, refills=True, jitter=jitter)
    try:
        fleet.run(until=stop.is_set)
    finally:
        fleet.close()
    out.put((fleet.completed, fleet.refill_times))


class Farm:
    """Supervisor + fleet processes for one case."""

    def __init__(self, db: str, workers: int, slots: int, procs: int, runtime: float,
                 jitter: float = 0.0):
        self.db, self.workers, self.slots, self.procs = db, workers, slots, procs
        self.runtime, self.jitter = runtime, jitter

    def __enter__(self):
        raise_fd_limit()
        self.ctx = supervisor(self.db, "--heartbeat", "2")
        self.sv, self.client, port = self.ctx.__enter__()
        total = self.workers * self.slots
        for name, (guaranteed, most) in PROJECTS.items():
            self.client.set_project(name, guaranteed=int(guaranteed * total),
                                    max_slots=int(most * total))
        self.client.set_limit("arnold", int(0.6 * total))
        self.client.set_limit("nuke", max(1, self.workers // 2), per_host=True)
        specs = [{"name": f"sim-{i:05d}", "slots": self.slots,
                  "memory_mb": 65536 if i % 2 else 32768,
                  "tags": ["gpu", "linux"] if i % 4 == 0 else ["linux"]}
                 for i in range(self.workers)]
        self.out: mp.Queue = mp.Queue()
        self.stop = mp.Event()
        self.fleets = [mp.Process(target=run_fleet, args=(port, specs[k::self.procs],
                                                          self.runtime, self.jitter,
                                                          self.stop,
                                                          self.out))
                       for k in range(self.procs)]
        for f in self.fleets:
            f.start()
        t0 = time.monotonic()
        while sum(h["state"] == "UP" for h in self.client.hosts()) < self.workers:
            if time.monotonic() - t0 > 300:
                raise RuntimeError("the simulated workers did not all register in 300 s")
            time.sleep(0.5)
        self.proc = psutil.Process(self.sv.pid)
        return self

    def results(self) -> tuple[int, list[tuple[float, float]]]:
        self.stop.set()
        done, refills = 0, []
        for _ in self.fleets:
            n, r = self.out.get()
            done += n
            refills += r
        for f in self.fleets:
            f.join()
        return done, refills

    def __exit__(self, *exc):
        self.stop.set()
        for f in self.fleets:
            f.join(timeout=10)
            if f.is_alive():
                f.terminate()
        self.ctx.__exit__(*exc)

    def cpu(self) -> float:
        return sum(self.proc.cpu_times()[:2])


def jobs(count: int, frames: int, tag: str = "") -> list[dict]:
    """`count` jobs spread over the projects, a third needing a GPU host or a big-memory host,
    half needing a licence limit."""
    out = []
    names = list(PROJECTS)
    for j in range(count):
        layer: dict = {"name": "render", "command": ["true"], "range": f"1-{frames}",
                       "max_retries": 0}
        if j % 3 == 1:
            layer["tags"] = ["gpu"]
        elif j % 3 == 2:
            layer["requirements"] = "host.memory >= 40000 and host.os == 'linux'"
        if j % 2:
            layer["limits"] = ["arnold"] if j % 4 == 1 else ["nuke"]
        out.append({"name": f"{tag}job{j:03d}", "project": names[j % len(names)],
                    "priority": 50 + j % 7, "layers": [layer]})
    return out


def submit(client, job_list: list[dict], batch: int = 10) -> tuple[list[int], float]:
    ids, t0 = [], time.perf_counter()
    for i in range(0, len(job_list), batch):
        ids += client.submit(job_list[i:i + batch])
    return ids, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    """The q-quantile in milliseconds (nan when nothing was measured)."""
    if not values:
        return float("nan")
    return 1000 * values[min(len(values) - 1, int(q * len(values)))]


def throughput(db: str, workers: int, slots: int, procs: int, frames: int) -> None:
    with Farm(db, workers, slots, procs, runtime=0.0) as farm:
        c = farm.client
        cpu0, t0 = farm.cpu(), time.perf_counter()
        ids, _ = submit(c, jobs(30, frames // 30))
        while any(c.job(i)["state"] != "FINISHED" for i in ids):
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0
        cpu = farm.cpu() - cpu0
        total = sum(c.job(i)["succeeded"] for i in ids)
    print(f"{db} throughput: {workers} workers x {slots} slots, {total} frames in 30 jobs over "
          f"3 projects (tags, requirements, limits): {total / elapsed:.0f} frames/s end to end, "
          f"supervisor CPU {1000 * cpu / total:.2f} ms/frame", flush=True)


def refill(db: str, workers: int, slots: int, procs: int, queued: int, window: float,
           runtime: float, jitter: float) -> list[float]:
    """Freed-slot refill times with about `queued` frames waiting behind a full farm: the jobs
    also hold what the farm runs before and during the measured window, so the queue is still
    `queued` deep at its end (a queue running dry would measure slots waiting for work)."""
    settle = runtime * (1 + jitter) + 5
    consumed = workers * slots * (1 + (settle + window) / max(runtime, 0.1))
    per_job = int(queued + consumed) // 100 + 1
    with Farm(db, workers, slots, procs, runtime=runtime, jitter=jitter) as farm:
        c = farm.client
        ids, took = submit(c, jobs(100, per_job))
        waiting = sum(j["waiting"] for j in c.jobs())
        time.sleep(settle)   # the first wave ends; refills reach steady state
        lo = time.monotonic()
        cpu0 = farm.cpu()
        time.sleep(window)
        hi = time.monotonic()
        cpu = farm.cpu() - cpu0
        left = sum(j["waiting"] for j in c.jobs())
        big = None
        if queued >= 1_000_000:
            _, big = submit(c, [{"name": "big", "project": "show_c", "layers": [
                {"name": "render", "command": ["true"], "range": "1-100000"}]}])
        _, refills = farm.results()
    times = sorted(dt for t, dt in refills if lo <= t <= hi)
    print(f"{db} refill: {workers} workers x {slots} slots, {len(ids)} jobs, {waiting} frames "
          f"waiting after submit ({took:.1f} s to submit), runtimes {runtime:g} s "
          f"+-{100 * jitter:.0f}%: {len(times)} refills in "
          f"{window:g} s ({len(times) / window:.0f}/s), {left} still waiting; slot free for p50 "
          f"{pct(times, 0.5):.1f} ms, p99 {pct(times, 0.99):.1f} ms, max "
          f"{pct(times, 1.0):.1f} ms; supervisor CPU {100 * cpu / (hi - lo):.0f}% of a core"
          + (f"; a 100,000-frame job submitted in {big:.2f} s" if big is not None else ""),
          flush=True)
    return times


@click.command()
@click.option("--workers", type=int, default=4000)
@click.option("--slots", type=int, default=1)
@click.option("--procs", type=int, default=2, help="simulator processes")
@click.option("--frames", type=int, default=60000, help="frames in the throughput case")
@click.option("--runtime", type=float, default=20.0, help="frame runtime in the refill cases")
@click.option("--window", type=float, default=20.0, help="seconds measured in the refill cases")
@click.option("--jitter", type=float, default=0.5,
              help="frame runtimes spread over runtime * (1 +- jitter); 0: every slot frees at once")
@click.option("--db", type=click.Choice(["postgres", "sqlite"]), default="postgres")
@click.option("--cases", default="throughput,refill,million")
def main(workers, slots, procs, frames, runtime, window, jitter, db, cases):
    wanted = set(cases.split(","))
    if "throughput" in wanted:
        throughput(db, workers, slots, procs, frames)
    small = refill(db, workers, slots, procs, 10_000, window, runtime, jitter) \
        if "refill" in wanted else None
    large = refill(db, workers, slots, procs, 1_000_000, window, runtime, jitter) \
        if "million" in wanted else None
    if small and large:
        print(f"refill p99 with 1,000,000 queued is {pct(large, 0.99) / pct(small, 0.99):.2f}x "
              f"the 10,000 case")


if __name__ == "__main__":
    main()
