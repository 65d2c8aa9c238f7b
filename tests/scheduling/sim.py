"""The ledger of what ran where and when on a fleet of simulated workers (see
tests.farm.FleetThread), for checking scheduling invariants."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cuefarm import protocol as p
from tests.farm import wait_until


@dataclass
class Run:
    """One launch as the worker saw it."""

    attempt_id: str
    worker: str
    launch: p.Launch
    start: float
    end: float = float("inf")


@dataclass
class Ledger:
    runs: list[Run] = field(default_factory=list)

    @classmethod
    def of(cls, events: list[tuple]) -> "Ledger":
        by_id: dict[str, Run] = {}
        for kind, t, worker, obj in events:
            if kind == "launch":
                by_id[obj.attempt_id] = Run(obj.attempt_id, worker, obj, t)
            elif obj in by_id:
                by_id[obj].end = t
        return cls(sorted(by_id.values(), key=lambda r: r.start))

    def peak(self, key, weight) -> dict[Any, int]:
        """Highest simultaneous sum of weight(run) per key(run) (runs ending at t free first)."""
        points = defaultdict(list)
        for r in self.runs:
            k = key(r)
            if k is None:
                continue
            points[k].append((r.start, 1, weight(r)))
            points[k].append((r.end, 0, weight(r)))
        out = {}
        for k, pts in points.items():
            level = best = 0
            for _, is_start, w in sorted(pts):
                level += w if is_start else -w
                best = max(best, level)
            out[k] = best
        return out


def wait_finished(client, job_ids: list[int], timeout: float = 120) -> list[dict]:
    def done():
        jobs = [client.job(j) for j in job_ids]
        return jobs if all(j["state"] == "FINISHED" or j["stalled"] for j in jobs) else None
    return wait_until(done, timeout, 0.1, message=f"jobs {job_ids} to finish")
