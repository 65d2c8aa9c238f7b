"""Layer statistics and host history requests: what a wrangler reads to find a heavy layer and
an admin to see a host's day."""

from __future__ import annotations

import math

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, control_errors, request
from supervisor.roles import ARTIST
from supervisor.store import hosthistory, layerstats
from supervisor.store import hosts as host_store
from supervisor.store import jobs as rows


@request("layer_stats", role=ARTIST, what="reading layer statistics", jobs="job_id", read=True)
def _layer_stats(cx: Context, req: Request) -> p.Body:
    body: p.LayerStats = req.body

    def read(conn):
        if body.layer is None:
            if not rows.job_rows(conn, [body.job_id]):
                raise RequestError("not_found", f"no job with id {body.job_id}", "job_id")
            layer_id = None
        else:
            layer_id, _ = control_errors(rows.find_layer, conn, body.job_id, body.layer)
        found = layerstats.layer_stats(conn, body.job_id, layer_id)
        if body.runtimes:
            for r in found:
                r["runtimes"] = layerstats.runtimes(conn, r["layer_id"], p.MAX_RUNTIMES)
        return found
    return p.Rows(cx.read(read))


@request("host_history", role=ARTIST, what="reading a host's history", read=True)
def _host_history(cx: Context, req: Request) -> p.Body:
    body: p.HostHistory = req.body
    kept = cx.cfg.host_history_hours
    if not (math.isfinite(body.hours) and 0 < body.hours):
        raise RequestError("invalid", f"hours must be more than 0, not {body.hours}", "hours")
    since = cx.clock() - min(body.hours, kept) * 3600.0

    def read(conn):
        host_id = host_store.host_id(conn, body.host)
        if host_id is None:
            raise RequestError("not_found", f"no host named {body.host!r}", "host")
        return hosthistory.history(conn, host_id, since)
    return p.Rows(cx.read(read))
