"""The supervisor's own figures for the charts: metric history, licences and usage.

`fetch_metrics` runs on the connection's worker thread (it only calls the client API); the
charts apply its answer on the UI thread.  It asks for each series from the last point already
held, so a refresh moves a few points, not hours of them.  A series the supervisor does not
keep, or a call that fails, is named in the answer's `errors` (and logged), never dropped.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

log = logging.getLogger(__name__)

# Chart key -> supervisor series (supervisor/metrics.py SERIES).
SUPERVISOR_SERIES = {
    "process_cpu": "process.cpu", "host_cpu": "host.cpu", "host_memory": "host.memory",
    "process_rss": "process.rss", "db_latency": "db.latency", "dispatch_rate": "dispatch.rate",
    "report_rate": "report.rate", "events_backlog": "events.backlog",
    "licences_in_use": "licences.in_use", "loop_turn_max": "loop.turn_max",
}
HISTORY_SPAN = 6 * 3600.0
USAGE_DAYS = 7


def usage_days(today: dt.date, days: int = USAGE_DAYS) -> list[dt.date]:
    """The last `days` days up to and including `today`, oldest first."""
    return [today - dt.timedelta(days=k) for k in range(days - 1, -1, -1)]


def fetch_metrics(client, since: dict[str, float], usage: bool,
                  now: float | None = None) -> dict[str, Any]:
    """Points of every supervisor series after `since[key]` (the last 6 h when absent), the
    licence status, and (when `usage`) slot-hours per project for each of the last days.

    Answer: {"points": {key: [(t, v)]}, "known": [series the supervisor samples],
    "licences": dict | None, "usage": [(date, {project: slot_hours})] | None,
    "errors": [text]}."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {"points": {}, "known": [], "licences": None, "usage": None,
                           "errors": []}

    def failed(what: str, exc: Exception) -> None:
        if type(exc).__name__ == "Unreachable":
            raise exc
        text = f"{what}: {exc}"
        log.warning("charts: %s", text)
        out["errors"].append(text)

    try:
        out["known"] = sorted({m["name"] for m in client.metrics()})
    except Exception as exc:  # noqa: BLE001 - reported in the chart's note
        failed("metrics", exc)
    for key, name in SUPERVISOR_SERIES.items():
        if out["known"] and name not in out["known"]:
            out["errors"].append(f"the supervisor does not record {name}")
            continue
        start = since.get(key, now - HISTORY_SPAN)
        try:
            points = client.metric_history(name, start, now, 0.0)
        except Exception as exc:  # noqa: BLE001
            failed(f"history of {name}", exc)
            continue
        out["points"][key] = [(t, v) for t, v in points if t > start or key not in since]
    try:
        out["licences"] = client.licences()
    except Exception as exc:  # noqa: BLE001
        failed("licences", exc)
    if usage:
        today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
        days = []
        try:
            for day in usage_days(today):
                rows = client.usage(day.isoformat(), day.isoformat(), by="project")
                days.append((day, {str(r.get("project") or "default"):
                                   float(r.get("slot_hours") or 0.0) for r in rows}))
            out["usage"] = days
        except Exception as exc:  # noqa: BLE001
            failed("usage", exc)
    return out


def history_names(client, wanted: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The part of `wanted` (chart key -> series) the supervisor records, and a note for each
    series it does not (asked through Client.metrics(), so a missing series is said, not
    silently charted as empty)."""
    try:
        known = {m["name"] for m in client.metrics()}
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ == "Unreachable":
            raise
        log.warning("charts: metrics: %s", exc)
        return dict(wanted), [f"metrics: {exc}"]
    if not known:          # no sample taken yet: ask for everything
        return dict(wanted), []
    have = {k: v for k, v in wanted.items() if v in known}
    return have, [f"the supervisor does not record {v}" for k, v in wanted.items()
                  if v not in known]
