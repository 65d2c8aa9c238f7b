"""The scheduling commands of `cuefarm` (job set, layer set, why, hosts next, projects, limits,
deps) against `FakeSupervisor`: the exact requests they send and how they print the answers."""

from __future__ import annotations

import json
from functools import partial

import pytest

from cuefarm import protocol as p
from cuefarm.cli import cli
from tests.farm import run_cli


# Against a simulated supervisor, a reply comes at once or not at all.
run = partial(run_cli, timeout="5")


@pytest.fixture
def done(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Done(count=1)
    return fake_supervisor


def test_help_lists_the_scheduling_commands(runner):
    result = runner.invoke(cli, ["--help"])
    for name in ["why", "projects", "limits", "deps", "job", "layer", "hosts", "priority"]:
        assert f"\n  {name} " in result.output, name


@pytest.mark.parametrize("args", [
    ["job"], ["job", "set"], ["job", "set", "x", "--priority", "1"], ["job", "set", "1"],
    ["job", "set", "1", "--max-slots", "lots"], ["job", "set", "1", "--priority", "high"],
    ["layer"], ["layer", "set", "1"], ["layer", "set", "1", "render"],
    ["layer", "set", "1", "render", "--os", "beos"], ["layer", "set", "1", "r", "--memory", "x"],
    ["why"], ["why", "0"], ["why", "1", "--frame", "x"],
    ["hosts", "next"], ["hosts", "next", "n1", "--limit", "0"], ["hosts", "bogus"],
    ["projects", "set"], ["projects", "set", "demo"],
    ["projects", "set", "demo", "--max", "4", "--unlimited"],
    ["limits", "set", "arnold"], ["limits", "set", "arnold", "many"], ["limits", "delete"],
    ["deps"], ["deps", "x"], ["deps", "satisfy", "1"], ["deps", "drop", "1", "0"],
    ["deps", "satisfy", "1", "x"],
])
def test_bad_arguments_are_usage_errors_and_send_nothing(done, args):
    result = run(done.address, *args)
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr or "Try " in result.stderr
    assert done.requests == []


# --- job set / layer set ------------------------------------------------------------------------

def test_job_set_sends_only_the_options_given(done):
    result = run(done.address, "job", "set", "12", "--priority", "-5",
                 "--max-slots", "none")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "job 12: priority -5, max_slots none"
    assert done.requests == [("set_job", p.SetJob(12, {"priority": -5, "max_slots": None}))]


def test_job_set_every_option(done):
    result = run(done.address, "job", "set", "12", "--min-slots", "2", "--max-slots",
                 "8", "--project", "fx", "--priority", "90")
    assert result.exit_code == 0, result.output
    [(name, body)] = done.requests
    assert name == "set_job"
    assert body == p.SetJob(12, {"priority": 90, "min_slots": 2, "max_slots": 8,
                                 "project": "fx"})


def test_job_still_shows_a_job(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Row(row={"id": 12, "name": "a"})
    for args in (["job", "12", "--json"], ["job", "--json", "12"], ["job", "show", "12", "--json"]):
        result = run(fake_supervisor.address, *args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == {"id": 12, "name": "a"}
    assert fake_supervisor.types() == ["get_job"] * 3


def test_layer_set_sends_only_the_options_given(done):
    result = run(done.address, "layer", "set", "12", "render", "--tags", "gpu, fast",
                 "--slots", "4+", "--memory", "8000")
    assert result.exit_code == 0, result.output
    assert done.requests == [("set_layer", p.SetLayer(
        12, "render", {"tags": ["gpu", "fast"], "slots": "4+", "memory": 8000}))]
    assert result.stdout.strip() == "job 12 layer render: tags gpu,fast, slots 4+, memory 8000"


def test_layer_set_every_option(done):
    result = run(done.address, "layer", "set", "3", "comp",
                 "--tags", "a,b", "--os", "linux", "--hosts", "render-*,sim-?",
                 "--omit-hosts", "render-013", "--requirements", "host.memory >= 32000",
                 "--limits", "nuke", "--slots", "4", "--memory", "1000", "--gpus", "1",
                 "--timeout", "3600", "--timeout-no-output", "600", "--max-retries", "0")
    assert result.exit_code == 0, result.output
    [(name, body)] = done.requests
    assert (name, body.job_id, body.layer) == ("set_layer", 3, "comp")
    assert body.values == {
        "tags": ["a", "b"], "os": "linux", "hosts": ["render-*", "sim-?"],
        "omit_hosts": ["render-013"], "requirements": "host.memory >= 32000",
        "limits": ["nuke"], "slots": 4, "memory": 1000, "gpus": 1, "timeout": 3600,
        "timeout_no_output": 600, "max_retries": 0}


def test_layer_set_clears_with_empty_values(done):
    result = run(done.address, "layer", "set", "3", "comp", "--tags", "",
                 "--requirements", "", "--os", "any", "--limits", "", "--slots", "all")
    assert result.exit_code == 0, result.output
    assert done.requests[0][1].values == {"tags": [], "limits": [], "os": None,
                                          "requirements": None, "slots": "all"}


def test_supervisor_refusal_names_the_field(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Error(
        "invalid", "unknown word 'mem' (attributes are written host.NAME)",
        field="values.requirements")
    result = run(fake_supervisor.address, "layer", "set", "3", "comp",
                 "--requirements", "mem > 4")
    assert result.exit_code == 1
    assert result.stderr.strip() == ("error: --requirements: unknown word 'mem' "
                                     "(attributes are written host.NAME)")


# --- why / hosts next ---------------------------------------------------------------------------

WHY = {"job_id": 12, "job": "shot", "status": "waiting",
       "reasons": ["layer a: no worker is UP", "layer b: waiting for layer 'a' (0/5 frames done)"]}


def test_why_prints_one_reason_per_line(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Row(row=WHY)
    result = run(fake_supervisor.address, "why", "12")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == WHY["reasons"]
    result = run(fake_supervisor.address, "why", "12", "--layer", "b", "--frame", "3",
                 "--json")
    assert json.loads(result.stdout) == WHY
    assert fake_supervisor.requests == [("why", p.Why(12)), ("why", p.Why(12, "b", 3))]


NEXT = [{"job_id": 12, "job": "shot", "layer": "render", "frame": "1-4", "number": 1,
         "priority": 80, "project": "demo", "host_locked": False},
        {"job_id": 9, "job": "other", "layer": "sim", "frame": "7", "number": 7,
         "priority": 50, "project": "fx", "host_locked": False}]


def test_hosts_next(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=NEXT)
    result = run(fake_supervisor.address, "hosts", "next", "node1", "--limit", "5")
    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["JOB", "NAME", "LAYER", "FRAME", "PRI", "PROJECT"]
    assert first.split() == ["12", "shot", "render", "1-4", "80", "demo"]
    assert second.split() == ["9", "other", "sim", "7", "50", "fx"]
    assert result.stderr == ""
    result = run(fake_supervisor.address, "hosts", "next", "node1", "--json")
    assert json.loads(result.stdout) == NEXT
    assert fake_supervisor.requests == [("next_for_host", p.NextForHost("node1", 5)),
                                        ("next_for_host", p.NextForHost("node1", 10))]


def test_hosts_next_says_when_the_host_is_locked(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[dict(NEXT[0], host_locked=True)])
    result = run(fake_supervisor.address, "hosts", "next", "node1")
    assert result.exit_code == 0 and "node1 is locked" in result.stderr


def test_hosts_without_subcommand_still_lists(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[])
    assert run(fake_supervisor.address, "hosts", "--json").stdout.strip() == "[]"
    assert run(fake_supervisor.address, "hosts").stdout.split()[0] == "NAME"
    assert fake_supervisor.types() == ["list_hosts", "list_hosts"]


# --- projects / limits / deps -------------------------------------------------------------------

PROJECTS = [{"id": 1, "name": "default", "guaranteed": 0, "max_slots": None, "slots_used": 0,
             "waiting": 0},
            {"id": 2, "name": "demo", "guaranteed": 2, "max_slots": 4, "slots_used": 3,
             "waiting": 120}]


def test_projects_table_and_json(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=PROJECTS)
    result = run(fake_supervisor.address, "projects")
    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["NAME", "GUARANTEED", "MAX", "SLOTS", "USED", "WAITING"]
    assert first.split() == ["default", "0", "-", "0", "0"]
    assert second.split() == ["demo", "2", "4", "3", "120"]
    assert json.loads(run(fake_supervisor.address, "projects", "--json").stdout) \
        == PROJECTS
    assert fake_supervisor.types() == ["list_projects", "list_projects"]


@pytest.mark.parametrize("args,body,says", [
    (["--guaranteed", "2", "--max", "4"], p.SetProject("demo", 2, 4, False),
     "project demo: guaranteed 2, max 4"),
    (["--guaranteed", "1"], p.SetProject("demo", 1, None, False), "project demo: guaranteed 1"),
    (["--unlimited"], p.SetProject("demo", None, None, True), "project demo: max none"),
])
def test_projects_set(done, args, body, says):
    result = run(done.address, "projects", "set", "demo", *args)
    assert result.exit_code == 0, result.output
    assert done.requests == [("set_project", body)]
    assert result.stdout.strip() == says


LIMITS = [{"name": "arnold", "max": 2, "per_host": False, "in_use": 1},
          {"name": "houdini", "max": 10, "per_host": True, "in_use": 0}]


def test_limits_table_and_json(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=LIMITS)
    result = run(fake_supervisor.address, "limits")
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["NAME", "IN", "USE", "PER", "HOST"], ["arnold", "1/2", "no"], ["houdini", "0/10", "yes"]]
    assert json.loads(run(fake_supervisor.address, "limits", "--json").stdout) == LIMITS


@pytest.mark.parametrize("args,body", [
    (["set", "arnold", "2"], p.SetLimit("arnold", 2, None)),
    (["set", "arnold", "2", "--per-host"], p.SetLimit("arnold", 2, True)),
    (["set", "arnold", "0", "--per-frame"], p.SetLimit("arnold", 0, False)),
    (["delete", "arnold"], p.DeleteLimit("arnold")),
])
def test_limits_set_and_delete(done, args, body):
    result = run(done.address, "limits", *args)
    assert result.exit_code == 0, result.output
    assert done.requests == [(p.TYPE_NAMES[type(body)], body)]


DEPS = [{"id": 3, "kind": "layer", "layer": "comp", "target_job_id": 12,
         "target_layer": "render", "satisfied": False, "target_dead": 2},
        {"id": 4, "kind": "job", "layer": "comp", "target_job_id": 9, "target_layer": None,
         "satisfied": True, "target_dead": 0}]


def test_deps_table_and_json(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=DEPS)
    result = run(fake_supervisor.address, "deps", "12")
    assert result.exit_code == 0, result.output
    header, first, second = result.stdout.splitlines()
    assert header.split() == ["ID", "KIND", "LAYER", "TARGET", "JOB", "TARGET", "LAYER",
                              "SATISFIED", "TARGET", "DEAD"]
    assert first.split() == ["3", "layer", "comp", "12", "render", "no", "2"]
    assert second.split() == ["4", "job", "comp", "9", "-", "yes", "0"]
    result = run(fake_supervisor.address, "deps", "list", "12", "--json")
    assert json.loads(result.stdout) == DEPS
    assert fake_supervisor.requests == [("list_dependencies", p.JobRef(12))] * 2


@pytest.mark.parametrize("action,says", [("satisfy", "satisfied"), ("drop", "dropped")])
def test_deps_satisfy_and_drop(done, action, says):
    result = run(done.address, "deps", action, "12", "3")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{says} dependency 3 of job 12"
    assert done.requests == [("dependency_control", p.DependencyControl(action, 12, 3))]


def test_deps_error_names_what_was_typed(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Error(
        "invalid", "job 12 has no dependency 99 (see cuefarm deps 12)", field="dependency_id")
    result = run(fake_supervisor.address, "deps", "drop", "12", "99")
    assert result.exit_code == 1
    # An argument, not a flag: the message names its value; the request's field is not shown.
    assert result.stderr.startswith("error: job 12 has no dependency 99")


# --- hosts tags ---------------------------------------------------------------------------------

def test_hosts_tags_takes_minus_tags_as_tags_not_options(done):
    result = run(done.address, "hosts", "tags", "ws01", "+gpu", "-desktop", "-old")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ws01: tags updated"
    assert done.requests == [("host_tags", p.HostTags("ws01", ["gpu"], ["desktop", "old"]))]


@pytest.mark.parametrize("args", [["--json"], ["+gpu", "--json"], ["gpu"], ["-"], ["+"]])
def test_hosts_tags_refuses_options_it_lacks_and_bare_words(done, args):
    result = run(done.address, "hosts", "tags", "ws01", *args)
    assert result.exit_code == 2, result.output
    assert "+TAG|-TAG" in result.stderr
    assert done.requests == []


def test_hosts_tags_help_still_works(done):
    result = run(done.address, "hosts", "tags", "--help")
    assert result.exit_code == 0
    assert "+gpu -desktop" in result.stdout
    assert done.requests == []
