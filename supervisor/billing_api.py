"""Client requests for licences, overage reports, usage and metrics (the parts of
supervisor.billing a client may read or change)."""

from __future__ import annotations

import logging
import math

from cuefarm import protocol as p
from supervisor import metering, metrics, usage
from supervisor.context import Context
from supervisor.licensing import TermsError
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ADMIN, ARTIST

log = logging.getLogger(__name__)


def _invalid(message: str, field: str | None = None) -> RequestError:
    return RequestError("invalid", message, field)


def _billing(cx: Context):
    """The supervisor's billing (supervisor.billing.Billing), or the refusal without one."""
    if cx.billing is None:
        raise RequestError("unavailable", "licences and metrics are not set up on this "
                                          "supervisor")
    return cx.billing


@request("licences", role=ARTIST, what="reading the licence terms")
def _licences(cx: Context, req: Request) -> p.Body:
    b = _billing(cx)
    return p.Row(cx.read(b.status))


@request("set_licences", role=ADMIN, what="Changing worker licences")
def _set_licences(cx: Context, req: Request) -> p.Body:
    body: p.SetLicences = req.body
    b = _billing(cx)
    try:
        with cx.begin() as (conn, out):
            b.licensing.change(conn, cx.clock(), body.count, body.unlimited, body.metered,
                               body.sink, body.rate)
            out.wake()      # more (or fewer) workers may take frames now
            out.tell_farm(reload=["licences"])     # every supervisor dispatches by them
    except TermsError as exc:
        raise _invalid(str(exc), exc.field) from None
    terms = b.licensing.terms
    log.info("%s: worker licences %s, metered %s, sink %r, rate %s", req.user,
             "unlimited" if terms.installed is None else terms.installed, terms.metered,
             terms.sink, terms.rate)
    return p.Row(cx.read(b.status))


@request("licence_reports", role=ARTIST, what="listing licence reports", read=True)
def _licence_reports(cx: Context, req: Request) -> p.Body:
    body: p.ListLicenceReports = req.body
    _billing(cx)
    limit = max(1, min(body.limit, 10_000))
    return p.Rows(cx.read(lambda c: metering.batch_rows(c, limit)))


@request("usage", role=ARTIST, what="reading usage", read=True)
def _usage(cx: Context, req: Request) -> p.Body:
    body: p.GetUsage = req.body
    _billing(cx)
    try:
        return p.Rows(cx.read(lambda c: usage.report(c, body.start, body.end, body.by)))
    except usage.UsageError as exc:
        raise _invalid(str(exc), exc.field) from None


@request("metrics", role=ARTIST, what="reading metrics")
def _metrics(cx: Context, req: Request) -> p.Body:
    b = _billing(cx)
    values = b.sampler.latest or b.sampler.sample()
    at = b.sampler.latest_t
    rows = [{"name": s.name, "value": values.get(s.name), "unit": s.unit,
             "help": s.help, "prometheus": s.prom or None, "t": at, "scope": s.scope,
             "supervisor": cx.owner} for s in metrics.SERIES]
    # Messages refused or answered with an error since this supervisor started, by reason.
    rows += [{"name": f"errors.{code}", "value": n, "unit": "messages",
              "help": metrics.error_help(code), "prometheus": metrics.ERRORS_FAMILY,
              "t": at, "scope": "supervisor", "supervisor": cx.owner}
             for code, n in sorted(cx.live.errors.items())]
    return p.Rows(rows)


@request("metric_history", role=ARTIST, what="reading metric history", read=True)
def _metric_history(cx: Context, req: Request) -> p.Body:
    body: p.MetricHistory = req.body
    _billing(cx)
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
    res, points = cx.read(lambda c: metrics.history(c, body.series, body.start, body.end,
                                                    body.resolution))
    return p.MetricPoints(body.series, res, points)
