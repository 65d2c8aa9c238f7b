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
