"""GUI responsiveness with a big farm: 10,000 jobs and one 100,000-frame job.

Prints its figures; not a test.  Two parts:

- synthetic: rows shaped as the supervisor sends them (cuefarm.rows) fed straight into the
  window (as the connection worker's signals would deliver them): the first load, batches in
  which 1 % of rows changed with the frames unsorted and sorted by each of their columns, a
  resync, a sort and a filter on the big job;
- live: a real supervisor holding the same jobs, thousands of simulated workers (real
  protocol, separate processes) running them, and the GUI's real connection worker: time to
  the first full view, then the events of the running farm.

Throughout, a 5 ms QTimer heartbeat measures how late the UI thread gets to it: the longest
stalls are the longest times the UI could not respond.  A batch's time runs from its arrival
until the models are done with it (slices, and the paints between them, included); its CPU is
the UI thread's CPU time meanwhile.  The longest stalls are printed as "ms late (ms of UI
thread CPU in that gap)", with the machine's load average: on a shared machine, waiting for a
core shows up as stalls too, with little CPU of our own.

    python benchmarks/gui.py [--part synthetic|live|both] [--jobs 10000] [--frames 100000]
                             [--workers 4000] [--db sqlite|postgres] [--seconds 30]
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import time
from pathlib import Path

import click
import psutil

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_API", "pyside6")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qtpy.QtCore import Qt, QTimer  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from cuefarm.rows import FrameRow, HostRow, JobRow, LayerRow, sample  # noqa: E402

STATES = ["WAITING"] * 6 + ["RUNNING"] + ["SUCCEEDED"] * 3 + ["DEAD"]
PROJECTS = ["feature", "promo", "series_s02", "rnd", "trailer"]
USERS = [f"artist{i:02d}" for i in range(40)]


# -- rows -----------------------------------------------------------------------------------------

def job_rows(n: int, now: float) -> list[dict]:
    rng = random.Random(1)
    out = []
    for i in range(1, n + 1):
        total = rng.choice([10, 50, 100, 240, 1000])
        done = rng.randint(0, total)
        running = min(total - done, rng.randint(0, 8))
        dead = rng.randint(0, 2) if rng.random() < 0.1 else 0
        waiting = total - done - running - dead
        out.append(sample(
            JobRow, id=i, name=f"shot{i:05d}_{rng.choice(['lgt', 'fx', 'comp', 'anim'])}_v"
            f"{rng.randint(1, 30)}", project=rng.choice(PROJECTS), user=rng.choice(USERS),
            priority=rng.randint(1, 100), state="ACTIVE", killed=False,
            status="running" if running else "waiting", submitted_at=now - rng.uniform(0, 86400),
            started_at=now - 3600, finished_at=None, frames_total=total, min_slots=0,
            max_slots=None, flagged="", slots_used=running, stalled=False, comments=0,
            waiting=waiting, depend=0, running=running, succeeded=done, dead=dead, eaten=0))
    return out


def frame_rows(job_id: int, n: int, now: float) -> list[dict]:
    rng = random.Random(2)
    out = []
    for i in range(1, n + 1):
        state = rng.choice(STATES)
        ran = state != "WAITING"
        ended = state in ("SUCCEEDED", "DEAD")
        out.append(sample(
            FrameRow, id=10_000_000 + i, job_id=job_id, layer_id=1 + i % 4,
            layer=["sim", "render", "denoise", "comp"][i % 4], number=i, frames=str(i),
            frame_start=i, frame_end=i, state=state,
            attempt=1 if ran else 0, attempt_id=f"{i}.1" if ran else None,
            attempt_state=None, retries=0,
            host=f"render{rng.randint(1, 400):04d}" if ran else None,
            started_at=now - rng.uniform(60, 3600) if ran else None,
            stopped_at=now - 60 if ended else None,
            runtime=rng.uniform(60, 900) if ended else None,
            peak_rss=rng.randint(1, 64) * 2**28 if ran else 0,
            cpu_time=rng.uniform(60, 900) if ran else 0.0,
            exit_status=0 if state == "SUCCEEDED" else 1 if state == "DEAD" else None,
            reason="exit status 1" if state == "DEAD" else "",
            progress=(100 if state == "SUCCEEDED" else rng.randint(0, 99)
                      if state == "RUNNING" else None)))
    return out


def host_rows(n: int, now: float) -> list[dict]:
    return [sample(HostRow, id=i, name=f"render{i:04d}", hostname=f"render{i:04d}.studio",
                   address="", os="linux", cores=32, memory_mb=131072, memory_free_mb=60000,
                   disk_free_mb=500_000, gpus=0, tags=["linux"], state="UP", lock="OPEN",
                   lock_kind="", lock_slots=None, nimby=False, draining=False, drain=None,
                   slots=32, slots_configured=32, slots_override=None, slots_total=32,
                   slots_used=20, running=5, load=18.5, cpu_percent=60.0, last_seen=now,
                   comments=0)
            for i in range(1, n + 1)]


def layer_rows(job_id: int, n: int) -> list[dict]:
    return [sample(LayerRow, id=k + 1, job_id=job_id, name=name,
                   command=["render", "#FRAME#"], range=f"1-{n}", chunk=1, slots=1,
                   slots_mode="fixed", memory=4096, gpus=0, max_retries=1,
                   depends_on=[] if k == 0 else [["sim", "render", "denoise"][k - 1]],
                   tags=[], os=None, hosts=[], omit_hosts=[], requirements=None, limits=[],
                   timeout=0, timeout_no_output=0, frames_total=n // 4, slots_running=100,
                   waiting=n // 8, depend=0, running=100, succeeded=n // 8 - 100, dead=0,
                   eaten=0)
            for k, name in enumerate(["sim", "render", "denoise", "comp"])]


# -- measuring ------------------------------------------------------------------------------------

class Heartbeat:
    """A 5 ms timer; a gap between two ticks beyond 5 ms is a stall of the UI thread."""

    def __init__(self, interval_ms: int = 5):
        self.interval = interval_ms / 1000
        self.timer = QTimer(interval=interval_ms)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        self.worst: dict[str, float] = {}
        # Every stall over 16 ms, by phase: (lateness, UI-thread CPU time meanwhile).  A stall
        # with little CPU is the thread waiting for a core (or the GIL), not working.
        self.stalls: dict[str, list[tuple[float, float]]] = {}
        self.phase = "idle"
        self.timer.start()

    def _tick(self) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        late = now - self.last - self.interval
        self.worst[self.phase] = max(self.worst.get(self.phase, 0.0), late)
        if late > 0.016:
            self.stalls.setdefault(self.phase, []).append((late, cpu - self.last_cpu))
        self.last, self.last_cpu = now, cpu

    def longest(self, phase: str, n: int = 5) -> str:
        """The phase's `n` longest stalls: milliseconds late (milliseconds of UI CPU)."""
        worst = sorted(self.stalls.get(phase, []), reverse=True)[:n]
        return (", ".join(f"{x * 1000:.0f} ({c * 1000:.0f})" for x, c in worst)
                or "none over 16")

    def begin(self, phase: str) -> None:
        self.pump(0.02)
        self.phase = phase
        self.last, self.last_cpu = time.perf_counter(), time.thread_time()

    @staticmethod
    def pump(seconds: float) -> None:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.001)

    def until(self, predicate, timeout: float = 120.0) -> float:
        start = time.perf_counter()
        while not predicate():
            QApplication.processEvents()
            time.sleep(0.0005)
            if time.perf_counter() - start > timeout:
                raise TimeoutError(self.phase)
        return time.perf_counter() - start


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def window(address: str):
    from cuegui.connection import Connection
    from cuegui.window import MainWindow
    w = MainWindow(Connection(address), mode="wrangler")
    w.resize(1440, 900)
    w.show()
    return w


