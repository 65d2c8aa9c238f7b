"""GUI responsiveness with a big farm: 10,000 jobs and one 100,000-frame job.

Prints its figures; not a test.  Two parts:

- synthetic: realistic rows fed straight into the window (as the connection worker's signals
  would deliver them): the first load, batches in which 1 % of rows changed, a resync, a sort
  and a filter on the big job;
- live: a real supervisor (SQLite) holding the same jobs, a fleet of simulated workers making
  changes, and the GUI's real connection worker: time to the first full view, then events.

Throughout, a 5 ms QTimer heartbeat measures how late the UI thread gets to it: the longest
stall is the longest time the UI could not respond.  The GUI process's memory is reported.

    python benchmarks/gui.py [--part synthetic|live|both] [--jobs 10000] [--frames 100000]
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
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
        out.append({"id": i, "name": f"shot{i:05d}_{rng.choice(['lgt', 'fx', 'comp', 'anim'])}_v"
                    f"{rng.randint(1, 30)}", "project": rng.choice(PROJECTS),
                    "user": rng.choice(USERS), "priority": rng.randint(1, 100),
                    "state": "ACTIVE", "status": "running" if running else "waiting",
                    "submitted_at": now - rng.uniform(0, 86400), "started_at": now - 3600,
                    "finished_at": None, "frames_total": total, "waiting": waiting, "depend": 0,
                    "running": running, "succeeded": done, "dead": dead, "eaten": 0,
                    "slots_used": running, "stalled": False, "min_slots": 0, "max_slots": None,
                    "flagged": None, "killed": False})
    return out


def frame_rows(job_id: int, n: int, now: float) -> list[dict]:
    rng = random.Random(2)
    out = []
    for i in range(1, n + 1):
        state = rng.choice(STATES)
        ran = state != "WAITING"
        out.append({"id": 10_000_000 + i, "job_id": job_id, "layer_id": 1 + i % 4,
                    "layer": ["sim", "render", "denoise", "comp"][i % 4], "number": i,
                    "frames": str(i), "frame_start": i, "frame_end": i, "state": state,
                    "host": f"render{rng.randint(1, 400):04d}" if ran else None,
                    "attempt": 1 if ran else 0, "attempt_id": f"{i}.1" if ran else None,
                    "started_at": now - 600 if ran else None,
                    "stopped_at": now - 60 if state in ("SUCCEEDED", "DEAD") else None,
                    "runtime": 540.0 if state in ("SUCCEEDED", "DEAD") else None,
                    "peak_rss": rng.randint(1, 64) * 2**28 if ran else 0,
                    "cpu_time": 500.0 if ran else 0.0,
                    "exit_status": (0 if state == "SUCCEEDED" else 1 if state == "DEAD" else None),
                    "retries": 0, "attempt_state": None,
                    "progress": (100 if state == "SUCCEEDED" else rng.randint(0, 99)
                                 if state == "RUNNING" else None)})
    return out


def host_rows(n: int, now: float) -> list[dict]:
    return [{"id": i, "name": f"render{i:04d}", "hostname": f"render{i:04d}.studio", "os": "linux",
             "cores": 32, "memory_mb": 131072, "memory_free_mb": 60000, "state": "UP",
             "lock": "OPEN", "slots_total": 32, "slots_configured": 32, "slots_used": 20,
             "load": 18.5, "cpu_percent": 60.0, "last_seen": now, "running": 5, "tags": ["linux"]}
            for i in range(1, n + 1)]


def layer_rows(job_id: int, n: int) -> list[dict]:
    return [{"id": k + 1, "job_id": job_id, "name": name, "command": ["render", "#FRAME#"],
             "range": f"1-{n}", "chunk": 1, "slots": 1, "memory": 4096, "max_retries": 1,
             "depends_on": [] if k == 0 else [["sim", "render", "denoise"][k - 1]],
             "frames_total": n // 4, "waiting": n // 8, "depend": 0, "running": 100,
             "succeeded": n // 8 - 100, "dead": 0, "eaten": 0, "tags": [], "limits": []}
            for k, name in enumerate(["sim", "render", "denoise", "comp"])]


# -- measuring ------------------------------------------------------------------------------------

class Heartbeat:
    """A 5 ms timer; the longest gap between two ticks beyond 5 ms is the longest stall."""

    def __init__(self, interval_ms: int = 5):
        self.interval = interval_ms / 1000
        self.timer = QTimer(interval=interval_ms)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        self.last = time.perf_counter()
        self.worst: dict[str, float] = {}
        self.phase = "idle"
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        late = now - self.last - self.interval
        self.worst[self.phase] = max(self.worst.get(self.phase, 0.0), late)
        self.last = now

    def begin(self, phase: str) -> None:
        self.pump(0.02)
        self.phase = phase
        self.last = time.perf_counter()

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

def synthetic(n_jobs: int, n_frames: int) -> None:
    from cuegui.messages import Changes, Snapshot
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
    for label, sort_key in (("unsorted", None), ("frames sorted by state", "state"),
                            ("frames sorted by host", "host")):
        if sort_key:
            w.frames_view.sortByColumn(w.frames_model.column_index(sort_key),
                                       Qt.SortOrder.AscendingOrder)
            hb.until(lambda: not w.frames_model.loading)
        batches = []             # built first: in the GUI they come from the worker thread
        for _ in range(10):
            ch = Changes(job_id=1)
            for j in rng.sample(jobs, n_jobs // 100):
                ch.jobs[j["id"]] = {**j, "running": rng.randint(0, 9),
                                    "succeeded": j["succeeded"] + 1}
            for f in rng.sample(frames, n_frames // 100):
                ch.frames[f["id"]] = {**f, "state": rng.choice(STATES),
                                      "host": f"render{rng.randint(1, 400):04d}"}
            for h in rng.sample(hosts, 4):
                ch.hosts[h["id"]] = {**h, "slots_used": rng.randint(0, 32)}
            batches.append(ch)
        times = []
        hb.begin(f"1% batches, {label}")
        for ch in batches:
            t = time.perf_counter()
            u.on_changes(ch)
            hb.until(lambda: not w.frames_model.loading and not w.jobs_model.loading)
            times.append(time.perf_counter() - t)
            hb.pump(0.05)
        print(f"  batch with 1% of rows changed ({label}): median {ms(statistics.median(times))}"
              f", worst {ms(max(times))}   longest stall {ms(hb.worst[hb.phase])}")

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

def live(n_jobs: int, n_frames: int, workers: int) -> None:
    from benchmarks.benchfarm import supervisor
    with supervisor("sqlite") as (_proc, client, port):
        address = f"127.0.0.1:{port}"
        client.timeout = 300
        t = time.perf_counter()
        [big] = client.submit({"name": "big_job", "project": "feature", "layers": [
            {"name": "render", "command": "true", "range": f"1-{n_frames}"}]})
        for start in range(0, n_jobs - 1, 500):
            client.submit([{"name": f"shot{i:05d}", "project": PROJECTS[i % 5], "layers": [
                {"name": "render", "command": "true", "range": f"1-{1 + i % 10}"}]}
                for i in range(start, min(n_jobs - 1, start + 500))])
        print(f"live: a supervisor (SQLite) with {n_jobs:,} jobs, one of {n_frames:,} frames "
              f"(submitted in {time.perf_counter() - t:.0f} s)")
        t = time.perf_counter()
        client.frames(big)
        whole = time.perf_counter() - t
        t = time.perf_counter()
        client.frames(big, limit=1000)
        first = time.perf_counter() - t
        t = time.perf_counter()
        client.frames(big, offset=n_frames - 10_000, limit=10_000)
        last = time.perf_counter() - t
        print(f"  (the supervisor alone answers the big job's frames in {ms(whole)}; the "
              f"first 1,000 in {ms(first)}, the last 10,000 in {ms(last)})")
        fleet = None
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
                  f"longest stall {ms(hb.worst['live first load'])}")
            if workers:
                fleet = subprocess.Popen(
                    [sys.executable, "-m", "rqd.fleet", "--supervisor", address, "--workers",
                     str(workers), "--slots", "8", "--runtime", "1.0"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                batches = []
                w.connection.changes.connect(lambda ch: batches.append(len(ch.frames)
                                                                       + len(ch.jobs)))
                hb.begin(f"live events ({workers} workers)")
                hb.pump(20.0)
                done = w.jobs_model.get(big)
                print(f"  20 s of events from {workers} simulated workers: {len(batches)} "
                      f"batches, {sum(batches):,} rows; big job {done['succeeded']:,} done   "
                      f"longest stall {ms(hb.worst[hb.phase])}")
            print(f"  memory: {rss_mb():.0f} MB resident ({rss_mb() - base:.0f} MB for the "
                  "window and its rows)")
            w.close()
        finally:
            if fleet is not None:
                fleet.terminate()
                fleet.wait(10)


@click.command()
@click.option("--part", type=click.Choice(["synthetic", "live", "both"]), default="both")
@click.option("--jobs", "n_jobs", type=int, default=10_000)
@click.option("--frames", "n_frames", type=int, default=100_000)
@click.option("--workers", type=int, default=50, help="simulated workers in the live part")
def main(part: str, n_jobs: int, n_frames: int, workers: int) -> None:
    app = QApplication.instance() or QApplication([])
    from cuegui import theme
    theme.apply_dark(app)
    print(f"machine: {os.cpu_count()} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if part in ("synthetic", "both"):
        synthetic(n_jobs, n_frames)
    if part in ("live", "both"):
        live(n_jobs, n_frames, workers)


if __name__ == "__main__":
    main()
