"""The `cuefarm` commands against the in-process farm: what a user types and reads."""

from __future__ import annotations

from pathlib import Path

import yaml

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
