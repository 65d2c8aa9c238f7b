"""Who may do what on this supervisor: roles, one rule per request type, project visibility.

Roles come from the supervisor's configuration (`[supervisor] admins`, `wranglers`); the OS user
running the supervisor is always an admin, everyone else is an artist.  With neither list set
the farm is *open*: everyone is an admin (the one-laptop `cuefarm up` case).

`check` runs before every client request's handler (supervisor.clientapi.handle) and answers
with an error to refuse it; `filter_reply` takes the rows of restricted projects out of what an
artist who is not a member may see.  The identity is the user the client claims in the envelope
until CURVE authentication ties it to a key: these rules keep honest people from mistakes.

The rules mirror what the GUI shows (cuegui.permissions):
- artists read everything, submit, and act on their own jobs and frames;
- wranglers act on any job, and change priorities, jobs and layers, projects, dependencies
  and limits;
- admins also manage hosts: locks, slots, tags, drains, admission, schedules, path maps and
  worker licences.
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from cuefarm import protocol as p
from supervisor.store.errors import ControlError
from supervisor.store.models import Job, Project, Setting
from supervisor.store.submit import ensure_project

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger(__name__)

ARTIST, WRANGLER, ADMIN = "artist", "wrangler", "admin"
RANK = {ARTIST: 0, WRANGLER: 1, ADMIN: 2}
MEMBERS_KEY = "project_members"     # Setting row: {project name: [user, ...]}
MAX_NAME = 128


@dataclass(frozen=True)
class Rule:
    """The least role a request type needs.  `jobs` names the body field holding the job (an
    int) or jobs (a list) the request reads or acts on: hidden from non-members of a restricted
    project.  With `own`, an artist must own those jobs.  `actions` overrides `least`/`what`
    for some values of the body's `action`."""

    least: str
    what: str
    jobs: str | None = None
    own: bool = False
    actions: dict[str, tuple[str, str]] = field(default_factory=dict)


def _read(what: str, jobs: str | None = None) -> Rule:
    return Rule(ARTIST, what, jobs)


def _wrangle(what: str, jobs: str | None = None) -> Rule:
    return Rule(WRANGLER, what, jobs)


def _admin(what: str) -> Rule:
    return Rule(ADMIN, what)


# Every client request type, explicitly: tests fail when a type is added without a rule here.
RULES: dict[str, Rule] = {
    "ping": _read("asking the supervisor's version"),
    "whoami": _read("asking who you are"),
    "submit": _read("submitting jobs"),
    "list_jobs": _read("listing jobs"),
    "get_job": _read("reading a job", "job_id"),
    "list_layers": _read("listing layers", "job_id"),
    "list_frames": _read("listing frames", "job_id"),
    "list_hosts": _read("listing hosts"),
    "job_control": Rule(ARTIST, "controlling jobs", "job_ids", own=True,
                        actions={"priority": (WRANGLER, "Changing priority")}),
    "frame_control": Rule(ARTIST, "controlling frames", "job_id", own=True),
    "get_log": _read("reading logs", "job_id"),
    "set_job": _wrangle("Changing a job (job set)", "job_id"),
    "set_layer": _wrangle("Changing a layer (layer set)", "job_id"),
    "set_project": _wrangle("Changing a project (projects set)"),
    "set_project_members": _wrangle("Restricting a project to members"),
    "list_projects": _read("listing projects"),
    "set_limit": _wrangle("Setting a limit"),
    "delete_limit": _wrangle("Deleting a limit"),
    "list_limits": _read("listing limits"),
    "list_dependencies": _read("listing dependencies", "job_id"),
    "dependency_control": _wrangle("Satisfying or dropping a dependency", "job_id"),
    "why": _read("asking why", "job_id"),
    "next_for_host": _read("asking what a host runs next"),
    "bad_hosts": _read("listing a job's bad hosts", "job_id"),
    "clear_bad_hosts": _wrangle("Clearing a job's bad-host list", "job_id"),
    "host_control": _admin("Locking and unlocking hosts"),
    "host_slots": _admin("Setting a host's slots"),
    "host_tags": _admin("Changing a host's tags"),
    "host_drain": _admin("Draining hosts"),
    "admission_control": _admin("Admitting or banning hosts"),
    "list_admission": _read("listing admission"),
    "set_admission": _admin("Changing the admission policy"),
    "set_schedule": _admin("Adding a lock schedule"),
    "list_schedules": _read("listing lock schedules"),
    "delete_schedule": _admin("Deleting a lock schedule"),
    "add_path_map": _admin("Adding a path map"),
    "list_path_maps": _read("listing path maps"),
    "delete_path_map": _admin("Deleting a path map"),
    "check_path": _read("checking a path"),
    "licences": _read("reading the licence terms"),
    "set_licences": _admin("Changing worker licences"),
    "licence_reports": _read("listing licence reports"),
    "usage": _read("reading usage"),
    "metrics": _read("reading metrics"),
    "metric_history": _read("reading metric history"),
}
# A request type nobody gave a rule is for admins (still everyone on an open farm).
UNLISTED = Rule(ADMIN, "This request")


# --- roles ---------------------------------------------------------------------------------------

def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class Policy:
    """Who is what on this supervisor, from its configuration."""

    admins: frozenset[str]
    wranglers: frozenset[str]
    owner: str                      # the OS user running the supervisor: always admin

    @property
    def open(self) -> bool:
        """No roles configured: everyone is an admin."""
        return not self.admins and not self.wranglers

    def role(self, user: str) -> str:
        if self.open or user == self.owner or user in self.admins:
            return ADMIN
        return WRANGLER if user in self.wranglers else ARTIST


