"""Qube!-style job dicts through the Python API and the command line."""

from __future__ import annotations

import json
import sys

import pytest

from cuefarm import qube, spec

BASIC = {"name": "shot10", "prototype": "cmdrange", "cpus": 3, "priority": 100,
         "package": {"cmdline": "echo QB_FRAME_START-QB_FRAME_END", "range": "1-10",
                     "rangeExecution": "chunks:5"},
         "reservations": "host.memory=500", "env": {"SHOT": "10"}}


def test_a_cmdrange_job_is_mapped():
    job = qube.to_job(BASIC)
    [layer] = job["layers"]
    assert (job["name"], job["priority"], job["max_slots"]) == ("shot10", 9900, 3)
    assert layer["command"] == "echo #FRAME_START#-#FRAME_END#"
    assert (layer["range"], layer["chunk"], layer["reservations"]) == ("1-10", 5,
                                                                      "host.memory=500")
    padded = qube.to_job({"name": "p", "prototype": "cmdrange", "agenda": [
        {"name": "3"}, {"name": "7"}], "package": {"cmdline": "r QB_FRAME_NUMBER",
                                                   "padding": 4}})
    assert padded["layers"][0]["range"] == "3,7"
    assert padded["layers"][0]["command"] == "r #ZFRAME#"


@pytest.mark.parametrize("change, field, words", [
    ({"cluster": "/prod"}, "job.cluster", "not supported"),
    ({"prototype": "maya"}, "job.prototype", "cmdrange and cmdline"),
    ({"package": {"cmdline": "x", "range": "1-2", "renderer": "mr"}}, "job.package.renderer",
     "not supported"),
    ({"priority": 0}, "job.priority", "1 (most urgent)"),
    ({"package": {"cmdline": "x", "range": "1-2", "rangeExecution": "partitions:4"}},
     "job.package.rangeExecution", "chunks:N"),
    ({"package": {"cmdline": "x", "range": "1-2x"}}, "job.agenda", "cannot parse"),
    ({"reservations": "host.license.nuke=1"}, "job.reservations", "unknown reservation"),
    ({"requirements": "host.os=linux"}, "job.requirements", ""),
    ({"range": "1-3"}, "job.agenda", "once"),
])
def test_what_is_not_ours_is_refused(change, field, words):
    with pytest.raises(spec.SpecError) as exc:
        qube.to_job({**BASIC, **change})
    assert exc.value.field == field, exc.value
    assert words in exc.value.message


@pytest.mark.skipif(sys.platform == "win32", reason="uses sh")
def test_python_api_and_cli_submit_qube_dicts(sqlite_farm, tmp_path):
    farm = sqlite_farm
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    out = tmp_path / "out"
    out.mkdir()
    job = {"name": "qube-api", "prototype": "cmdrange",
           "package": {"cmdline": f"echo QB_FRAME_NUMBER >> {out}/api.txt", "range": "1-3"}}
    client = farm.client()
    [job_id] = client.submit([job])
    assert client.wait(job_id, timeout=120)["succeeded"] == 3
    assert sorted((out / "api.txt").read_text().split()) == ["1", "2", "3"]

    path = tmp_path / "qube.json"
    path.write_text(json.dumps({**job, "name": "qube-cli", "priority": 10,
                                "package": {**job["package"], "range": "5-6"}}))
    result = farm.cli("submit", str(path))
    assert result.exit_code == 0, result.output
    cli_id = int(result.stdout)
    assert client.job(cli_id)["priority"] == 9990
    assert farm.cli("wait", str(cli_id), "--timeout", "120").exit_code == 0

    path.write_text(json.dumps({**job, "groups": "fast"}))
    result = farm.cli("submit", str(path))
    assert result.exit_code == 1
    assert f"{path}: jobs[0].groups: the Qube! key 'groups' is not supported" in result.stderr
