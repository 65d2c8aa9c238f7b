"""Who may do what on this supervisor: the check before every client request, project
visibility, and the whoami and project members requests.

Roles come from the supervisor's configuration (supervisor.roles); each request type's rule is
declared with its handler (supervisor.requests).  `check` runs before every client request's
handler (supervisor.clientapi.serve) and answers with an error to refuse it; `filter_reply`
takes the rows of restricted projects out of what an artist who is not a member may see.  The
identity is the user the client's key is (supervisor.trust); on a farm without keys it is the
user the client claims, and these rules only keep honest people from mistakes.

The rules mirror what the GUI shows (cuegui.permissions):
- artists read everything, submit, and act on their own jobs and frames;
- wranglers act on any job, and change priorities, jobs and layers, projects, dependencies
  and limits;
- admins also manage hosts: locks, slots, tags, drains, admission, schedules, path maps and
  worker licences.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import DECLARED, Request, RequestError, Rule, request
from supervisor.roles import ADMIN, ARTIST, RANK, WRANGLER, Policy, loopback
from supervisor.store import admin, jobs
from supervisor.store.errors import ControlError

log = logging.getLogger(__name__)


# A request type nobody declared is for admins (still everyone on an open farm).
UNLISTED = Rule(ADMIN, "This request")


# --- project members ------------------------------------------------------------------------------

def hidden_projects(policy: Policy, conn: Connection, user: str) -> frozenset[str]:
    """The projects whose jobs `user` may not see: restricted ones they are not a member of.
    Wranglers and admins see everything."""
    if RANK[policy.role(user)] >= RANK[WRANGLER]:
        return frozenset()
    return frozenset(name for name, who in admin.members(conn).items() if user not in who)


# --- the check before every request ---------------------------------------------------------------

def _job_ids(body: Any, name: str | None) -> list[int]:
    if name is None:
        return []
    value = getattr(body, name, None)
    if value is None:
        return []
    return [value] if isinstance(value, int) else list(value)


def _forbidden(cx: Context, what: str, least: str, user: str, role: str) -> p.Error:
    cx.live.errors["forbidden"] += 1
    return p.Error("forbidden", f"{what} is for {least}s; you are {user} ({role})")


def check(cx: Context, type_name: str, body: Any, user: str) -> p.Error | None:
    """None when `user` may make this request; else the error to answer with (counted)."""
    declared = DECLARED.get(type_name)
    rule = declared.rule if declared is not None else UNLISTED
    role = cx.policy.role(user)
    least, what = rule.least, rule.what
    action = getattr(body, "action", None)
    if isinstance(action, str) and action in rule.actions:
        least, what = rule.actions[action]
    if RANK[role] < RANK[least]:
        return _forbidden(cx, what[0].upper() + what[1:], least, user, role)
    if role != ARTIST:
        return None
    ids = _job_ids(body, rule.jobs)
    if not ids:
        return None

    def look(conn):
        return hidden_projects(cx.policy, conn, user), jobs.owners(conn, ids)
    hidden, by_id = cx.read(look)
    for job_id in ids:
        r = by_id.get(job_id)
        if r is None:
            continue    # the handler says the job does not exist, in its own words
        if r.project in hidden:
            cx.live.errors["not_found"] += 1
            return p.Error("not_found", f"no job with id {job_id}", rule.jobs)
    if rule.own:
        for job_id in ids:
            r = by_id.get(job_id)
            if r is not None and r.user != user:
                cx.live.errors["forbidden"] += 1
                return p.Error("forbidden", f"{what[0].upper() + what[1:]} of another user's "
                                            f"job is for wranglers: job {job_id} is {r.user}'s; "
                                            f"you are {user} ({role})", rule.jobs)
    return None


# --- after the handler: what a non-member may not see --------------------------------------------

def _drop_hidden(cx: Context, user: str, rows: list[dict]) -> list[dict]:
    def read(conn):
        hidden = hidden_projects(cx.policy, conn, user)
        if not hidden or not rows:
            return rows
        if all("project" in r for r in rows):
            return [r for r in rows if r["project"] not in hidden]
        ids = {r["job_id"] for r in rows if "job_id" in r}
        gone = jobs.in_projects(conn, ids, hidden) if ids else set()
        return [r for r in rows if r.get("job_id") not in gone]
    return cx.read(read)


def filter_reply(cx: Context, type_name: str, body: Any, user: str,
                 reply: p.Body | None) -> p.Body | None:
    """The handler's reply as `user` may see it."""
    if not isinstance(reply, p.Rows):
        return reply
    if type_name == "list_projects":
        restricted = cx.read(admin.members)
        for r in reply.rows:
            r["members"] = restricted.get(r.get("name"), [])
        return reply
    if type_name in ("list_jobs", "list_frames", "next_for_host"):
        if cx.policy.role(user) == ARTIST:
            reply.rows = _drop_hidden(cx, user, reply.rows)
    return reply


# --- requests -------------------------------------------------------------------------------------

@request("whoami", role=ARTIST, what="asking who you are")
def _whoami(cx: Context, req: Request) -> p.Body:
    pol = cx.policy
    return p.Row({"user": req.user, "role": pol.role(req.user), "open": pol.open,
                  "keys": cx.gate is not None,
                  # Listening in the clear where other machines reach it: anyone may claim
                  # to be anyone.
                  "insecure": cx.gate is None and not loopback(cx.cfg.bind)})


@request("set_project_members", role=WRANGLER, what="Restricting a project to members")
def _set_project_members(cx: Context, req: Request) -> p.Body:
    body: p.SetProjectMembers = req.body
    try:
        with cx.begin() as (conn, _):
            who = admin.set_members(conn, body.name, body.members)
    except ControlError as exc:
        raise RequestError(exc.code, str(exc), exc.field) from None
    cx.live.views_changed = True     # events subscribers get the view they have now
    log.info("%s: project %s members %s", req.user, body.name, who or "(everyone)")
    return p.Done(len(who))
