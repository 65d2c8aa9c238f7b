"""How long a job has left, from its frames' run times.

A job's remaining work is, per layer, what its running frames still need (the layer's average
run time of succeeded frames less what they have run so far) plus the layer's average for
each frame still waiting; spread over the frames running now, and never less than the
longest of the running frames' rests.  The averages come from the frame rows the GUI holds,
which are those of the selected job: job and layer rows carry counts, not run times.

A job with frames left and none running makes no progress at all: it is "blocked" (by a
limit, a lack of slots or hosts, or dependencies; Why says which), not a growing number.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Iterable

from cuegui import format as fmt


class LayerRuns:
    """What the frames of one layer say: how many succeeded with a run time and their sum,
    and when the running frames started (kept in order, so the rests of the running frames
    are a search and a sum over a slice, not a loop)."""

    __slots__ = ("count", "total", "started")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.started: list[float] = []

    @property
    def average(self) -> float | None:
        return self.total / self.count if self.count else None

    def add(self, kind: str, value: float) -> None:
        if kind == "SUCCEEDED":
            self.count += 1
            self.total += value
        else:
            bisect.insort(self.started, value)

    def remove(self, kind: str, value: float) -> None:
        if kind == "SUCCEEDED":
            self.count -= 1
            self.total = self.total - value if self.count else 0.0
        else:
            del self.started[bisect.bisect_left(self.started, value)]

    def rests(self, average: float, now: float) -> tuple[float, float]:
        """(sum, longest) of what the running frames still need at `average` seconds each:
        a frame started at s needs max(0, average - (now - s))."""
        started = self.started
        first = bisect.bisect_right(started, now - average)
        n = len(started) - first
        if not n:
            return 0.0, 0.0
        return n * (average - now) + math.fsum(started[first:]), average - (now - started[-1])


def _contribution(frame: dict) -> tuple[str, float] | None:
    state = frame.get("state")
    if state == "SUCCEEDED" and frame.get("runtime") is not None:
        return state, float(frame["runtime"])
    if state == "RUNNING" and frame.get("started_at") is not None:
        return state, float(frame["started_at"])
    return None


class FrameRuns:
    """Layer runs kept up to date as frames change: each frame counts once, by id, so a
    frame seen again replaces what it said before.  `layers` maps a layer name to its
    LayerRuns."""

    def __init__(self) -> None:
        self.layers: dict[str, LayerRuns] = {}
        self._of: dict[Any, tuple[str, str, float]] = {}   # frame id -> (layer, kind, value)

    def clear(self) -> None:
        self.layers.clear()
        self._of.clear()

    def set(self, frame: dict) -> None:
        """Count `frame` (a whole row) instead of what its id said before."""
        rid = frame["id"]
        was = self._of.get(rid)
        now = _contribution(frame)
        name = str(frame.get("layer"))
        if was is not None:
            if now is not None and was == (name, *now):
                return
            self.drop(rid)
        if now is not None:
            self._of[rid] = (name, *now)
            runs = self.layers.get(name)
            if runs is None:
                runs = self.layers[name] = LayerRuns()
            runs.add(*now)

    def drop(self, rid: Any) -> None:
        """Forget the frame with id `rid`."""
        was = self._of.pop(rid, None)
        if was is not None:
            self.layers[was[0]].remove(was[1], was[2])


def layer_runs(frames: Iterable[dict]) -> dict[str, LayerRuns]:
    """Per layer name, the run times of succeeded frames and when running frames started."""
    out = FrameRuns()
    for f in frames:
        out.set(f)
    return out.layers


@dataclass(frozen=True)
class Estimate:
    seconds: float | None = None     # None: no figure (see why)
    blocked: bool = False
    why: str = ""

    def text(self) -> str:
        if self.blocked:
            return "blocked"
        return "" if self.seconds is None else "~" + fmt.duration(self.seconds)

    def sort_value(self) -> float | None:
        """Blocked jobs sort after every figure (they may never finish)."""
        return float("inf") if self.blocked else self.seconds


def _left(row: dict) -> int:
    return (row.get("frames_total") or 0) - sum(row.get(k) or 0
                                               for k in ("succeeded", "eaten", "dead"))


def estimate(job: dict, layers: list[dict] | None = None,
             runs: dict[str, LayerRuns] | None = None) -> Estimate:
    """The time `job` has left.  `layers` (its layer rows) and `runs` (layer_runs of its
    frames) give the figure; without them only "blocked" can be told."""
    if job.get("state") != "ACTIVE":
        return Estimate()
    left = _left(job)
    if left <= 0:
        dead = job.get("dead") or 0
        return Estimate(why=f"only {dead} dead frames left: retry or eat them" if dead else "")
    if not job.get("running"):
        if job.get("waiting"):
            why = ("nothing of this job is running: its waiting frames cannot start now "
                   "(a limit, no free slots or no matching host); Why says which")
        else:
            why = "nothing of this job is running: its frames wait on dependencies"
        return Estimate(blocked=True, why=why)
    if layers is None or runs is None:
        return Estimate(why="select the job: the estimate comes from its frames' run times")
    now = fmt.now()
    rests: list[float] = []
    work = 0.0
    for layer in layers:
        name = str(layer.get("name"))
        todo = (layer.get("waiting") or 0) + (layer.get("depend") or 0)
        r = runs.get(name) or LayerRuns()
        if not todo and not r.started:
            continue
        avg = r.average
        if avg is None:
            return Estimate(why=f"no frame of layer {name} has finished yet")
        total, longest = r.rests(avg, now)
        rests.append(longest)
        work += total + avg * todo
    running = max(1, job.get("running") or 0)
    seconds = max(max(rests, default=0.0), work / running)
    return Estimate(seconds, why=f"about {fmt.duration(seconds)} left: the layers' average "
                                 f"frame times over the {running} frames running now")


def value(job: dict, detail: tuple[Any, list[dict], dict] | None) -> Estimate:
    """estimate() with the selected job's (job id, layer rows, layer runs) when it is `job`."""
    if detail is not None and detail[0] == job.get("id"):
        return estimate(job, detail[1], detail[2])
    return estimate(job)
