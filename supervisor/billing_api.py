"""Client API requests for licences, overage reports, usage and metrics (merged into
clientapi.HANDLERS)."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Callable

from cuefarm import protocol as p
from supervisor import metering, metrics, usage
from supervisor.licensing import TermsError

if TYPE_CHECKING:
    from supervisor.billing import Billing
    from supervisor.server import Supervisor

log = logging.getLogger(__name__)


def _invalid(message: str, field: str | None = None) -> Exception:
    # Imported here: clientapi imports this module while it is itself being imported.
    from supervisor.clientapi import RequestError
    return RequestError("invalid", message, field)


def _billing(sv: "Supervisor") -> "Billing":
    b = getattr(sv, "billing", None)
    if b is None:
        from supervisor.clientapi import RequestError
        raise RequestError("unavailable", "licences and metrics are not set up on this "
                                          "supervisor")
    return b


def _read(sv: "Supervisor", fn: Callable):
    with sv.engine.connect() as conn:
        try:
            return fn(conn)
        finally:
            conn.rollback()


def _licences(sv, body: p.GetLicences, user, route, rid):
    b = _billing(sv)
    return p.Row(_read(sv, b.status))


def _set_licences(sv, body: p.SetLicences, user, route, rid):
    b = _billing(sv)
    try:
        with sv.engine.begin() as conn:
            b.licensing.change(conn, sv.clock(), body.count, body.unlimited, body.metered,
                               body.sink, body.rate)
    except TermsError as exc:
        raise _invalid(str(exc), exc.field) from None
    terms = b.licensing.terms
    log.info("%s: worker licences %s, metered %s, sink %r, rate %s", user,
             "unlimited" if terms.installed is None else terms.installed, terms.metered,
             terms.sink, terms.rate)
    sv.dispatch_needed = True
    return p.Row(_read(sv, b.status))


def _licence_reports(sv, body: p.ListLicenceReports, user, route, rid):
    _billing(sv)
    limit = max(1, min(body.limit, 10_000))
    return p.Rows(_read(sv, lambda c: metering.batch_rows(c, limit)))


def _usage(sv, body: p.GetUsage, user, route, rid):
    _billing(sv)
    try:
        return p.Rows(_read(sv, lambda c: usage.report(c, body.start, body.end, body.by)))
    except usage.UsageError as exc:
        raise _invalid(str(exc), exc.field) from None


def _metrics(sv, body: p.GetMetrics, user, route, rid):
    b = _billing(sv)
    values = b.sampler.latest or b.sampler.sample()
    at = b.sampler.latest_t
    return p.Rows([{"name": s.name, "value": values.get(s.name), "unit": s.unit,
                    "help": s.help, "prometheus": s.prom or None, "t": at} for s in metrics.SERIES])


def _metric_history(sv, body: p.MetricHistory, user, route, rid):
    _billing(sv)
    if body.series not in metrics.BY_NAME:
        raise _invalid(f"unknown metric {body.series!r} (one of: "
                       f"{', '.join(metrics.BY_NAME)})", "series")
    for name in ("start", "end", "resolution"):
        if not math.isfinite(getattr(body, name)):
            raise _invalid(f"{name} must be a finite number", name)
    if body.end <= body.start:
        raise _invalid("end must be after start", "end")
    if body.resolution < 0:
        raise _invalid("resolution cannot be negative", "resolution")
    res, points = _read(sv, lambda c: metrics.history(c, body.series, body.start, body.end,
                                                      body.resolution))
    return p.MetricPoints(body.series, res, points)


HANDLERS = {"licences": _licences, "set_licences": _set_licences,
            "licence_reports": _licence_reports, "usage": _usage, "metrics": _metrics,
            "metric_history": _metric_history}
