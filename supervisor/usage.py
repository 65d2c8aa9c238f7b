"""Usage accounting: slot-hours, worker-minutes and frames per project, user and UTC day.

Derived from ended attempts by a periodic pass, never on the dispatch path.  Each pass reads
attempts that ended past a watermark (the newest stop time already counted, less a window for
completions that arrive late, e.g. from a worker that reconnects with them), skips those it
already counted (`usage_seen`, pruned behind the window) and adds the rest to `usage_day`.
The figures stay when jobs, frames and attempts are cleaned away.

Definitions:
- slot-hours: an attempt's run time times the slots it was granted;
- worker-minutes: an attempt's run time times the share of its worker's slots it held (a
  worker busy for an hour, however its slots were shared, is 60 worker-minutes in total);
- frames succeeded / failed: attempts that exited 0 / failed (killed and lost runs count
  time but neither);
- time is split across UTC days; frames count on the day they stopped.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from cuefarm.states import AttemptState
from supervisor.store import usage as store

log = logging.getLogger(__name__)
DAY = 86400
WINDOW = 3600.0          # completions arriving up to this late (by stop time) are still counted
CHUNK = 2_000            # attempts per transaction
BUDGET = 0.2             # seconds of catching up per periodic pass (the loop waits meanwhile)
BY = ("project", "user", "day")


def day_of(t: float) -> str:
    return _day_name(int(t // DAY))


@functools.lru_cache(maxsize=4096)
def _day_name(day: int) -> str:
    return datetime.fromtimestamp(day * DAY, timezone.utc).strftime("%Y-%m-%d")


def split_days(start: float, stop: float):
    """(day, seconds) pieces of [start, stop) cut at UTC midnights."""
    t = start
    while t < stop:
        edge = (int(t // DAY) + 1) * DAY
        end = min(stop, edge)
        yield day_of(t), end - t
        t = end


def account(conn: Connection, now: float, window: float = WINDOW, limit: int = CHUNK) -> int:
    """Count attempts that ended since the last pass (at most `limit`); returns how many."""
    wm = store.watermark(conn)
    lo = None
    if wm is not None:
        wm = min(wm, now)
        lo = wm - window
        # Late completions are rare: look behind the watermark only when more attempts ended
        # in the window than were counted there.
        if store.all_counted(conn, lo, wm):
            lo = wm
    rows = store.ended(conn, lo, limit)
    if not rows:
        return 0
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0, 0])
    for r in rows:
        project, user = (r.project or "?")[:128], (r.user or "?")[:128]
        start, stop = r.started_at, max(r.stopped_at, r.started_at)   # clocks may disagree
        host_slots = r.slots_configured or 0
        share = min(1.0, r.slots / host_slots) if host_slots > 0 else 1.0
        for day, secs in split_days(start, stop):
            acc = sums[(day, project, user)]
            acc[0] += secs * r.slots
            acc[1] += secs * share
        acc = sums[(day_of(stop), project, user)]
        if r.state == AttemptState.SUCCEEDED.value:
            acc[2] += 1
        elif r.state == AttemptState.FAILED.value:
            acc[3] += 1
    # Counted first: a second supervisor counting the same attempts collides there.
    store.mark_counted(conn, rows)
    store.add(conn, sums)
    newest = min(max(r.stopped_at for r in rows), now)
    store.forget_counted_before(conn, newest - window)
    return len(rows)


def run(engine, now: float, window: float = WINDOW, budget: float = BUDGET) -> int:
    """A periodic pass: catch up in chunks of one transaction each, for at most `budget`
    seconds (a long backlog is worked off over several passes)."""
    total = 0
    deadline = time.perf_counter() + budget
    while True:
        try:
            with engine.begin() as conn:
                n = account(conn, now, window)
        except IntegrityError:
            log.info("usage accounting: another supervisor counted the same attempts; "
                     "trying again next pass")
            return total
        total += n
        if n < CHUNK or time.perf_counter() > deadline:
            return total


class UsageError(ValueError):
    """A usage request that cannot be answered; `field` names the culprit."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.field = field


def parse_day(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text)
    except (TypeError, ValueError):
        raise UsageError(f"{field} {text!r} is not a date (YYYY-MM-DD)", field) from None


def report(conn: Connection, start: str, end: str, by: str) -> list[dict[str, Any]]:
    """Usage from day `start` to day `end` (inclusive, UTC) grouped by project, user or day."""
    if by not in BY:
        raise UsageError(f"cannot group usage by {by!r} (project, user or day)", "by")
    lo, hi = parse_day(start, "start"), parse_day(end, "end")
    if hi < lo:
        raise UsageError(f"the end {end} is before the start {start}", "end")
    if hi - lo > timedelta(days=366 * 20):
        raise UsageError("a usage report covers at most 20 years", "start")
    return [{by: k, "slot_hours": round((slot_s or 0.0) / 3600, 4),
             "worker_minutes": round((worker_s or 0.0) / 60, 2),
             "succeeded": int(ok or 0), "failed": int(bad or 0)}
            for k, slot_s, worker_s, ok, bad in store.totals(conn, lo.isoformat(),
                                                              hi.isoformat(), by)]