# -- synthetic ------------------------------------------------------------------------------------

def changes_batch(rng: random.Random, jobs: list[dict], frames: list[dict], hosts: list[dict],
                  now: float):
    """One batch of events: 1% of the jobs and of the frames changed (frames moving on in
    their lives: every column that sorts can change), four hosts."""
    from cuegui.messages import Changes
    ch = Changes(job_id=1)
    for j in rng.sample(jobs, max(1, len(jobs) // 100)):
        ch.jobs[j["id"]] = {**j, "running": rng.randint(0, 9), "succeeded": j["succeeded"] + 1}
    for f in rng.sample(frames, max(1, len(frames) // 100)):
        state = rng.choice(STATES)
        ran, ended = state != "WAITING", state in ("SUCCEEDED", "DEAD")
        ch.frames[f["id"]] = {
            **f, "state": state, "host": f"render{rng.randint(1, 400):04d}" if ran else None,
            "attempt": f["attempt"] + 1, "attempt_id": f"{f['id']}.{f['attempt'] + 1}",
            "started_at": now - rng.uniform(0, 600) if ran else None,
            "stopped_at": now if ended else None,
            "runtime": rng.uniform(60, 900) if ended else None,
            "peak_rss": rng.randint(1, 64) * 2**28 if ran else 0,
            "cpu_time": rng.uniform(60, 900) if ran else 0.0,
            "exit_status": 0 if state == "SUCCEEDED" else 1 if state == "DEAD" else None,
            "retries": f["retries"] + (state == "DEAD"),
            "reason": "exit status 1" if state == "DEAD" else ""}
    for h in rng.sample(hosts, 4):
        ch.hosts[h["id"]] = {**h, "slots_used": rng.randint(0, 32)}
    return ch


def synthetic(n_jobs: int, n_frames: int) -> None:
    from cuegui.messages import Snapshot
    now = time.time()
    jobs, frames = job_rows(n_jobs, now), frame_rows(1, n_frames, now)
    hosts, layers = host_rows(400, now), layer_rows(1, n_frames)
    print(f"synthetic: {n_jobs:,} jobs, one job of {n_frames:,} frames, {len(hosts)} hosts")
    base = rss_mb()
    w = window("127.0.0.1:1")       # never started: rows are fed in directly
    hb = Heartbeat()
    hb.pump(0.5)
    u = w.updates
    loaded = lambda: (not w.jobs_model.loading and not w.frames_model.loading  # noqa: E731
                      and w.frames_model.total == n_frames and w.jobs_model.total == n_jobs)

    hb.begin("first load")
    t0 = time.perf_counter()
    w.selected_job = 1
    u.on_snapshot(Snapshot({"supervisor_id": "bench"}, jobs, hosts, 1, layers, frames))
    hb.until(loaded)
    filled = time.perf_counter() - t0
    hb.pump(0.05)
    stall = hb.worst["first load"]
    hb.begin("first paint")
    t = time.perf_counter()
    w.repaint()                      # a full paint of the window, every dock
    painted = time.perf_counter() - t
    hb.pump(0.3)
    print(f"  first load: models filled {ms(filled)}, then a full window paint {ms(painted)}"
          f" (total {ms(filled + painted)})   longest stall while loading {ms(stall)}")

    rng = random.Random(3)
    orders = [("unsorted", None, Qt.SortOrder.AscendingOrder)]
    orders += [(f"frames by {c.key}", c.key, Qt.SortOrder.AscendingOrder)
               for c in w.frames_model.columns]
    orders.append(("frames by state, descending", "state", Qt.SortOrder.DescendingOrder))
    summary = []
    for label, sort_key, order in orders:
        if sort_key:
            w.frames_view.sortByColumn(w.frames_model.column_index(sort_key), order)
            hb.until(lambda: not w.frames_model.loading)
        batches = [changes_batch(rng, jobs, frames, hosts, now) for _ in range(10)]
        times, cpu = [], []
        hb.begin(f"1% batches, {label}")
        for ch in batches:
            t, c = time.perf_counter(), time.thread_time()
            u.on_changes(ch)
            hb.until(lambda: not w.frames_model.loading and not w.jobs_model.loading)
            times.append(time.perf_counter() - t)
            cpu.append(time.thread_time() - c)
            hb.pump(0.05)
        summary.append((statistics.median(times), hb.worst[hb.phase]))
        print(f"  1% batch, {label:28s} median {ms(statistics.median(times))}, worst "
              f"{ms(max(times))}, UI CPU {ms(statistics.median(cpu))}   longest stalls "
              f"{hb.longest(hb.phase, 3)} ms", flush=True)
    print(f"  1% batches over every order: worst median {ms(max(m for m, _ in summary))}, "
          f"longest stall {ms(max(x for _, x in summary))}   (load {load()})")

    hb.begin("sort 100k")
    t = time.perf_counter()
    w.frames_view.sortByColumn(w.frames_model.column_index("peak_rss"),
                               Qt.SortOrder.DescendingOrder)
    hb.until(lambda: not w.frames_model.loading)
    print(f"  sorting the big job by peak memory        {ms(time.perf_counter() - t)}   "
          f"longest stall {ms(hb.worst['sort 100k'])}")

    hb.begin("filter 100k")
    t = time.perf_counter()
    w.frames_panel.state_buttons["DEAD"].setChecked(True)
    hb.until(lambda: not w.frames_model.loading)
    w.frames_panel.state_buttons["DEAD"].setChecked(False)
    hb.until(lambda: not w.frames_model.loading)
    print(f"  state filter on and off on the big job    {ms(time.perf_counter() - t)}   "
          f"longest stall {ms(hb.worst['filter 100k'])}")

    fresh = [{**f, "state": "SUCCEEDED"} if i % 20 == 0 else f for i, f in enumerate(frames)]
    hb.begin("resync")
    t = time.perf_counter()
    u.on_snapshot(Snapshot({"supervisor_id": "bench"}, jobs, hosts, 1, layers, fresh))
    hb.until(lambda: not w.frames_model.loading and not w.jobs_model.loading)
    print(f"  resync (5% of frames changed, in place)   {ms(time.perf_counter() - t)}   "
          f"longest stall {ms(hb.worst['resync'])}")
    hb.begin("idle")
    hb.pump(1.0)
    print(f"  memory: {rss_mb():.0f} MB resident ({rss_mb() - base:.0f} MB for the window "
          f"and its rows)")
    w.close()


# -- live -----------------------------------------------------------------------------------------

def start_fleet(port: int, workers: int, procs: int, runtime: float):
    """`workers` simulated workers of one slot in `procs` processes (frames take `runtime`
    seconds, +-50%): (processes, stop event, results queue: kept alive while they run)."""
    import multiprocessing as mp
    from benchmarks.scheduling import run_fleet
    ctx = mp.get_context("spawn")      # not a fork of a process running Qt
    specs = [{"name": f"sim-{i:05d}", "slots": 1} for i in range(workers)]
    stop, out = ctx.Event(), ctx.Queue()
    fleet = [ctx.Process(target=run_fleet, args=(port, specs[k::procs], runtime, 0.5, stop, out),
                         daemon=True) for k in range(procs)]
    for f in fleet:
        f.start()
    return fleet, stop, out


def live(n_jobs: int, n_frames: int, workers: int, db: str, seconds: float) -> None:
    from benchmarks.benchfarm import supervisor
    from benchmarks.host_reports import raise_fd_limit
    raise_fd_limit()
    with supervisor(db, "--heartbeat", "2") as (_proc, client, port):
        address = f"127.0.0.1:{port}"
        client.timeout = 300
        t = time.perf_counter()
        [big] = client.submit({"name": "big_job", "project": "feature", "layers": [
            {"name": "render", "command": "true", "range": f"1-{n_frames}"}]})
        for start in range(0, n_jobs - 1, 500):
            client.submit([{"name": f"shot{i:05d}", "project": PROJECTS[i % 5], "layers": [
                {"name": "render", "command": "true", "range": f"1-{1 + i % 10}"}]}
                for i in range(start, min(n_jobs - 1, start + 500))])
        print(f"live: a supervisor ({db}) with {n_jobs:,} jobs, one of {n_frames:,} frames "
              f"(submitted in {time.perf_counter() - t:.0f} s)", flush=True)
        t = time.perf_counter()
        client.frames(big)
        whole = time.perf_counter() - t
        t = time.perf_counter()
        client.frames(big, limit=1000)
        first = time.perf_counter() - t
        print(f"  (the supervisor alone answers the big job's frames in {ms(whole)}; the "
              f"first 1,000 in {ms(first)})", flush=True)
        fleet, stop = [], None
        try:
            base = rss_mb()
            w = window(address)
            hb = Heartbeat()
            hb.pump(0.3)
            hb.begin("live first load")
            t0 = time.perf_counter()
            w.connection.start()
            hb.until(lambda: w.jobs_model.total >= n_jobs and not w.jobs_model.loading)
            jobs_at = time.perf_counter() - t0
            w.jobs_panel.mine.setChecked(False)
            if not w.jobs_view.select_id(big):
                w.select_job(big)
            hb.until(lambda: w.frames_model.rowCount() > 0)
            shown = time.perf_counter() - t0
            hb.until(lambda: w.frames_model.total == n_frames and not w.frames_model.loading)
            total = time.perf_counter() - t0
            print(f"  jobs list filled {ms(jobs_at)}; big job's first frames shown "
                  f"{ms(shown - jobs_at)} and all {ms(total - jobs_at)} after selecting it   "
                  f"longest stalls {hb.longest('live first load')} ms", flush=True)
            w.frames_view.sortByColumn(w.frames_model.column_index("state"),
                                       Qt.SortOrder.AscendingOrder)
            hb.until(lambda: not w.frames_model.loading)
            if workers:
                t = time.perf_counter()
                fleet, stop, _results = start_fleet(port, workers, max(1, workers // 2000), 5.0)
                hb.begin("fleet registering")
                hb.until(lambda: w.hosts_model.total >= workers
                         or not all(f.is_alive() for f in fleet), timeout=300)
                if w.hosts_model.total < workers:
                    raise RuntimeError("a simulated worker process ended early")
                print(f"  {workers:,} simulated workers registered in "
                      f"{time.perf_counter() - t:.0f} s (the GUI listing them)   longest stalls "
                      f"{hb.longest('fleet registering')} ms", flush=True)
                batches: list[int] = []
                w.connection.changes.connect(
                    lambda ch: batches.append(len(ch.frames) + len(ch.jobs) + len(ch.hosts)))
                before = (w.jobs_model.get(big) or {}).get("succeeded", 0)
                phase = f"live events ({workers} workers)"
                hb.begin(phase)
                c, every = time.thread_time(), time.process_time()
                hb.pump(seconds)
                cpu, every = time.thread_time() - c, time.process_time() - every
                done = (w.jobs_model.get(big) or {}).get("succeeded", 0) - before
                print(f"  {seconds:.0f} s of events from {workers:,} simulated workers, frames "
                      f"sorted by state: {len(batches)} batches, {sum(batches):,} rows; big "
                      f"job {done:,} more frames done; UI thread busy "
                      f"{100 * cpu / seconds:.0f}%, the GUI process "
                      f"{100 * every / seconds:.0f}% of a core", flush=True)
                print(f"  longest UI stalls {hb.longest(phase, 8)} ms (load {load()})")
            print(f"  memory: {rss_mb():.0f} MB resident ({rss_mb() - base:.0f} MB for the "
                  "window and its rows)")
            w.close()
        finally:
            if stop is not None:
                stop.set()
            for f in fleet:
                f.join(10)
                if f.is_alive():
                    f.terminate()


@click.command()
@click.option("--part", type=click.Choice(["synthetic", "live", "both"]), default="both")
@click.option("--jobs", "n_jobs", type=int, default=10_000)
@click.option("--frames", "n_frames", type=int, default=100_000)
@click.option("--workers", type=int, default=4000, help="simulated workers in the live part")
@click.option("--db", type=click.Choice(["sqlite", "postgres"]), default="postgres",
              help="the live part's database")
@click.option("--seconds", type=float, default=30.0, help="seconds of live events measured")
def main(part: str, n_jobs: int, n_frames: int, workers: int, db: str, seconds: float) -> None:
    app = QApplication.instance() or QApplication([])
    from cuegui import theme
    theme.apply_dark(app)
    print(f"machine: {os.cpu_count()} cores, load average {load()}")
    if part in ("synthetic", "both"):
        synthetic(n_jobs, n_frames)
    if part in ("live", "both"):
        live(n_jobs, n_frames, workers, db, seconds)


if __name__ == "__main__":
    main()
