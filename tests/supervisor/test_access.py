"""Who may do what, enforced by a real supervisor over real sockets, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import logging
from functools import partial

import pytest

from cuefarm import Client, CueFarmError
from cuefarm import protocol as p
from cuefarm.client import current_user
from cuefarm.config import SupervisorConfig, load
from cuegui import permissions as gui
from supervisor import clientapi, roles
from supervisor.requests import DECLARED
from tests.farm import wait_until
from tests.jobs import job, layer


# The layer these jobs have: `true` on frames 1-3, with the supervisor's default of one retry.
render = partial(layer, "render", 3, max_retries=1)


def _refused(call, code: str = "forbidden") -> CueFarmError:
    with pytest.raises(CueFarmError) as info:
        call()
    assert info.value.code == code, info.value
    return info.value


def test_roles_and_ownership(roles_farm):
    alice, bob = roles_farm.client(user="alice"), roles_farm.client(user="bob")
    wendy, boss = roles_farm.client(user="wendy"), roles_farm.client(user="boss")
    assert alice.whoami() == {"user": "alice", "role": "artist", "open": False,
                              "keys": False, "insecure": False}
    assert wendy.whoami()["role"] == "wrangler"
    assert boss.whoami()["role"] == "admin"
    assert roles_farm.client().whoami()["role"] == "admin"   # the supervisor's own OS user

    [mine] = alice.submit(job("a", [render()], "demo"))
    [theirs] = bob.submit(job("b", [render()], "demo"))
    before = bob.job(theirs)

    err = _refused(lambda: alice.kill(theirs))
    assert "job %d is bob's" % theirs in str(err) and "you are alice (artist)" in str(err)
    err = _refused(lambda: alice.kill([mine, theirs]))      # one not theirs: nothing changes
    assert "bob" in str(err)
    assert alice.job(mine)["killed"] is False
    _refused(lambda: alice.frame_control("eat", theirs, [f["id"] for f in bob.frames(theirs)]))
    after = bob.job(theirs)
    assert after["killed"] is False and after["waiting"] == before["waiting"] == 3

    err = _refused(lambda: alice.set_priority(mine, 90))    # priority: wranglers, even own
    assert str(err) == "Changing priority is for wranglers; you are alice (artist)"
    _refused(lambda: alice.set_project("demo", guaranteed=1))
    _refused(lambda: alice.set_job(mine, max_slots=2))
    _refused(lambda: alice.set_limit("arnold", 4))
    assert alice.job(mine)["priority"] == 50

    assert alice.why(theirs)["job_id"] == theirs            # reading is for everyone
    assert {j["id"] for j in alice.jobs()} == {mine, theirs}

    assert alice.pause(mine) == 1                           # own jobs: fine
    assert alice.kill(mine) >= 1
    assert alice.job(mine)["killed"] is True

    assert wendy.set_priority(theirs, 90) == 1              # wranglers: any job
    assert bob.job(theirs)["priority"] == 90
    assert wendy.pause(theirs) == 1
    _refused(lambda: wendy.set_admission(mode="any"))       # hosts: admins only
    assert boss.set_admission(mode="any")["mode"] == "any"


def test_hosts_are_for_admins(roles_farm):
    roles_farm.start_rqd("w1", 1)
    roles_farm.wait_hosts_up(["w1"])
    alice, wendy = roles_farm.client(user="alice"), roles_farm.client(user="wendy")
    boss = roles_farm.client(user="boss")
    err = _refused(lambda: alice.lock("w1"))
    assert str(err) == "Locking and unlocking hosts is for admins; you are alice (artist)"
    _refused(lambda: wendy.lock("w1"))
    _refused(lambda: alice.drain("w1"))
    _refused(lambda: alice.set_host_slots("w1", 4))
    [host] = alice.hosts()
    assert host["lock"] == "OPEN"
    assert boss.lock("w1") == 1
    assert alice.hosts()[0]["lock"] == "LOCKED"
    assert boss.unlock("w1") == 1


def test_open_farm_lets_everyone_do_everything(farm):
    zed, yan = Client(farm.address, timeout=15, user="zed"), Client(farm.address, user="yan")
    try:
        assert zed.whoami() == {"user": "zed", "role": "admin", "open": True, "keys": False,
                                "insecure": False}
        [theirs] = yan.submit(job("y", [render()], "demo"))
        assert zed.set_priority(theirs, 70) == 1
        assert zed.kill(theirs) >= 1
        assert yan.job(theirs)["killed"] is True
        assert zed.set_admission(mode="any")["mode"] == "any"
    finally:
        zed.close()
        yan.close()


def test_restricted_project(roles_farm):
    alice, carol = roles_farm.client(user="alice"), roles_farm.client(user="carol")
    wendy, boss = roles_farm.client(user="wendy"), roles_farm.client(user="boss")
    [secret] = boss.submit(job("s", [render()], "secret"))
    [public] = alice.submit(job("p", [render()], "demo"))
    _refused(lambda: alice.set_project_members("secret", ["alice"]))
    assert wendy.set_project_members("secret", ["carol", "boss"]) == 2
    assert {r["name"]: r["members"] for r in alice.projects()}["secret"] == ["boss", "carol"]

    # Not a member: the project's jobs do not exist as far as alice can tell.
    assert [j["id"] for j in alice.jobs()] == [public]
    assert alice.jobs(project="secret") == []
    for call in (lambda: alice.job(secret), lambda: alice.frames(secret),
                 lambda: alice.layers(secret), lambda: alice.why(secret),
                 lambda: alice.dependencies(secret)):
        assert str(_refused(call, "not_found")) == f"no job with id {secret}"
    _refused(lambda: alice.kill(secret), "not_found")
    assert boss.job(secret)["killed"] is False

    # Submitting to it, or depending on its jobs, is refused and stores nothing.
    count = len(boss.jobs())
    err = _refused(lambda: alice.submit(job("x", [render()], "secret")), "invalid")
    assert err.field == "jobs[0].project" and "restricted to its members" in str(err)
    depends = [render(depends_on=[{"job": secret}])]
    err = _refused(lambda: alice.submit([job("ok", [render()], "demo"),
                                          job("y", depends, "demo")]), "invalid")
    assert err.field == "jobs[1].layers[0].depends_on[0]"
    assert f"no job with id {secret}" in str(err) and "not visible" in str(err)
    depends = [render(depends_on=[{"job": secret, "layer": "render"}])]
    _refused(lambda: alice.submit(job("z", depends, "demo")), "invalid")
    assert len(boss.jobs()) == count

    # Members, wranglers and admins see it and may depend on it.
    assert secret in {j["id"] for j in carol.jobs()}
    assert secret in {j["id"] for j in wendy.jobs()}
    [dependent] = carol.submit(job("c", [render(depends_on=[{"job": secret}])], "demo"))
    assert carol.job(dependent)["id"] == dependent

    # Opened again: visible to everyone.
    assert wendy.set_project_members("secret", []) == 0
    assert alice.job(secret)["id"] == secret


def test_every_request_type_is_declared():
    assert clientapi.DECLARING      # loading the client API declares every request type
    requests = set(p.CLIENT_REQUESTS)
    missing = requests - set(DECLARED)
    assert not missing, f"declare {sorted(missing)} with @supervisor.requests.request"
    assert set(DECLARED) == requests, "declared, but the protocol does not decode them"
    assert DECLARED["whoami"].rule.least == roles.ARTIST
    for name, declared in DECLARED.items():
        assert declared.name == name
        assert declared.rule.least in roles.RANK, name
        for least, _ in declared.rule.actions.values():
            assert least in roles.RANK, name


@pytest.mark.parametrize("request_type, action, least", [
    ("job_control", "kill", gui.ARTIST), ("job_control", "priority", gui.WRANGLER),
    ("frame_control", "retry", gui.ARTIST), ("set_job", None, gui.WRANGLER),
    ("dependency_control", "satisfy", gui.WRANGLER), ("set_project", None, gui.WRANGLER),
    ("host_control", "lock", gui.ADMIN), ("host_drain", None, gui.ADMIN),
    ("set_schedule", None, gui.ADMIN), ("set_licences", None, gui.ADMIN),
    ("get_log", None, gui.ARTIST), ("list_hosts", None, gui.ARTIST),
    ("frame_order", "front", gui.ARTIST), ("retry_more_memory", None, gui.ARTIST),
    ("add_dependency", None, gui.ARTIST), ("set_layer", None, gui.WRANGLER),
])
def test_rules_mirror_the_gui(request_type, action, least):
    rule = DECLARED[request_type].rule
    assert rule.actions.get(action, (rule.least, ""))[0] == least


def test_roles_from_config(caplog):
    env = {"CUEFARM_SUPERVISOR_ADMINS": "ann, ben", "CUEFARM_SUPERVISOR_WRANGLERS": "wu"}
    cfg = load(SupervisorConfig, "supervisor", files=[], environ=env)
    assert cfg.admins == ["ann", "ben"] and cfg.wranglers == ["wu"]
    pol = roles.policy_from_config(cfg, owner="svc")
    assert not pol.open
    assert [pol.role(u) for u in ("ann", "wu", "svc", "zed")] == ["admin", "wrangler", "admin",
                                                                  "artist"]
    with caplog.at_level(logging.WARNING, logger="supervisor.roles"):
        quiet = roles.policy_from_config(SupervisorConfig(bind="127.0.0.1"))
        assert quiet.open and quiet.role("anyone") == "admin" and not caplog.records
        roles.policy_from_config(SupervisorConfig(bind="*"))
    assert "everyone who can reach this supervisor is an admin" in caplog.text
    assert roles.policy_from_config(SupervisorConfig()).owner == current_user()


def _cli(farm, user: str, *args: str):
    # The client claims the user getpass finds: LOGNAME comes first.
    return farm.cli(*args, env={"LOGNAME": user, "USER": user})


def test_cli_whoami_and_members(roles_farm):
    out = _cli(roles_farm, "alice", "whoami")
    assert out.exit_code == 0 and out.output.strip() == "alice: artist"
    out = _cli(roles_farm, "alice", "projects", "members", "secret", "carol")
    assert out.exit_code == 1
    assert "Restricting a project to members is for wranglers; you are alice" in out.output
    out = _cli(roles_farm, "alice", "lock", "w1")
    assert out.exit_code == 1 and "is for admins; you are alice (artist)" in out.output
    out = _cli(roles_farm, "wendy", "projects", "members", "secret", "carol", "dan")
    assert out.exit_code == 0 and "members carol, dan" in out.output
    out = _cli(roles_farm, "wendy", "projects", "--json")
    assert {r["name"]: r["members"] for r in json.loads(out.output)}["secret"] == ["carol", "dan"]
    assert _cli(roles_farm, "wendy", "projects", "members", "secret").exit_code == 2
    out = _cli(roles_farm, "wendy", "projects", "members", "secret", "--open")
    assert out.exit_code == 0 and "open to everyone" in out.output
    assert json.loads(_cli(roles_farm, "bob", "whoami", "--json").output) == {
        "user": "bob", "role": "artist", "open": False, "keys": False, "insecure": False}


def test_hidden_running_frames_are_left_out(roles_farm):
    roles_farm.start_rqd("w1", 2)
    roles_farm.wait_hosts_up(["w1"])
    alice = roles_farm.client(user="alice")
    boss = roles_farm.client()     # the OS user: rqd runs frames as a job's user, a real one
    boss.set_project_members("secret", ["boss"])
    [secret] = boss.submit(job("s", [render(command=["sleep", "60"], range="1")], "secret"))
    [public] = boss.submit(job("p", [render(command=["sleep", "60"], range="1")], "demo"))
    wait_until(lambda: len(boss.frames(host="w1")) == 2, message="both frames running on w1")
    assert [f["job_id"] for f in alice.frames(host="w1")] == [public]
    assert {f["job_id"] for f in boss.frames(host="w1")} == {secret, public}
    assert str(_refused(lambda: alice.log(secret, "render", 1), "not_found")) == (
        f"no job with id {secret}")
    boss.kill([secret, public])
