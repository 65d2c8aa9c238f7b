"""Who may do what: each rule as a table of (situation, expected reason or None)."""

from __future__ import annotations

import pytest

from cuegui import permissions as perm
from cuegui.hostactions import HOST_ACTIONS, HostCtx
from cuegui.jobactions import DEPENDENCY_ACTIONS, FRAME_ACTIONS, JOB_ACTIONS, Ctx
from tests import rows

JOBS = {s.key: s.rule for s in JOB_ACTIONS}
FRAMES = {s.key: s.rule for s in FRAME_ACTIONS}
DEPS = {s.key: s.rule for s in DEPENDENCY_ACTIONS}
HOSTS = {s.key: s.rule for s in HOST_ACTIONS}

mine = rows.job(1, user="ann", state="ACTIVE", dead=2)
theirs = rows.job(2, user="bob", state="PAUSED")
done = rows.job(3, user="ann", state="FINISHED", status="finished")


def job_ctx(mode, *jobs):
    return Ctx(list(jobs), mode, "ann", list(jobs))


@pytest.mark.parametrize("key, mode, jobs, reason", [
    ("pause", "artist", [], "select one or more jobs"),
    ("pause", "artist", [mine], None),
    ("pause", "artist", [mine, theirs], "artists act on their own jobs; bob own"),
    ("pause", "wrangler", [mine, theirs], None),
    ("pause", "wrangler", [theirs], "none of the selected jobs is active"),
    ("resume", "wrangler", [theirs], None),
    ("resume", "artist", [mine], "none of the selected jobs is paused"),
    ("kill", "artist", [done], "the selected jobs have finished"),
    ("retry", "artist", [mine], None),
    ("eat", "wrangler", [theirs], "the selected jobs have no dead frames"),
    ("why", "artist", [mine, done], "select a single job"),
    ("why", "artist", [theirs], None),                  # looking is for everyone
    ("priority", "artist", [mine], "Changing priority is for wranglers"),
    ("priority", "wrangler", [theirs], None),
    ("slots", "admin", [mine], None),
    ("project", "artist", [mine], "Moving jobs between projects is for wranglers"),
    ("submit", "artist", [], None),
])
def test_job_rules(key, mode, jobs, reason):
    rule = JOBS[key]
    got = rule(job_ctx(mode, *jobs)) if rule else None
    assert (got is None) if reason is None else (got is not None and reason in got), got


running = rows.frame(1, state="RUNNING", attempt=1)
dead = rows.frame(2, state="DEAD", attempt=2)
waiting = rows.frame(3, state="WAITING")


@pytest.mark.parametrize("key, mode, frames, job, reason", [
    ("log", "artist", [running], theirs, None),
    ("log", "artist", [waiting], mine, "this frame has not run yet"),
    ("retry", "artist", [dead], mine, None),
    ("retry", "artist", [dead], theirs, "artists act on their own jobs"),
    ("retry", "wrangler", [waiting], theirs, "only dead, eaten, succeeded or running"),
    ("kill", "artist", [dead, waiting], mine, "none of the selected frames is running"),
    ("kill", "artist", [running], mine, None),
    ("eat", "artist", [waiting], mine, None),
    ("eat", "artist", [rows.frame(4, state="SUCCEEDED")], mine, "already finished"),
    ("why", "artist", [waiting, dead], mine, "select a single frame"),
])
def test_frame_rules(key, mode, frames, job, reason):
    got = FRAMES[key](Ctx(frames, mode, "ann", [job]))
    assert (got is None) if reason is None else (got is not None and reason in got), got


@pytest.mark.parametrize("key, mode, dep, reason", [
    ("satisfy", "artist", {"id": 1, "satisfied": False}, "is for wranglers"),
    ("satisfy", "wrangler", {"id": 1, "satisfied": False}, None),
    ("drop", "wrangler", {"id": 1, "satisfied": True}, "already satisfied"),
    ("drop", "wrangler", None, "select a dependency"),
])
def test_dependency_rules(key, mode, dep, reason):
    got = DEPS[key](Ctx([dep] if dep else [], mode, "ann", []))
    assert (got is None) if reason is None else (got is not None and reason in got), got


up = rows.host(1)
locked = rows.host(2, lock="LOCKED")


@pytest.mark.parametrize("key, mode, hosts, reason", [
    ("lock", "wrangler", [up], "Locking hosts is for admins"),
    ("lock", "admin", [up], None),
    ("lock", "admin", [locked], "locked already"),
    ("unlock", "admin", [up], "none of the selected hosts is locked"),
    ("unlock", "admin", [up, locked], None),
    ("purge", "admin", [], "select one or more hosts"),
    ("slots", "admin", [up, locked], "select a single host"),
    ("slots", "admin", [up], None),
    ("tags", "admin", [up], None),
    ("drain", "admin", [rows.host(3, draining=True)], "draining already"),
])
def test_host_rules(key, mode, hosts, reason):
    got = HOSTS[key](HostCtx(hosts, mode))
    assert (got is None) if reason is None else (got is not None and reason in got), got


def test_a_missing_client_method_disables_with_the_reason():
    assert perm.supported("lock", "Locking") is None
    reason = perm.supported("teleport_host", "Teleporting")
    assert "Client.teleport_host is missing" in reason


@pytest.mark.parametrize("mode, role, expected", [
    ("admin", "admin", "admin"), ("wrangler", "admin", "wrangler"),
    ("artist", "admin", "artist"),
    ("admin", "wrangler", "wrangler"), ("wrangler", "wrangler", "wrangler"),
    ("artist", "wrangler", "artist"),
    ("admin", "artist", "artist"), ("wrangler", "artist", "artist"),
    ("admin", None, "admin"),                 # a supervisor without roles enforces nothing
    ("admin", "superuser", "artist"),         # a role this GUI does not know: the least
    ("nonsense", "admin", "artist"),
])
def test_mode_is_clamped_to_the_role(mode, role, expected):
    assert perm.clamp(mode, role) == expected
    assert (perm.mode_allowed(mode, role) is None) == (expected == mode)


def test_mode_ceiling_and_reason():
    assert [perm.mode_ceiling(r) for r in ("artist", "wrangler", "admin", None)] == [
        "artist", "wrangler", "admin", "admin"]
    assert perm.mode_allowed("admin", "wrangler") == (
        "Admin mode needs the admin role on the supervisor; it says you are a wrangler")


def test_supervisor_role_from_a_live_supervisor(sqlite_farm):
    from cuefarm import Client
    with Client(sqlite_farm.address, timeout=15, user="someone") as client:
        assert perm.supervisor_role(client) == "admin"    # an open farm: everyone is an admin
