"""The export_job request: a submitted job as a job file, to keep or submit again."""

from __future__ import annotations

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ARTIST
from supervisor.store import exports


@request("export_job", role=ARTIST, what="exporting a job", jobs="job_id", read=True)
def _export_job(cx: Context, req: Request) -> p.Body:
    job_id = req.body.job_id
    found = cx.read(lambda c: exports.job_file(c, job_id))
    if found is None:
        raise RequestError("not_found", f"no job with id {job_id}", "job_id")
    return p.Row(found)
