"""Test parts for licences and metering: a supervisor clock running faster than real time,
simulated workers that stamp completions with that clock, and a metering sink over real HTTP."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from rqd.fleet import Fleet
from tests.farm import Farm, FleetThread
from tests.fastclock import FastClock


def configure(farm: Farm, clock: FastClock | None = None, **settings: Any) -> Farm:
    """Set supervisor settings (CUEFARM_SUPERVISOR_<KEY>) and the test clock before start."""
    if clock is not None:
        farm.launcher = ["-m", "tests.fastclock", clock.spec]
    settings.setdefault("metrics_port", 0)
    for key, value in settings.items():
        farm.env[f"CUEFARM_SUPERVISOR_{key.upper()}"] = str(value)
    # The sink is on loopback: never send it through a proxy from the environment.
    farm.env["NO_PROXY"] = farm.env["no_proxy"] = "127.0.0.1,localhost"
    return farm


class FastFleet(Fleet):
    """Simulated workers whose completions carry the supervisor's (fast) wall clock, as real
    workers' clocks agree with their supervisor's."""

    def __init__(self, *args: Any, clock: FastClock, **kw: Any):
        super().__init__(*args, **kw)
        self.clock = clock

    def _complete(self, w, aid, status, reason=""):
        c = super()._complete(w, aid, status, reason)
        c.started, c.stopped = self.clock(c.started), self.clock(c.stopped)
        return c


class FastFleetThread(FleetThread):
    """A FleetThread of FastFleet workers (pass clock=)."""

    fleet_class = FastFleet


def busy_intervals(events: list[tuple], job: str | None = None) -> dict[str, list[list[float]]]:
    """Per worker, the merged intervals during which it ran at least one frame (of `job`)."""
    runs: dict[str, tuple[str, float]] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    for kind, t, worker, obj in events:
        if kind == "launch":
            if job is None or obj.job == job:
                runs[obj.attempt_id] = (worker, t)
        elif obj in runs:
            w, start = runs.pop(obj)
            spans.setdefault(w, []).append((start, t))
    for aid, (w, start) in runs.items():
        spans.setdefault(w, []).append((start, float("inf")))
    merged = {}
    for w, items in spans.items():
        out: list[list[float]] = []
        for s, e in sorted(items):
            if out and s <= out[-1][1]:
                out[-1][1] = max(out[-1][1], e)
            else:
                out.append([s, e])
        merged[w] = out
    return merged


def to_wall(clock: "FastClock"):
    """Maps the fleet's monotonic ledger times to the supervisor's (fast) wall clock."""
    offset = time.time() - time.monotonic()
    return lambda mono: clock(mono + offset)


def expected_overage(events: list[tuple], installed: int, to_sim, start: float,
                     end: float) -> tuple[int, int]:
    """From the fleet's own record: (overage worker-minutes, busy spans) over the minutes in
    [start, end) of simulated time.  A worker counts in a minute when it ran a frame at some
    moment of it (what the meter counts: the most workers busy in the minute, the count carried
    in included); the overage of a minute is the workers past `installed`.  A busy span is a
    stretch of one worker's work with no idle minute in it: each may be off by one minute at
    either edge, where the meter's samples fall."""
    first, last = int(start // 60), int(end // 60)
    per_minute: dict[int, int] = {}
    spans = 0
    for items in busy_intervals(events).values():
        minutes: set[int] = set()
        prev_end = None
        for s, e in items:
            s_sim = to_sim(s)
            e_sim = to_sim(e) if e != float("inf") else end
            if prev_end is None or s_sim - prev_end >= 60:
                spans += 1
            prev_end = e_sim
            minutes.update(range(max(first, int(s_sim // 60)),
                                 min(last, int((e_sim - 1e-6) // 60)) + 1))
        for m in minutes:
            per_minute[m] = per_minute.get(m, 0) + 1
    return sum(max(0, n - installed) for n in per_minute.values()), spans


def peak_busy_workers(events: list[tuple], job: str | None = None) -> int:
    """Most workers running frames at the same moment (ends before starts at equal times)."""
    points = []
    for items in busy_intervals(events, job).values():
        for s, e in items:
            points += [(s, 1), (e, -1)]
    level = best = 0
    for _, d in sorted(points, key=lambda x: (x[0], x[1])):
        level += d
        best = max(best, level)
    return best


def peak_frames_on_one_worker(events: list[tuple]) -> int:
    per: dict[str, list[tuple[float, int]]] = {}
    runs = {}
    for kind, t, worker, obj in events:
        if kind == "launch":
            runs[obj.attempt_id] = worker
            per.setdefault(worker, []).append((t, 1))
        elif obj in runs:
            per.setdefault(runs[obj], []).append((t, -1))
    best = 0
    for pts in per.values():
        level = 0
        for _, d in sorted(pts, key=lambda x: (x[0], x[1])):
            level += d
            best = max(best, level)
    return best


class Sink:
    """A metering sink over real HTTP on 127.0.0.1: records batches by id, drops duplicates
    (checking they are the same batch), and can fail, lose its answers, or revoke."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.batches: dict[str, dict] = {}
        self.duplicates = 0
        self.mismatched: list[str] = []
        self.requests = 0
        self.forbidden = 0
        self.fail_next = 0             # answer 503 to this many requests (nothing recorded)
        self.lose_answers = 0          # record, then answer 500 as if the reply was lost
        self.down = False              # answer 503 until set back
        self.revoke = False            # accept, answering {"authorized": false}
        self.forbid = False            # answer 403 Forbidden (nothing recorded)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer = sink.receive(self.headers.get("Idempotency-Key"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/overage"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def receive(self, key: str | None, body: bytes) -> tuple[int, dict]:
        with self.lock:
            self.requests += 1
            if self.down or self.fail_next > 0:
                self.fail_next = max(0, self.fail_next - 1)
                return 503, {"message": "try later"}
            if self.forbid:
                self.forbidden += 1
                return 403, {"message": "metering not allowed for this site"}
            batch = json.loads(body)
            bid = batch["batch_id"]
            if key != bid:
                return 400, {"message": "Idempotency-Key differs from batch_id"}
            if bid in self.batches:
                self.duplicates += 1
                if self.batches[bid] != batch:
                    self.mismatched.append(bid)
            else:
                self.batches[bid] = batch
            if self.lose_answers > 0:
                self.lose_answers -= 1
                return 500, {"message": "recorded, but the answer is lost"}
            if self.revoke:
                return 200, {"authorized": False, "reason": "contract ended"}
            return 200, {"accepted": bid}

    def minutes(self) -> list[int]:
        with self.lock:
            return [m["minute"] for b in self.batches.values() for m in b["minutes"]]

    def worker_minutes(self) -> int:
        with self.lock:
            return sum(b["worker_minutes"] for b in self.batches.values())

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
