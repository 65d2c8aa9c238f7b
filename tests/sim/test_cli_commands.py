"""The `cuefarm` commands against the in-process farm: what a user types and reads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cuefarm import CueFarmError

EXAMPLE = Path(__file__).resolve().parents[2] / "resources" / "examples" / "job.yaml"


def test_layers_lists_what_each_layer_waits_for(farm):
    [first] = farm.submit(yaml.safe_load(EXAMPLE.read_text()))
    [second] = farm.submit([{"name": "deps", "layers": [
        {"name": "a", "command": "true", "range": "1-2"},
        {"name": "b", "command": "true", "range": "1-2",
         "depends_on": [{"layer": "a", "per_frame": True}, {"job": first}]},
        {"name": "c", "command": "true", "range": "1",
         "depends_on": [{"job": first, "layer": "encode"}]}]}])
    result = farm.cli("layers", str(first))
    assert result.exit_code == 0, result.output
    encode = next(line for line in result.output.splitlines() if " encode " in line)
    assert " render " in encode
    result = farm.cli("layers", str(second))
    assert result.exit_code == 0, result.output
    assert f"a (per frame), job {first} " in result.output
    assert f"job {first}/encode " in result.output


def test_a_killed_job_shows_its_frames_eaten_not_succeeded(farm):
    farm.add_worker("w1", slots=2, runtime=None)
    [jid] = farm.submit([{"name": "long", "layers": [
        {"name": "a", "command": "sleep 100", "range": "1-4"}]}])
    farm.settle()
    assert farm.cli("kill", str(jid)).exit_code == 0
    farm.settle()
    table = farm.cli("jobs").output.splitlines()
    header, row = table[0].split(), table[1].split()
    cells = dict(zip(header, row))
    assert (cells["STATUS"], cells["SUCCEEDED"], cells["EATEN"]) == ("killed", "0/4", "4")
    table = farm.cli("layers", str(jid)).output.splitlines()
    cells = dict(zip(table[0].split(), table[1].split()))
    assert (cells["SUCCEEDED"], cells["EATEN"]) == ("0/4", "4")


def test_frame_commands_take_frame_numbers_of_the_job(farm):
    farm.add_worker("w1", slots=8, runtime=None)
    c = farm.client()
    [other] = farm.submit([{"name": "other", "layers": [
        {"name": "a", "command": "true", "range": "1-4"}]}])
    [jid] = farm.submit([{"name": "long", "layers": [
        {"name": "a", "command": "sleep 100", "range": "1-4"}]}])
    farm.settle()
    ids = {f["number"]: f["id"] for f in c.frames(jid)}
    assert ids[3] != 3                  # frame id 3 belongs to the other job

    result = farm.cli("kill", str(jid), "--frame", "3")
    assert (result.exit_code, result.output) == (0, "killed 1 frame\n")
    farm.settle()
    attempts = {f["number"]: f["attempt"] for f in c.frames(jid)}
    assert attempts == {1: 1, 2: 1, 3: 2, 4: 1}     # frame 3 stopped and ran again
    assert {f["attempt"] for f in c.frames(other)} == {1}

    for command in ("kill", "retry", "eat"):
        refused = farm.cli(command, str(jid), "--frame", "2,9")
        assert refused.exit_code == 1, refused.output
        assert "no frame 9" in refused.output
    assert {f["attempt"] for f in c.frames(jid)} == {1, 2}     # nothing was done


def test_frame_numbers_of_a_job_with_several_layers_need_the_layer(farm):
    farm.add_worker("w1", slots=8, runtime=0.5)
    [jid] = farm.submit([{"name": "two", "layers": [
        {"name": "render", "command": "true", "range": "1-4", "chunk": 2},
        {"name": "encode", "command": "true", "range": "1", "depends_on": ["render"]}]}])
    farm.run_until_done([jid])
    c = farm.client()
    refused = farm.cli("retry", str(jid), "--frame", "1")
    assert refused.exit_code == 1
    assert "render, encode" in refused.output and "--layer" in refused.output
    nolayer = farm.cli("retry", str(jid), "--layer", "comp", "--frame", "1")
    assert nolayer.exit_code == 1 and "no layer 'comp'" in nolayer.output
    # Frames 3 and 4 are one chunk: it runs again once.
    result = farm.cli("retry", str(jid), "--layer", "render", "--frame", "3-4")
    assert (result.exit_code, result.output) == (0, "requeued 1 frame\n")
    assert [f["state"] for f in c.frames(jid, "render")] == ["SUCCEEDED", "WAITING"] or \
        [f["attempt"] for f in c.frames(jid, "render")] == [1, 2]


def test_the_client_still_acts_on_frame_ids_of_the_job_only(farm):
    farm.add_worker("w1", slots=8, runtime=0.5)
    [a, b] = farm.submit([{"name": "a", "layers": [{"name": "x", "command": "true",
                                                     "range": "1-2"}]},
                          {"name": "b", "layers": [{"name": "x", "command": "true",
                                                     "range": "1-2"}]}])
    farm.run_until_done([a, b])
    c = farm.client()
    [first, _] = [f["id"] for f in c.frames(a)]
    assert c.frame_control("retry", a, [first]) == 1
    with pytest.raises(CueFarmError) as info:
        c.frame_control("retry", b, [first])
    assert info.value.code == "not_found" and f"job {b} has no frame with id {first}" in str(
        info.value)


@pytest.mark.parametrize("args, said", [
    (["job", "999"], "error: no job with id 999"),
    (["layers", "999"], "error: no job with id 999"),
    (["frames", "999"], "error: no job with id 999"),
    (["kill", "999"], "error: no job with id 999"),
    (["kill", "999", "--frame", "1"], "error: no job with id 999"),
    (["priority", "999", "5"], "error: no job with id 999"),
    (["log", "999", "--layer", "render", "--frame", "1"], "error: no job with id 999"),
    (["log", "1", "--frame", "1"],
     "error: --layer: job 1 has 2 layers (render, encode): name the layer of the frames"),
    (["log", "1", "--layer", "nope", "--frame", "1"],
     "error: --layer: job 1 has no layer 'nope' (its layers: render, encode)"),
    (["log", "1", "--layer", "render", "--frame", "99"],
     "error: --frame: layer 'render' of job 1 has no frame 99"),
    (["why", "1", "--layer", "render", "--frame", "99"],
     "error: --frame: layer 'render' has no frame 99"),
    (["frames", "1", "--layer", "nope"],
     "error: --layer: job 1 has no layer 'nope' (its layers: render, encode)"),
    (["job", "set", "1", "--priority", "99999999"],
     "error: --priority: 99999999 is out of range -1000000..1000000"),
    (["job", "set", "1", "--max-slots", "0"],
     "error: --max-slots: 0 is out of range 1..1073741824"),
    (["layer", "set", "1", "render", "--requirements", "host.foo > 1"],
     "error: --requirements: unknown attribute 'host.foo'"),
    (["layer", "set", "1", "render", "--tags", "a,bad tag"],
     "error: --tags: 'bad tag' is not a valid tag"),
    (["limits", "set", "licence", "-3"], "error: a limit is 0 or more, not -3"),
    (["layer", "set", "1", "render", "--os", "any", "--memory", "-1"],
     "error: --memory: -1 is out of range"),
    (["usage", "--from", "1990-01-01", "--to", "2020-01-01"],
     "error: --from: a usage report covers at most 20 years"),
    (["usage", "--from", "2020-02-01", "--to", "2020-01-01"],
     "error: --to: the end 2020-01-01 is before the start 2020-02-01"),
])
def test_refusals_name_what_the_user_typed_once(farm, args, said):
    farm.add_worker("w1", slots=4, runtime=0.5)
    farm.run_until_done(farm.submit(yaml.safe_load(EXAMPLE.read_text())))
    result = farm.cli(*args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(said), result.output
    assert result.output.count(":") <= said.count(":") + 1, result.output   # said once


def test_a_job_over_the_frame_limit_is_refused_with_the_real_limit(farm, tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("name: huge\nlayers:\n  - {name: r, command: x, range: 1-60000000}\n")
    result = farm.cli("submit", str(path))
    assert result.exit_code == 1
    assert result.output == (f"error: {path}: jobs[0].layers[0].range: the job would have more "
                             "than the maximum of 1,000,000 frames\n")
