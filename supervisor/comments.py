"""The comment requests: add a note to a job or a host, list them, delete one.

The author is the user the supervisor takes the sender for (as `whoami` says), never a field
of the request.  Adding or deleting a comment touches its job or host, so the job and host
rows (which carry their comment counts) go out as change events and an open GUI shows the new
comment without asking.
"""

from __future__ import annotations

import logging

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, control_errors, request
from supervisor.roles import ADMIN, ARTIST
from supervisor.store import comments as store
from supervisor.store.errors import ControlError
from supervisor.store.work import Touched

log = logging.getLogger(__name__)


def _touched(kind: str, subject_id: int) -> Touched:
    return Touched(jobs={subject_id}) if kind == "job" else Touched(hosts={subject_id})


@request("add_comment", role=ARTIST, what="commenting", jobs="job_id")
def _add_comment(cx: Context, req: Request) -> p.Body:
    body: p.AddComment = req.body
    now = cx.clock()
    try:
        with cx.begin() as (conn, out):
            kind, subject_id = store.subject(conn, body.job_id, body.host)
            comment_id = store.add(conn, kind, subject_id, req.user, body.text, now)
            out.note(_touched(kind, subject_id))
    except ControlError as exc:
        raise RequestError(exc.code, str(exc), exc.field) from None
    log.info("%s commented on %s %s (comment %d)", req.user, kind,
             body.job_id if kind == "job" else body.host, comment_id)
    return p.Done(comment_id)


@request("list_comments", role=ARTIST, what="reading comments", jobs="job_id", read=True)
def _list_comments(cx: Context, req: Request) -> p.Body:
    body: p.ListComments = req.body

    def read(conn):
        kind, subject_id = store.subject(conn, body.job_id, body.host)
        return store.rows(conn, kind, subject_id)
    return p.Rows(cx.read(lambda c: control_errors(read, c)))


@request("delete_comment", role=ARTIST, what="deleting comments")
def _delete_comment(cx: Context, req: Request) -> p.Body:
    body: p.DeleteComment = req.body
    role = cx.policy.role(req.user)
    try:
        with cx.begin() as (conn, out):
            row = store.find(conn, body.id)
            if row.author != req.user and role != ADMIN:
                raise RequestError("forbidden", f"comment {body.id} is {row.author}'s: only its "
                                                f"author or an admin may delete it; you are "
                                                f"{req.user} ({role})", "id")
            store.remove(conn, body.id)
            out.note(_touched("job", row.job_id) if row.job_id is not None
                     else _touched("host", row.host_id))
    except ControlError as exc:
        raise RequestError(exc.code, str(exc), exc.field) from None
    log.info("%s deleted comment %d by %s", req.user, body.id, row.author)
    return p.Done(1)
