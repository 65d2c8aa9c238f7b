"""The host management commands of `cuefarm` against a real supervisor (SQLite and PostgreSQL)
and real rqd processes: hosts pending/admit/ban/slots/tags/drain, admission, schedules and
pathmap; bad input gets a clear error, a non-zero exit code, and changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.farm import wait_until


def ok(farm, *args: str) -> str:
    result = farm.cli(*args)
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    return result.stdout


def as_json(farm, *args: str):
    return json.loads(ok(farm, *args, "--json"))


def hosts(farm) -> dict[str, dict]:
    return {h["name"]: h for h in as_json(farm, "hosts")}


def state(farm) -> dict:
    """Everything the bad commands below could change."""
    return {"hosts": {n: (h["slots_total"], h["tags"], h["drain"], h["lock"])
                      for n, h in hosts(farm).items()},
            "admission": as_json(farm, "admission"), "pending": as_json(farm, "hosts", "pending"),
            "schedules": as_json(farm, "schedules"), "pathmap": as_json(farm, "pathmap")}


@pytest.fixture
def cli_farm(farm):
    farm.kill_supervisor()
    farm.env["CUEFARM_SUPERVISOR_ADMISSION_RETRY"] = "1"    # refused workers ask again soon
    farm.start_supervisor()
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    return farm


def test_host_commands_live(cli_farm):
    farm = cli_farm
    # admission, pending, admit, ban
    assert ok(farm, "admission", "--mode", "named").startswith("mode named")
    farm.start_rqd("stranger", 1)
    wait_until(lambda: "stranger" in ok(farm, "hosts", "pending"), 30, message="pending")
    [row] = [r for r in as_json(farm, "hosts", "pending") if r["name"] == "stranger"]
    assert row["state"] == "pending" and "not on this farm's list" in row["reason"]
    assert "stranger" not in hosts(farm)
    assert "admitted stranger" in ok(farm, "hosts", "admit", "stranger")
    farm.wait_hosts_up(["stranger"])
    assert ok(farm, "hosts", "ban", "stranger", "--reason", "test").strip() == "banned stranger"
    h = hosts(farm)["stranger"]
    assert (h["lock_kind"], h["slots_total"]) == ("banned", 0)
    assert {r["name"]: r["state"] for r in as_json(farm, "hosts", "pending")}["stranger"] \
        == "banned"
    policy = as_json(farm, "admission", "--mode", "ranges", "--networks", "10.0.0.0/8",
                     "--patterns", "w*")
    assert policy == {"mode": "ranges", "networks": ["10.0.0.0/8"], "patterns": ["w*"]}

    # slots, tags, drain
    assert ok(farm, "hosts", "slots", "w1", "1").strip() == "w1: slots 1"
    assert hosts(farm)["w1"]["slots_total"] == 1
    ok(farm, "hosts", "slots", "w1", "default")
    assert hosts(farm)["w1"]["slots_total"] == 2
    ok(farm, "hosts", "tags", "w1", "+gpu", "-linux")
    tags = hosts(farm)["w1"]["tags"]
    assert "gpu" in tags and "linux" not in tags
    assert ok(farm, "hosts", "drain", "w1").strip() == "draining 1 host"
    assert (hosts(farm)["w1"]["drain"], hosts(farm)["w1"]["slots_total"]) == ("stay", 0)
    ok(farm, "hosts", "drain", "w1", "--cancel")
    assert (hosts(farm)["w1"]["drain"], hosts(farm)["w1"]["slots_total"]) == (None, 2)

    # schedules
    sid = int(ok(farm, "schedules", "add", "tag:desktop", "--days", "mon-fri", "--from", "09:00",
                 "--to", "19:00", "--purge").split()[1])
    [sched] = as_json(farm, "schedules")
    assert (sched["id"], sched["target"], sched["days"], sched["start"], sched["end"],
            sched["purge"]) == (sid, "tag:desktop", [0, 1, 2, 3, 4], "09:00", "19:00", True)
    assert "tag:desktop" in ok(farm, "schedules")
    ok(farm, "schedules", "delete", str(sid))
    assert as_json(farm, "schedules") == []

    # pathmap
    rid = int(ok(farm, "pathmap", "add", "--os", "linux", "/mnt/proj", "/srv/proj").split()[2])
    assert ok(farm, "pathmap", "check", "--host", "w1", "/mnt/proj/a.exr").splitlines()[0] \
        == "/srv/proj/a.exr"
    assert as_json(farm, "pathmap", "check", "--host", "w1", "/other/a")["result"] == "/other/a"
    ok(farm, "pathmap", "delete", str(rid))
    assert as_json(farm, "pathmap") == []
    assert ok(farm, "pathmap", "check", "--host", "w1", "/mnt/proj/a").splitlines()[0] \
        == "/mnt/proj/a"


BAD = [
    # (arguments, words the error must contain)
    (["admission", "--networks", "10.0.0.0/33"], ["networks", "10.0.0.0/33"]),
    (["admission", "--mode", "Any"], ["--mode", "Any"]),
    (["schedules", "add", "w*", "--days", "mon", "--from", "25:00", "--to", "10:00"],
     ["--from", "25:00"]),
    (["schedules", "add", "w*", "--days", "someday", "--from", "09:00", "--to", "10:00"],
     ["--days", "someday"]),
    (["schedules", "add", "w*", "--days", "mon", "--from", "09:00", "--to", "09:00"],
     ["--to", "end"]),
    (["schedules", "delete", "999"], ["no schedule with id 999"]),
    (["hosts", "slots", "w1", "-1"], ["-1", "whole number"]),
    (["hosts", "slots", "w1", "5000"], ["slots", "5000"]),
    (["hosts", "slots", "ghost", "2"], ["ghost"]),
    (["hosts", "tags", "ghost", "+gpu"], ["ghost"]),
    (["hosts", "tags", "w1", "+bad tag"], ["bad tag"]),
    (["hosts", "drain", "ghost"], ["ghost"]),
    (["hosts", "drain", "w1", "--then", "explode"], ["explode"]),
    (["lock", "ghost"], ["ghost"]),
    (["lock", "w1", "--slots", "-3"], ["-3"]),
    (["pathmap", "add", "--os", "beos", "/a", "/b"], ["beos"]),
    (["pathmap", "delete", "999"], ["999"]),
    (["pathmap", "check", "--host", "ghost", "/mnt/x"], ["ghost"]),
]


def test_bad_input_is_a_clear_error_and_changes_nothing(cli_farm):
    farm = cli_farm
    ok(farm, "pathmap", "add", "--os", "linux", "/mnt/a", "/srv/a")
    ok(farm, "schedules", "add", "nobody-*", "--days", "sat", "--from", "01:00", "--to", "02:00")
    before = state(farm)
    for args, words in BAD:
        result = farm.cli(*args)
        assert result.exit_code != 0, (args, result.output)
        for word in words:
            assert word in result.stderr, (args, result.stderr)
        assert state(farm) == before, args
