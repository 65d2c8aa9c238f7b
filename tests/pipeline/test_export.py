"""`cuefarm job export`: a job written back as a job file makes an equal job (both databases)."""

from __future__ import annotations

import json
import textwrap

import yaml

JOB = """\
name: export-me
project: exports
priority: 70
min_slots: 1
max_slots: 9
layers:
  - name: sim
    command: ["sim", "--frame", "#FRAME#"]
    range: 1-20x2
    chunk: 3
    slots: 2+
    memory: 1500
    env: {SHOT: sh010, PADDED: "0010"}
    cwd: /shows/x
    tags: [fast, "gpu"]
    os: linux
    hosts: ["render-*"]
    omit_hosts: [render-13]
    requirements: 'host.memory >= 1000 and "fast" in host.tags'
    max_retries: 3
    timeout: 600
    timeout_no_output: 60
    limits: [nuke]
  - name: comp
    command: "comp -f #FRAME_START# -l #FRAME_END# # a shell comment"
    range: 1-19
    reservations: host.processors=4,host.gpus=1
    depends_on: [{layer: sim, per_frame: true}]
  - name: encode
    command: [encode]
    range: "1"
    slots: all
    depends_on: [comp, {job: DEP}]
"""

FOLLOWS = ("priority", "min_slots", "max_slots", "frames_total", "project", "name")
LAYER_KEYS = ("name", "command", "range", "chunk", "slots", "slots_mode", "memory", "gpus",
              "max_retries", "tags", "os", "hosts", "omit_hosts", "requirements", "limits",
              "timeout", "timeout_no_output", "frames_total")


def _comparable(client, job_id):
    job = {k: client.job(job_id)[k] for k in FOLLOWS}
    layers = [{k: layer[k] for k in LAYER_KEYS} for layer in client.layers(job_id)]
    deps = [layer["depends_on"] for layer in client.layers(job_id)]
    return job, layers, deps


def test_export_round_trips_through_submit(farm, tmp_path):
    client = farm.client()
    client.set_limit("nuke", 5)
    [dep] = client.submit([{"name": "upstream", "layers": [
        {"name": "a", "command": ["true"], "range": "1"}]}])
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(JOB).replace("DEP", str(dep)))
    first = int(farm.cli("submit", str(path)).stdout)
    client.set_layer(first, "sim", max_retries=4)    # an edit after submitting is kept

    exported = farm.cli("job", "export", str(first))
    assert exported.exit_code == 0, exported.output
    as_yaml = yaml.safe_load(exported.stdout)
    assert as_yaml["layers"][0]["env"] == {"SHOT": "sh010", "PADDED": "0010"}
    assert as_yaml["layers"][1]["command"].endswith("# a shell comment")
    again = tmp_path / "again.yaml"
    again.write_text(exported.stdout)
    second = int(farm.cli("submit", str(again)).stdout)

    out = tmp_path / "again.json"
    written = farm.cli("job", "export", str(first), "--json", "-o", str(out))
    assert written.exit_code == 0, written.output
    assert json.loads(out.read_text()) == as_yaml
    third = int(farm.cli("submit", str(out)).stdout)

    original = _comparable(client, first)
    assert original[1][0]["max_retries"] == 4
    assert _comparable(client, second) == original
    assert _comparable(client, third) == original
    assert client.export(second) == client.export(first) == as_yaml


def test_export_errors(farm, tmp_path):
    result = farm.cli("job", "export", "999")
    assert result.exit_code == 1 and "no job with id 999" in result.stderr
    [job_id] = farm.client().submit([{"name": "x", "layers": [
        {"name": "a", "command": ["true"], "range": "1"}]}])
    result = farm.cli("job", "export", str(job_id), "-o", str(tmp_path / "no" / "such.yaml"))
    assert result.exit_code == 1 and "cannot write" in result.output
