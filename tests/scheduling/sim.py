"""A supervisor process with a fleet of simulated workers (real protocol) in a thread, and the
ledger of what ran where and when, for checking scheduling invariants."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from cuefarm import protocol as p
from rqd.fleet import Fleet
from tests.farm import wait_until


class FleetThread:
    """Runs a Fleet in its own thread (its sockets live and die there)."""

    def __init__(self, address: str, workers: list[dict], runtime: float, **kw: Any):
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.fleet: Fleet | None = None
        self.error: BaseException | None = None

        def run():
            try:
                self.fleet = Fleet(address, workers, runtime=runtime, record=True,
                                   heartbeat=0.5, **kw)
                self.ready.set()
                self.fleet.run(until=self.stop.is_set)
            except BaseException as exc:  # surfaced in close()
                self.error = exc
                self.ready.set()
            finally:
                if self.fleet is not None:
                    self.fleet.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def close(self) -> list[tuple]:
        self.stop.set()
        self.thread.join(10)
        if self.error:
            raise self.error
        return list(self.fleet.ledger)


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
