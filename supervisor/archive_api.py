"""Client requests about retention: list archive files, restore one, run a pass now; and the
rule that a restored job is read-only."""

from __future__ import annotations

import math

import logging
from typing import Any

from cuefarm import protocol as p
from supervisor import retention
from supervisor.context import Context
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ADMIN, WRANGLER
from supervisor.store import archive as store

log = logging.getLogger(__name__)
RUN_NOW_JOBS = 1000     # jobs archived at most by one `cuefarm archive run`


def _settings(cx: Context) -> retention.RetentionConfig:
    if cx.pipeline is None:
        return retention.RetentionConfig()
    return cx.pipeline.retention


def refuse_restored(cx: Context, field: str | None, body: Any) -> p.Body | None:
    """The refusal of a change to a job restored from an archive (read-only), or None."""
    if field is None:
        return None
    value = getattr(body, field, None)
    ids = value if isinstance(value, list) else [value] if isinstance(value, int) else []
    found = cx.read(lambda c: store.restored_among(c, ids)) if ids else []
    if found:
        return p.Error("read_only", f"job {found[0]} was restored from an archive: it is "
                                    "read-only", field)
    return None


@request("list_archives", role=WRANGLER, what="listing archives", read=True)
def _list(cx: Context, req: Request) -> p.Body:
    return p.Rows(retention.listing(_settings(cx)))


# Reading or writing archive files of thousands of jobs takes seconds: off the loop.
@request("restore_archive", role=WRANGLER, what="restoring archived jobs", off_loop=True)
def _restore(cx: Context, req: Request) -> p.Body:
    body: p.RestoreArchive = req.body
    try:
        ids = retention.restore_file(cx.engine, _settings(cx), body.file, cx.clock(),
                                     set(body.job_ids) or None)
    except retention.ArchiveError as exc:
        raise RequestError("invalid", str(exc), "file") from None
    log.info("%s restored jobs %s from %s", req.user, ids, body.file)
    return p.JobIds(ids)


@request("run_retention", role=ADMIN, what="running retention", off_loop=True)
def _run(cx: Context, req: Request) -> p.Body:
    settings = _settings(cx)
    body: p.RunRetention = req.body
    days = body.older_than_days
    if days is not None and not (math.isfinite(days) and days > 0):
        raise RequestError("invalid", "older than: a number of days above 0", "older_than_days")
    if days is None and settings.finished_job_days <= 0:
        raise RequestError("invalid", "retention is off: set [retention] finished_job_days, "
                           "or give an age (cuefarm archive run --older-than 30d)", None)
    # A bounded piece, off the loop (the duty does the rest on its own thread).
    result = retention.archive_pass(cx.engine, settings, cx.clock(), most=RUN_NOW_JOBS,
                                    days=days, dry_run=body.dry_run)
    if body.dry_run:
        return p.Done(result.jobs, f"would archive {result.jobs} job(s), "
                                   f"{result.frames} frame(s)")
    more = "more are due" if result.jobs >= RUN_NOW_JOBS else ""
    return p.Done(result.jobs, more)
