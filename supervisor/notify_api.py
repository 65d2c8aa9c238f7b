"""Client requests about notifications: list them (pending, failed, sent), retry failed ones."""

from __future__ import annotations

from cuefarm import notify_rules, spec
from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ARTIST, WRANGLER
from supervisor.store import notifications as store


@request("list_notifications", role=ARTIST, what="listing notifications", read=True)
def _list(cx: Context, req: Request) -> p.Body:
    body: p.ListNotifications = req.body
    if not 1 <= body.limit <= 100_000:
        raise RequestError("invalid", f"limit must be from 1 to 100000, not {body.limit}",
                           "limit")
    states = [store.PENDING, store.FAILED] + ([store.SENT] if body.all else [])
    return p.Rows(cx.read(lambda c: store.listing(c, states, body.limit)))


@request("set_project_notify", role=WRANGLER, what="setting a project's notifications")
def _set_project(cx: Context, req: Request) -> p.Body:
    body: p.SetProjectNotify = req.body
    name = body.project
    if not spec.NAME_RE.fullmatch(name):
        raise RequestError("invalid", f"{name!r} is not a valid project name", "project")
    try:
        rules = notify_rules.validate(body.rules, "rules")
    except notify_rules.RuleError as exc:
        raise RequestError("invalid", exc.message, exc.field) from None
    with cx.begin() as (conn, _):
        store.set_project_rules(conn, name, rules)
    return p.Done(len(rules))


@request("get_project_notify", role=ARTIST, what="reading a project's notifications",
         read=True)
def _get_project(cx: Context, req: Request) -> p.Body:
    name = req.body.project
    rules = cx.read(lambda c: store.project_rules(c, [name])).get(name, [])
    return p.Row({"project": name, "rules": rules})


@request("retry_notifications", role=WRANGLER, what="retrying notifications")
def _retry(cx: Context, req: Request) -> p.Body:
    ids = list(req.body.ids)
    with cx.begin() as (conn, _):
        count = store.retry(conn, ids, cx.clock())
    return p.Done(count)


@request("job_notify", role=ARTIST, what="setting a job's notifications", jobs="job_id",
         own=True)
def _job_notify(cx: Context, req: Request) -> p.Body:
    body: p.JobNotify = req.body
    rules = None
    if body.rules is not None:
        try:
            rules = notify_rules.validate(body.rules, "rules")
        except notify_rules.RuleError as exc:
            raise RequestError("invalid", exc.message, exc.field) from None
    with cx.begin() as (conn, _):
        if not store.has_job(conn, body.job_id):
            raise RequestError("not_found", f"no job with id {body.job_id}", "job_id")
        if rules is not None:
            store.replace_rules(conn, body.job_id, rules)
        current = store.rules_of(conn, [body.job_id]).get(body.job_id, [])
    return p.Row({"job_id": body.job_id, "rules": current})