def policy_from_config(cfg: Any, owner: str | None = None) -> Policy:
    """The policy of a SupervisorConfig; warns when an open farm listens beyond this machine."""
    pol = Policy(frozenset(cfg.admins), frozenset(cfg.wranglers), owner or _os_user())
    if pol.open and not _loopback(cfg.bind):
        log.warning("no admins or wranglers configured and listening on %s: everyone who can "
                    "reach this supervisor is an admin (set [supervisor] admins = [...])",
                    cfg.bind)
    return pol


def _loopback(bind: str) -> bool:
    if bind in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False   # "*", an interface or host name: reachable from elsewhere


def policy(sv: "Supervisor") -> Policy:
    """The supervisor's policy, built from its configuration on first use."""
    pol = getattr(sv, "access_policy", None)
    if pol is None:
        pol = sv.access_policy = policy_from_config(sv.cfg)
    return pol


# --- project members ------------------------------------------------------------------------------

def members(conn: Connection) -> dict[str, list[str]]:
    """Restricted projects and their members (projects not listed are open to everyone)."""
    value = conn.execute(select(Setting.value).where(Setting.key == MEMBERS_KEY)).scalar()
    return {k: list(v) for k, v in (value or {}).items() if v}


def hidden_projects(sv: "Supervisor", conn: Connection, user: str) -> frozenset[str]:
    """The projects whose jobs `user` may not see: restricted ones they are not a member of.
    Wranglers and admins see everything."""
    if RANK[policy(sv).role(user)] >= RANK[WRANGLER]:
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


def _forbidden(sv: "Supervisor", what: str, least: str, user: str, role: str) -> p.Error:
    sv.errors["forbidden"] += 1
    return p.Error("forbidden", f"{what} is for {least}s; you are {user} ({role})")


def check(sv: "Supervisor", type_name: str, body: Any, user: str) -> p.Error | None:
    """None when `user` may make this request; else the error to answer with (counted)."""
    rule = RULES.get(type_name, UNLISTED)
    role = policy(sv).role(user)
    least, what = rule.least, rule.what
    action = getattr(body, "action", None)
    if isinstance(action, str) and action in rule.actions:
        least, what = rule.actions[action]
    if RANK[role] < RANK[least]:
        return _forbidden(sv, what[0].upper() + what[1:], least, user, role)
    if role != ARTIST:
        return None
    ids = _job_ids(body, rule.jobs)
    if not ids:
        return None
    with sv.engine.connect() as conn:
        try:
            hidden = hidden_projects(sv, conn, user)
            found = conn.execute(select(Job.id, Job.user, Project.name)
                                 .join(Project, Project.id == Job.project_id)
                                 .where(Job.id.in_(ids))).all()
        finally:
            conn.rollback()
    by_id = {r.id: r for r in found}
    for job_id in ids:
        r = by_id.get(job_id)
        if r is None:
            continue    # the handler says the job does not exist, in its own words
        if r.name in hidden:
            sv.errors["not_found"] += 1
            return p.Error("not_found", f"no job with id {job_id}", rule.jobs)
    if rule.own:
        for job_id in ids:
            r = by_id.get(job_id)
            if r is not None and r.user != user:
                sv.errors["forbidden"] += 1
                return p.Error("forbidden", f"{what[0].upper() + what[1:]} of another user's "
                                            f"job is for wranglers: job {job_id} is {r.user}'s; "
                                            f"you are {user} ({role})", rule.jobs)
    return None


# --- after the handler: what a non-member may not see --------------------------------------------

def _drop_hidden(sv: "Supervisor", user: str, rows: list[dict]) -> list[dict]:
    with sv.engine.connect() as conn:
        try:
            hidden = hidden_projects(sv, conn, user)
            if not hidden or not rows:
                return rows
            if all("project" in r for r in rows):
                return [r for r in rows if r["project"] not in hidden]
            ids = {r["job_id"] for r in rows if "job_id" in r}
            gone = set(conn.execute(select(Job.id).join(Project, Project.id == Job.project_id)
                                    .where(Job.id.in_(ids), Project.name.in_(hidden)))
                       .scalars()) if ids else set()
            return [r for r in rows if r.get("job_id") not in gone]
        finally:
            conn.rollback()


def filter_reply(sv: "Supervisor", type_name: str, body: Any, user: str,
                 reply: p.Body | None) -> p.Body | None:
    """The handler's reply as `user` may see it."""
    if not isinstance(reply, p.Rows):
        return reply
    if type_name == "list_projects":
        with sv.engine.connect() as conn:
            try:
                restricted = members(conn)
            finally:
                conn.rollback()
        for r in reply.rows:
            r["members"] = restricted.get(r.get("name"), [])
        return reply
    if type_name in ("list_jobs", "list_frames", "next_for_host"):
        if policy(sv).role(user) == ARTIST:
            reply.rows = _drop_hidden(sv, user, reply.rows)
    return reply


# --- handlers (merged into clientapi.HANDLERS) ----------------------------------------------------

def _whoami(sv, body, user, route, rid):
    pol = policy(sv)
    return p.Row({"user": user, "role": pol.role(user), "open": pol.open})


def _set_project_members(sv, body: p.SetProjectMembers, user, route, rid):
    from supervisor.clientapi import RequestError   # here: clientapi imports this module
    try:
        with sv.engine.begin() as conn:
            who = set_members(conn, body.name, body.members)
    except ControlError as exc:
        raise RequestError("invalid", str(exc), exc.field) from None
    log.info("%s: project %s members %s", user, body.name, who or "(everyone)")
    return p.Done(len(who))


HANDLERS = {"whoami": _whoami, "set_project_members": _set_project_members}

