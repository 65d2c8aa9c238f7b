"""Who may do what on this supervisor: the check before every client request, project
visibility, and the whoami and project members requests.

Roles come from the supervisor's configuration (supervisor.roles); each request type's rule is
declared with its handler (supervisor.requests).  `check` runs before every client request's
handler (supervisor.clientapi.serve) and answers with an error to refuse it; `filter_reply`
takes the rows of restricted projects out of what an artist who is not a member may see.  The
identity is the user the client claims in the envelope until CURVE authentication ties it to
a key: these rules keep honest people from mistakes.

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

from sqlalchemy import Connection, insert, select, update

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import DECLARED, Request, RequestError, Rule, request
from supervisor.roles import ADMIN, ARTIST, RANK, WRANGLER, Policy
from supervisor.store.errors import ControlError
from supervisor.store.models import Job, Project, Setting
from supervisor.store.submit import ensure_project

log = logging.getLogger(__name__)

MEMBERS_KEY = "project_members"     # Setting row: {project name: [user, ...]}
MAX_NAME = 128

# A request type nobody declared is for admins (still everyone on an open farm).
UNLISTED = Rule(ADMIN, "This request")


# --- project members ------------------------------------------------------------------------------

def members(conn: Connection) -> dict[str, list[str]]:
    """Restricted projects and their members (projects not listed are open to everyone)."""
    value = conn.execute(select(Setting.value).where(Setting.key == MEMBERS_KEY)).scalar()
    return {k: list(v) for k, v in (value or {}).items() if v}


def hidden_projects(policy: Policy, conn: Connection, user: str) -> frozenset[str]:
    """The projects whose jobs `user` may not see: restricted ones they are not a member of.
    Wranglers and admins see everything."""
    if RANK[policy.role(user)] >= RANK[WRANGLER]:
        return frozenset()
    return frozenset(name for name, who in members(conn).items() if user not in who)


def set_members(conn: Connection, project: str, users: list[str]) -> list[str]:
    """Restrict `project` to `users` (an empty list opens it to everyone); return the members."""
    if not project or len(project) > MAX_NAME:
        raise ControlError(f"{project!r} is not a project name", "name")
    clean = sorted(set(users))
    for u in clean:
        if not u or len(u) > MAX_NAME or any(c.isspace() or c == "," for c in u):
            raise ControlError(f"{u!r} is not a user name", "members")
    ensure_project(conn, project)
    q = select(Setting.value).where(Setting.key == MEMBERS_KEY)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()     # several supervisors: no lost update of the one row
    row = conn.execute(q).first()
    current = dict(row.value or {}) if row is not None else {}
    if clean:
        current[project] = clean
    else:
        current.pop(project, None)
    if row is None:
        conn.execute(insert(Setting).values(key=MEMBERS_KEY, value=current))
    else:
        conn.execute(update(Setting).where(Setting.key == MEMBERS_KEY).values(value=current))
    return clean


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
        return (hidden_projects(cx.policy, conn, user),
                conn.execute(select(Job.id, Job.user, Project.name)
                             .join(Project, Project.id == Job.project_id)
                             .where(Job.id.in_(ids))).all())
    hidden, found = cx.read(look)
    by_id = {r.id: r for r in found}
    for job_id in ids:
        r = by_id.get(job_id)
        if r is None:
            continue    # the handler says the job does not exist, in its own words
        if r.name in hidden:
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
        gone = set(conn.execute(select(Job.id).join(Project, Project.id == Job.project_id)
                                .where(Job.id.in_(ids), Project.name.in_(hidden)))
                   .scalars()) if ids else set()
        return [r for r in rows if r.get("job_id") not in gone]
    return cx.read(read)


def filter_reply(cx: Context, type_name: str, body: Any, user: str,
                 reply: p.Body | None) -> p.Body | None:
    """The handler's reply as `user` may see it."""
    if not isinstance(reply, p.Rows):
        return reply
    if type_name == "list_projects":
        restricted = cx.read(members)
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
    return p.Row({"user": req.user, "role": pol.role(req.user), "open": pol.open})


@request("set_project_members", role=WRANGLER, what="Restricting a project to members")
def _set_project_members(cx: Context, req: Request) -> p.Body:
    body: p.SetProjectMembers = req.body
    try:
        with cx.begin() as (conn, _):
            who = set_members(conn, body.name, body.members)
    except ControlError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    log.info("%s: project %s members %s", req.user, body.name, who or "(everyone)")
    return p.Done(len(who))
