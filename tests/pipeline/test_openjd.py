"""Open Job Description templates mapped to CueFarm jobs, and run on a real farm."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from cuefarm import openjd, spec
from cuefarm.jobfiles import native

TEMPLATES = Path(__file__).parent.parent / "openjd_templates"


def load(name: str) -> dict:
    return yaml.safe_load((TEMPLATES / name).read_text())


def test_steps_become_layers_with_dependencies_and_frames():
    [job] = openjd.to_jobs(load("render-and-encode.yaml"), {"OutDir": "/out", "Frames": "3-9:3"})
    spec.validate_submission([job])
    assert job["name"] == "Shot_sh010_render"
    render, encode = job["layers"]
    assert (render["name"], render["range"]) == ("Render_Frames", "3-9x3")
    assert encode["depends_on"] == ["Render_Frames"]
    assert encode["range"] == "1-2"          # one frame per STRING value
    assert "'my movie.mov'" in encode["command"][2]


def test_chunked_int_parameter_becomes_chunks():
    [job] = openjd.to_jobs(load("chunked.yaml"), {"OutDir": "/o"})
    [layer] = job["layers"]
    assert (layer["range"], layer["chunk"]) == ("1-10", 4)
    assert "#FRAME_START#-#FRAME_END#" in layer["command"]


def test_variables_and_host_requirements_are_mapped():
    [job] = openjd.to_jobs(load("variables.yaml"), {"Shot": "sh777"})
    [layer] = job["layers"]
    assert layer["env"] == {"STUDIO_ROOT": "/mnt/studio", "SHOT": "sh777",
                            "RENDER_THREADS": "8"}
    assert (layer["slots"], layer["memory"], layer["os"], layer["timeout"]) == (4, 8192,
                                                                                 "linux", 3600)
    assert layer["command"] == ["render", "--threads", "8"]
    assert "host.cores <= 16" in layer["requirements"]
    assert '"ConfigA" in host.tags or "ConfigC" in host.tags' in layer["requirements"]
    spec.validate_submission([job])


def test_combination_expressions_are_enumerated():
    t = {"specificationVersion": "jobtemplate-2023-09", "name": "combo", "steps": [{
        "name": "pairs",
        "parameterSpace": {"taskParameterDefinitions": [
            {"name": "N", "type": "INT", "range": "1-3"},
            {"name": "S", "type": "STRING", "range": ["a", "b", "c"]},
            {"name": "Z", "type": "STRING", "range": ["x", "y"]}],
            "combination": "(N, S) * Z"},
        "script": {"actions": {"onRun": {"command": "echo",
                                         "args": ["{{Task.Param.N}}{{Task.Param.S}}"
                                                  "{{Task.Param.Z}}"]}}}}]}
    [job] = openjd.to_jobs(t)
    [layer] = job["layers"]
    assert layer["range"] == "1-6"
    script = layer["command"][2]
    assert "1) exec echo 1ax" in script and "6) exec echo 3cy" in script


def test_tasks_too_long_to_start_as_one_command_are_refused():
    def template(takes: int) -> dict:       # 100 shots x `takes` takes, a task each
        return {"specificationVersion": "jobtemplate-2023-09", "name": "many", "steps": [{
            "name": "each",
            "parameterSpace": {"taskParameterDefinitions": [
                {"name": "S", "type": "STRING", "range": [f"shot{i:03d}" for i in range(100)]},
                {"name": "T", "type": "STRING", "range": [f"take{i:02d}" for i in range(takes)]}]},
            "script": {"actions": {"onRun": {"command": "render", "args": [
                "--shot", "{{Task.Param.S}}", "--take", "{{Task.Param.T}}"]}}}}]}

    [job] = native([template(10)])
    spec.validate_submission([job])
    assert job["layers"][0]["range"] == "1-1000"
    assert len(job["layers"][0]["command"][2].encode()) <= openjd.MAX_SCRIPT_BYTES
    with pytest.raises(spec.SpecError) as exc:
        native([template(50)])
    assert exc.value.field == "jobs[0].steps[0].parameterSpace"
    assert f"at most {openjd.MAX_SCRIPT_BYTES:,}: split the step" in str(exc.value)


@pytest.mark.parametrize("change, field, words", [
    (lambda t: t.update(specificationVersion="jobtemplate-2099-01"),
     "jobs[0].specificationVersion", "not supported"),
    (lambda t: t["steps"][0].update(stepEnvironments=[{
        "name": "Venv", "script": {"actions": {"onEnter": {"command": "activate"}}}}]),
     "jobs[0].steps[0].stepEnvironments[0]", "runs a script"),
    (lambda t: t["steps"][0]["parameterSpace"]["taskParameterDefinitions"][0]["chunks"].update(
        targetRuntimeSeconds=60), "jobs[0].steps[0].parameterSpace", "adaptive"),
    (lambda t: t["steps"][0].update(hostRequirements={"amounts": [
        {"name": "amount.worker.disk.scratch", "min": 10}]}),
     "jobs[0].steps[0].hostRequirements.amounts[0]", "not supported"),
    (lambda t: t["steps"][0].update(hostRequirements={"attributes": [
        {"name": "attr.worker.cpu.arch", "anyOf": ["x86_64"]}]}),
     "jobs[0].steps[0].hostRequirements.attributes[0]", "not supported"),
    (lambda t: t["steps"][0]["script"]["actions"]["onRun"].update(
        cancelation={"mode": "NOTIFY_THEN_TERMINATE"}),
     "jobs[0].steps[0].script.actions.onRun.cancelation", "TERMINATE"),
    (lambda t: t["steps"][0].update(naem="typo"), "jobs[0]", "naem"),
])
def test_what_cannot_be_honoured_is_refused(change, field, words):
    t = load("chunked.yaml")
    change(t)
    with pytest.raises(spec.SpecError) as exc:
        native([t], {"OutDir": "/o"})
    assert exc.value.field.startswith(field), exc.value
    assert words in str(exc.value)


def test_parameters_are_checked():
    t = load("chunked.yaml")
    with pytest.raises(spec.SpecError, match="OutDir"):
        native([t])                                  # required, no default
    with pytest.raises(spec.SpecError, match="Nope"):
        native([t], {"OutDir": "/o", "Nope": "1"})
    with pytest.raises(spec.SpecError, match="-p"):
        native([{"name": "plain", "layers": []}], {"X": "1"})
    with pytest.raises(spec.SpecError, match="Name=Value"):
        openjd.parse_parameters(["novalue"])


@pytest.mark.skipif(sys.platform == "win32", reason="the mapped commands use sh")
def test_cli_submits_a_template_that_runs(sqlite_farm, tmp_path):
    farm = sqlite_farm
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    out = tmp_path / "out dir"
    out.mkdir()
    template = tmp_path / "t.yaml"
    template.write_text((TEMPLATES / "render-and-encode.yaml").read_text())
    check = farm.cli("submit", "--check", str(template), "-p", f"OutDir={out}")
    assert check.exit_code == 0, check.output
    assert "2 layer(s), 7 frame(s)" in check.stdout
    result = farm.cli("submit", str(template), "-p", f"OutDir={out}", "-p", "Shot=sh042")
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    job_id = int(result.stdout.strip())
    waited = farm.cli("wait", str(job_id), "--timeout", "120")
    assert waited.exit_code == 0, waited.output + farm.supervisor_log()
    assert (out / "frame.3.txt").read_text() == "sh042 frame 3\n"
    assert (out / "my movie.mov").read_text().count("sh042 frame") == 5
    assert (out / "mp4").exists()

    chunked = tmp_path / "c.yaml"
    chunked.write_text((TEMPLATES / "chunked.yaml").read_text())
    job_id = int(farm.cli("submit", str(chunked), "-p", f"OutDir={out}").stdout)
    assert farm.cli("wait", str(job_id), "--timeout", "120").exit_code == 0
    assert sorted((out / "chunks.txt").read_text().split()) == ["1-4", "5-8", "9-10"]


def test_cli_names_the_file_and_key_of_a_refusal(sqlite_farm, tmp_path):
    t = load("chunked.yaml")
    t["steps"][0]["hostRequirements"] = {"amounts": [{"name": "amount.worker.disk.scratch",
                                                      "min": 1}]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(t))
    result = sqlite_farm.cli("submit", str(path), "-p", "OutDir=/o")
    assert result.exit_code == 1
    assert f"{path}: jobs[0].steps[0].hostRequirements.amounts[0]" in result.stderr
    assert sqlite_farm.client().jobs() == []       # nothing was submitted


def test_python_api_submits_a_template_with_parameters(sqlite_farm):
    client = sqlite_farm.client()
    t = load("chunked.yaml")
    [job_id] = client.submit([t], parameters={"OutDir": "/tmp/x"})
    [layer] = client.layers(job_id)
    assert (layer["name"], layer["range"], layer["chunk"], layer["frames_total"]) == (
        "Sim", "1-10", 4, 3)             # three chunks
    exported = client.export(job_id)
    assert exported["layers"][0]["command"][4] == "#FRAME_START#-#FRAME_END#"
    with pytest.raises(spec.SpecError, match="OutDir"):
        client.submit([t])
    assert [j["id"] for j in client.jobs()] == [job_id]
