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

from dataclasses import dataclass, field
from typing import Any, Iterable

from cuegui import format as fmt


@dataclass
class LayerRuns:
    """What the frames of one layer say: succeeded run times, running frames' starts."""

    runtimes: list[float] = field(default_factory=list)
    started: list[float] = field(default_factory=list)

    @property
    def average(self) -> float | None:
        return sum(self.runtimes) / len(self.runtimes) if self.runtimes else None


def layer_runs(frames: Iterable[dict]) -> dict[str, LayerRuns]:
    """Per layer name, the run times of succeeded frames and when running frames started."""
    out: dict[str, LayerRuns] = {}
    for f in frames:
        state = f.get("state")
        if state == "SUCCEEDED" and f.get("runtime") is not None:
            out.setdefault(str(f.get("layer")), LayerRuns()).runtimes.append(float(f["runtime"]))
        elif state == "RUNNING" and f.get("started_at") is not None:
            out.setdefault(str(f.get("layer")), LayerRuns()).started.append(
                float(f["started_at"]))
    return out


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
        r = runs.get(name, LayerRuns())
        if not todo and not r.started:
            continue
        avg = r.average
        if avg is None:
            return Estimate(why=f"no frame of layer {name} has finished yet")
        for start in r.started:
            rest = max(0.0, avg - (now - start))
            rests.append(rest)
            work += rest
        work += avg * todo
    running = max(1, job.get("running") or 0)
    seconds = max(max(rests, default=0.0), work / running)
    return Estimate(seconds, why=f"about {fmt.duration(seconds)} left: the layers' average "
                                 f"frame times over the {running} frames running now")


def value(job: dict, detail: tuple[Any, list[dict], dict] | None) -> Estimate:
    """estimate() with the selected job's (job id, layer rows, layer runs) when it is `job`."""
    if detail is not None and detail[0] == job.get("id"):
        return estimate(job, detail[1], detail[2])
    return estimate(job)
