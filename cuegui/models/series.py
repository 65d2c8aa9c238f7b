"""Time series for the charts: ring buffers of samples taken from the models, plus history.

The GUI samples the farm from data it already holds (the jobs and hosts models, kept current
by events) every few seconds into fixed-size ring buffers, so a chart covers the time since
the GUI opened without growing memory.  When the supervisor keeps metric history, a series is
prefixed with its history, so charts reach back past the GUI's start.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import numpy.ma  # noqa: F401 - np.median imports it on first use: 26-66 ms on the UI thread

CAPACITY = 43_200          # a day of samples at one every two seconds


class RingBuffer:
    """Times and one or more values per sample, the oldest overwritten when full."""

    def __init__(self, width: int = 1, capacity: int = CAPACITY):
        self.capacity = capacity
        self.t = np.zeros(capacity)
        self.v = np.zeros((capacity, width))
        self.n = 0                 # samples held
        self.head = 0              # where the next sample goes

    @property
    def width(self) -> int:
        return self.v.shape[1]

    def widen(self, width: int) -> None:
        """Room for more value columns (a new project); earlier samples read 0 there."""
        if width > self.width:
            grown = np.zeros((self.capacity, width))
            grown[:, :self.width] = self.v
            self.v = grown

    def append(self, t: float, values: Iterable[float]) -> None:
        row = np.asarray(list(values), dtype=float)
        self.widen(len(row))
        self.t[self.head] = t
        self.v[self.head, :] = 0.0
        self.v[self.head, :len(row)] = row
        self.head = (self.head + 1) % self.capacity
        self.n = min(self.n + 1, self.capacity)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, values) in time order, values shaped (samples, width)."""
        if self.n < self.capacity:
            return self.t[:self.n].copy(), self.v[:self.n].copy()
        order = np.r_[self.head:self.capacity, 0:self.head]
        return self.t[order], self.v[order]

    def __len__(self) -> int:
        return self.n


class Series:
    """A named series: history from the supervisor (if any) followed by live samples."""

    def __init__(self, name: str, capacity: int = CAPACITY):
        self.name = name
        self.live = RingBuffer(1, capacity)
        self.history_t = np.zeros(0)
        self.history_v = np.zeros(0)

    def add(self, t: float, value: float) -> None:
        self.live.append(t, [value])

    def add_break(self, t: float) -> None:
        """No data from `t` on (the supervisor was lost): a curve drawn with
        connect="finite" stops here, however short the outage turns out to be."""
        self.live.append(t, [np.nan])

    def set_history(self, points: list[tuple[float, float]]) -> None:
        if points:
            arr = np.asarray(points, dtype=float)
            self.history_t, self.history_v = arr[:, 0], arr[:, 1]

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        t, v = self.live.arrays()
        v = v[:, 0]
        if len(self.history_t):
            start = t[0] if len(t) else np.inf
            keep = self.history_t < start
            t = np.concatenate([self.history_t[keep], t])
            v = np.concatenate([self.history_v[keep], v])
        return t, v


GAP_STEPS = 3.0      # a pause of this many usual sample steps is a gap, not a slope


def with_gaps(t: np.ndarray, v: np.ndarray, step: float | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """`t` and `v` with NaN points at both ends of every pause longer than GAP_STEPS usual
    steps (the median step, or `step`), so a curve drawn with connect="finite" breaks there:
    an outage reads as missing data, not as a straight line across it."""
    if len(t) < 3:
        return t, v
    dt = np.diff(t)
    usual = float(np.median(dt)) if step is None else step
    if usual <= 0:
        return t, v
    breaks = np.nonzero(dt > GAP_STEPS * usual)[0]
    if not len(breaks):
        return t, v
    at = np.repeat(breaks + 1, 2)
    edges = np.column_stack([t[breaks] + usual, t[breaks + 1] - usual]).ravel()
    t2 = np.insert(t, at, edges)
    v2 = np.insert(v.astype(float), at, np.nan, axis=0)
    return t2, v2


def farm_sample(jobs: Iterable[dict], hosts: Iterable[dict]) -> dict:
    """Farm figures from the rows the GUI holds: slots in use and offered (hosts up), frames
    running and waiting, and slots in use per project."""
    steps = farm_sample_steps(list(jobs), list(hosts))
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value


def farm_sample_steps(jobs: list[dict], hosts: list[dict]):
    """farm_sample() in steps of a few thousand rows (a studio has thousands of jobs)."""
    used = total = 0
    for h in hosts:
        if h.get("state") == "UP":
            used += h.get("slots_used") or 0
            total += h.get("slots_total") or 0
    running = waiting = 0
    projects: dict[str, float] = {}
    for i, j in enumerate(jobs):
        if i % 2000 == 1999:
            yield
        if j.get("state") == "FINISHED":
            continue
        running += j.get("running") or 0
        waiting += j.get("waiting") or 0
        slots = j.get("slots_used") or 0
        if slots:
            name = j.get("project") or "default"
            projects[name] = projects.get(name, 0) + slots
    return {"slots_used": used, "slots_total": total, "running": running, "waiting": waiting,
            "projects": projects}


class ProjectStack:
    """Slots in use per project over time, for a stacked chart; projects keep their column."""

    def __init__(self, capacity: int = CAPACITY):
        self.names: list[str] = []
        self.buffer = RingBuffer(1, capacity)

    def add(self, t: float, projects: dict[str, float]) -> None:
        for name in sorted(projects):
            if name not in self.names:
                self.names.append(name)
        self.buffer.append(t, [projects.get(n, 0.0) for n in self.names])

    def add_break(self, t: float) -> None:
        """No data from `t` on (see Series.add_break)."""
        self.buffer.append(t, [np.nan] * max(len(self.names), 1))

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, cumulative values) with one column per project in `names`."""
        t, v = self.buffer.arrays()
        return t, np.cumsum(v[:, :len(self.names)], axis=1)
