"""Metered overage: per-minute counts, 15-minute batch reports, delivery to the sink.

Every few seconds the supervisor counts the workers holding a licence (farm-wide, from the
database).  Each wall-clock minute keeps the highest count seen in it (the count carried in
from the previous minute included); a minute in which metering was on and that count passed
the installed licences is written to `overage_minute`, once (the minute is the key, so
supervisors sharing a database cannot write it twice).

Every 15 minutes the closed minutes not yet reported become one batch per quarter hour, with
a fresh id, in the same transaction that marks the minutes: a minute belongs to exactly one
batch.  Batches are delivered oldest first by a thread (the supervisor loop never waits on the
network) and marked accepted only when the sink says so; until then they are retried with
backoff, across restarts, with the same id and payload, so the sink can drop duplicates.

The sink is either
- an http(s) URL: each batch is POSTed as JSON (header `Idempotency-Key: <batch id>`).
  2xx (or 409, "already have it") accepts it.  403 refuses it and says metering is no longer
  authorized: the batch is parked as `refused` (not retried) until an admin re-authorizes
  metering, which puts refused batches back in line to be sent again.  A 2xx answer whose
  JSON body has `"authorized": false` also revokes (the batch is then accepted).  Anything
  else, or no answer, is retried.
- a directory: each batch is written as `cuefarm-overage-<id>.json` (written to a temporary
  name, synced, renamed).  A file named `REVOKED` there withdraws the authorization.

Money is decimal, never float: rates and costs are `Decimal` dollars with six decimal places
(micro-dollars, how they are stored), a batch's cost is worked out once from its
worker-minutes, `Decimal(worker_minutes) * rate / 60`, rounded half-up to the micro-dollar,
and amounts travel as strings ("0.016667").
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import queue
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

import cuefarm
from supervisor.store import metering as store

log = logging.getLogger(__name__)
MINUTE = 60
QUARTER = 900
MAX_GAP = 24 * 60              # minutes filled in after a stall; past that the clock jumped
BATCHES_PER_HANDOFF = 50
MICRO = Decimal("0.000001")       # the precision of every rate and cost: one micro-dollar
MICROS_PER_DOLLAR = 1_000_000


# --- money --------------------------------------------------------------------------------------

def dollars(micros: int | None) -> Decimal | None:
    """Stored micro-dollars as a Decimal amount of dollars (six places)."""
    return None if micros is None else (Decimal(int(micros)) * MICRO).quantize(MICRO)


def to_micros(amount: Decimal | None) -> int | None:
    """A Decimal amount of dollars as whole micro-dollars (rounded half-up)."""
    if amount is None:
        return None
    return int((Decimal(amount) * MICROS_PER_DOLLAR).to_integral_value(ROUND_HALF_UP))


def money_text(amount: Decimal | None) -> str | None:
    """An amount as it travels (JSON, the client API): a string with six decimal places."""
    return None if amount is None else str(Decimal(amount).quantize(MICRO, ROUND_HALF_UP))


# --- per-minute counts --------------------------------------------------------------------------

class MinuteMeter:
    """Highest number of workers holding a licence in each wall-clock minute, from samples.

    Between two samples the count is taken to stay what was last seen, so a minute the samples
    skipped (a stall) gets that count, and each minute starts with the count carried in.
    """

    def __init__(self) -> None:
        self.minute: int | None = None      # the open minute
        self.peak = 0
        self.metered = False                # metering was on at some sample in the minute
        self.last = 0
        self.last_metered = False

    def sample(self, now: float, busy: int, metered: bool) -> list[tuple[int, int, bool]]:
        """Record a sample; return the minutes it closed as (minute start, peak, metered)."""
        m = int(now // MINUTE) * MINUTE
        closed: list[tuple[int, int, bool]] = []
        if self.minute is None:
            self.minute, self.peak, self.metered = m, busy, metered
        elif m == self.minute:
            self.peak = max(self.peak, busy)
            self.metered = self.metered or metered
        elif m > self.minute:
            closed.append((self.minute, self.peak, self.metered))
            gap = (m - self.minute) // MINUTE - 1
            if gap <= MAX_GAP:
                closed.extend((self.minute + MINUTE * (i + 1), self.last, self.last_metered)
                              for i in range(gap))
            self.minute = m
            self.peak = max(self.last, busy)
            self.metered = self.last_metered or metered
        # else: the wall clock stepped back; keep the open minute, ignore the sample's time
        else:
            self.peak = max(self.peak, busy)
        self.last, self.last_metered = busy, metered
        return closed


def record_minutes(conn: Connection, closed: list[tuple[int, int, bool]],
                   installed: int | None, rate: Decimal) -> int:
    """Write the closed minutes that had overage while metering was on (`rate`: dollars per
    worker-hour); returns how many."""
    if installed is None:
        return 0
    rate_micros = to_micros(rate)
    rows = [{"minute": m, "workers": peak - installed, "busy": peak, "installed": installed,
             "rate_micros": rate_micros, "batch_id": None}
            for m, peak, metered in closed if metered and peak > installed]
    if rows:
        store.add_minutes(conn, rows)
    return len(rows)


meter_watermark = store.meter_watermark


def advance_watermark(conn: Connection, closed: list[tuple[int, int, bool]]) -> None:
    """Record that the meter counted up to the end of the newest closed minute."""
    if not closed:
        return
    store.advance_watermark(conn, max(m for m, _, _ in closed) + MINUTE)


def rebuild_minutes(conn: Connection, start: int, end: int) -> list[tuple[int, int]]:
    """(minute start, workers busy in it) for every minute in [start, end), from the attempts'
    start and stop times: what a meter would have counted while no supervisor was sampling.
    A worker counts in a minute when one of its attempts overlaps it; an attempt without a
    stop time runs on to `end`."""
    start, end = int(start) // MINUTE * MINUTE, int(end) // MINUTE * MINUTE
    if end <= start:
        return []
    spans: dict[int, list[tuple[int, int]]] = {}
    for host, began, stopped in store.attempt_spans(conn, start, end):
        a = max(float(began), start)
        b = min(float(stopped) if stopped is not None else end, end)
        if b <= a:
            continue
        # The minutes [first, last] this attempt touches.
        spans.setdefault(host, []).append((int(a // MINUTE), int((b - 1e-6) // MINUTE)))
    count = [0] * ((end - start) // MINUTE + 1)
    base = start // MINUTE
    for items in spans.values():
        merged: list[list[int]] = []
        for first, last in sorted(items):
            if merged and first <= merged[-1][1]:      # one worker counts once per minute
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        for first, last in merged:
            count[first - base] += 1
            count[last - base + 1] -= 1
    out, level = [], 0
    for i in range((end - start) // MINUTE):
        level += count[i]
        out.append((start + i * MINUTE, level))
    return out


def minute_cost(worker_minutes: int, rate: Decimal) -> Decimal:
    """Cost of `worker_minutes` at `rate` dollars per worker-hour, billed per minute, rounded
    half-up to the micro-dollar."""
    return (Decimal(worker_minutes) * Decimal(rate) / 60).quantize(MICRO, ROUND_HALF_UP)


def cost_of(minutes: list[tuple[int, Decimal]]) -> Decimal:
    """Cost of (worker-minutes, rate) pairs, rounded once: the worker-minutes at each rate times
    it, summed exactly, then divided by 60 and rounded half-up to the micro-dollar."""
    per_rate: dict[Decimal, int] = {}
    for workers, rate in minutes:
        per_rate[rate] = per_rate.get(rate, 0) + workers
    exact = sum((Decimal(w) * r for r, w in per_rate.items()), Decimal(0))
    return (exact / 60).quantize(MICRO, ROUND_HALF_UP)


# --- batches ------------------------------------------------------------------------------------

def make_batches(conn: Connection, now: float, site: str, supervisor_id: str,
                 grace: float = MINUTE) -> list[str]:
    """Gather unreported minutes of quarter hours that ended (at least `grace` ago) into one
    batch per quarter; returns the new batch ids."""
    boundary = int((now - grace) // QUARTER) * QUARTER
    rows = store.unreported_minutes(conn, boundary)
    quarters: dict[int, list[Any]] = {}
    for r in rows:
        quarters.setdefault(r.minute // QUARTER * QUARTER, []).append(r)
    ids = []
    for q, minutes in sorted(quarters.items()):
        bid = uuid.uuid4().hex
        worker_minutes = sum(r.workers for r in minutes)
        cost = cost_of([(r.workers, dollars(r.rate_micros)) for r in minutes])
        rates = {r.rate_micros for r in minutes}
        payload = {
            "batch_id": bid, "site": site, "supervisor_id": supervisor_id,
            "period_start": q, "period_end": q + QUARTER, "created_at": now,
            "unit": "worker-minute", "worker_minutes": worker_minutes,
            "rate_per_worker_hour": money_text(dollars(rates.pop())) if len(rates) == 1
            else None,
            # Exact decimal amounts as strings, rounded half-up to six places (micro-dollars).
            "cost": money_text(cost), "currency": "USD", "cost_decimals": 6,
            "minutes": [{"minute": r.minute, "workers": r.workers, "busy": r.busy,
                         "installed": r.installed,
                         "rate": money_text(dollars(r.rate_micros))} for r in minutes],
            "cuefarm": cuefarm.__version__,
        }
        store.add_batch(conn, bid, now, q, q + QUARTER, worker_minutes, to_micros(cost),
                        payload, [r.minute for r in minutes])
        ids.append(bid)
        log.info("overage report %s: %d worker-minutes from %s, $%s", bid, worker_minutes,
                 q, money_text(cost))
    return ids


def pending_batches(conn: Connection, limit: int = BATCHES_PER_HANDOFF) -> list[tuple[str, Any]]:
    return store.pending_batches(conn, limit)


# --- delivery -----------------------------------------------------------------------------------

@dataclass
class Delivery:
    """What the sink said about one batch."""

    batch_id: str
    accepted: bool
    revoked: bool = False
    error: str = ""


def _answer(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8")) if body.strip() else {}
    except (UnicodeDecodeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def post(url: str, batch_id: str, payload: Any, timeout: float = 15.0) -> Delivery:
    """POST one batch to an HTTP sink."""
    data = json.dumps(payload, sort_keys=True).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={
        "Content-Type": "application/json", "Idempotency-Key": batch_id,
        "User-Agent": f"cuefarm-supervisor/{cuefarm.__version__}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read(65536)
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536) if exc.fp else b""
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        return Delivery(batch_id, False, error=f"cannot reach {url}: {exc}"[:1000])
    answer = _answer(body)
    reason = str(answer.get("reason") or answer.get("message") or "")[:400]
    if status == 403:
        return Delivery(batch_id, False, True, f"HTTP 403: metering not authorized {reason}"
                        .strip())
    if 200 <= status < 300 or status == 409:
        revoked = answer.get("authorized") is False
        return Delivery(batch_id, True, revoked,
                        f"metering not authorized {reason}".strip() if revoked else "")
    return Delivery(batch_id, False, error=f"HTTP {status} from {url} {reason}".strip()[:1000])


def write_file(directory: str, batch_id: str, payload: Any) -> Delivery:
    """Write one batch into a directory sink (atomically; an existing file is the same batch)."""
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        final = d / f"cuefarm-overage-{batch_id}.json"
        if not final.exists():
            tmp = d / f".cuefarm-overage-{batch_id}.tmp"
            with open(tmp, "wb") as f:
                f.write(json.dumps(payload, sort_keys=True, indent=1).encode())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            fd = os.open(d, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        revoked_file = d / "REVOKED"
        if revoked_file.exists():
            reason = revoked_file.read_text(errors="replace").strip()[:400]
            return Delivery(batch_id, True, True,
                            f"metering not authorized (REVOKED in {d}) {reason}".strip())
    except OSError as exc:
        return Delivery(batch_id, False, error=f"cannot write to {d}: {exc}"[:1000])
    return Delivery(batch_id, True)


def deliver(sink: str, batch_id: str, payload: Any) -> Delivery:
    if sink.startswith(("http://", "https://")):
        return post(sink, batch_id, payload)
    return write_file(sink, batch_id, payload)


class Reporter:
    """A thread that delivers handed-off batches in order, stopping at the first failure.
    The supervisor loop hands work over and collects results; the thread never touches the
    database."""

    def __init__(self) -> None:
        self._jobs: queue.Queue = queue.Queue()
        self._results: queue.Queue = queue.Queue()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="metering-reporter", daemon=True)
        self._thread.start()

    def hand_off(self, sink: str, batches: list[tuple[str, Any]]) -> None:
        self.busy = True
        self._jobs.put((sink, batches))

    def results(self) -> list[Delivery]:
        """Deliveries finished since the last call."""
        out = []
        while True:
            try:
                item = self._results.get_nowait()
            except queue.Empty:
                return out
            if item is None:
                self.busy = False
            else:
                out.append(item)

    def _run(self) -> None:
        while True:
            sink, batches = self._jobs.get()
            try:
                for bid, payload in batches:
                    try:
                        d = deliver(sink, bid, payload)
                    except Exception as exc:   # a bug must not kill the thread
                        log.exception("delivering overage report %s failed", bid)
                        d = Delivery(bid, False, error=f"internal error: {exc}"[:1000])
                    self._results.put(d)
                    if not d.accepted or d.revoked:
                        break
            finally:
                self._results.put(None)


def apply_results(conn: Connection, results: list[Delivery], now: float) -> Delivery | None:
    """Record deliveries; returns the first that revoked metering, if any."""
    revoked = None
    for d in results:
        # Refused as unauthorized: retrying cannot help until metering is re-authorized.
        outcome = "accepted" if d.accepted else "refused" if d.revoked else ""
        store.delivered(conn, d.batch_id, outcome, now, d.error)
        if d.revoked and revoked is None:
            revoked = d
    return revoked


def month_totals(conn: Connection, start: float, end: float) -> tuple[int, Decimal]:
    """Overage worker-minutes and their cost (Decimal dollars, rounded half-up to the
    micro-dollar once, from an exact integer sum) for minutes in [start, end)."""
    minutes, micro_minutes = store.sums(conn, start, end)
    # workers * micro-dollars per hour, summed: / 60 for minutes, / 10^6 for dollars.
    cost = (Decimal(int(micro_minutes)) / 60 * MICRO).quantize(MICRO, ROUND_HALF_UP)
    return minutes, cost


def batch_rows(conn: Connection, limit: int = 100) -> list[dict[str, Any]]:
    """Reports, newest first (cost as a decimal string of dollars)."""
    out = store.batches(conn, limit)
    for row in out:
        row["cost"] = money_text(dollars(row.pop("cost_micros")))
    return out


backlog = store.backlog


def resend_refused(conn: Connection) -> int:
    """Put the reports a sink refused back in line (metering was re-authorized); returns how
    many.  They go again with the same id and payload."""
    return store.resend_refused(conn)
