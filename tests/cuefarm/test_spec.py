"""Job spec validation: good specs normalise; every bad one names its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import pytest

from cuefarm import frames, spec
from cuefarm.spec import (DEFAULT_MAX_FRAMES, Dependency, SpecError, validate_job,
                          validate_submission)


def make_job(**changes: Any) -> dict[str, Any]:
    job = {
        "name": "shot010_comp",
        "project": "demo",
        "priority": 60,
        "layers": [
            {"name": "render", "command": ["render", "-f", "#FRAME#"], "range": "1-10"},
            {"name": "comp", "command": "comp #FRAME_START#-#FRAME_END#", "range": "1-10",
             "chunk": 5, "depends_on": ["render"]},
        ],
    }
    job.update(changes)
    return job


def with_layer(i: int, **changes: Any) -> dict[str, Any]:
    job = make_job()
    job["layers"][i].update(changes)
    return job


def test_good_job_is_normalised():
    spec = validate_job(make_job())
    assert (spec.name, spec.project, spec.priority) == ("shot010_comp", "demo", 60)
    render, comp = spec.layers
    assert render.frames == list(range(1, 11))
    assert (render.chunk, render.slots, render.memory, render.max_retries) == (1, 1, 0, 1)
    assert render.env == {} and render.depends_on == [] and render.cwd is None
    assert comp.depends_on == [Dependency("layer", layer="render")]
    assert [c.label for c in comp.chunks()] == ["1-5", "6-10"]


def test_defaults_and_all_keys():
    spec = validate_job({"name": "j", "layers": [{
        "name": "l", "command": "echo hi", "range": 7, "chunk": "2", "slots": 4,
        "memory": 2048, "max_retries": 0, "env": {"A": "x", "N": 3}, "depends_on": [],
        "cwd": "/tmp"}]})
    assert spec.project == "default" and spec.priority == 50
    layer = spec.layers[0]
    assert layer.range == "7" and layer.frames == [7]
    assert (layer.chunk, layer.slots, layer.memory, layer.max_retries) == (2, 4, 2048, 0)
    assert layer.env == {"A": "x", "N": "3"}
    assert layer.cwd == "/tmp"


def test_depends_on_may_be_a_single_name():
    job = with_layer(1, depends_on="render")
    assert validate_job(job).layers[1].depends_on == [Dependency("layer", layer="render")]


def test_submission_accepts_one_job_or_a_list():
    assert len(validate_submission(make_job())) == 1
    assert len(validate_submission([make_job(), make_job(name="other")])) == 2


def _set(path: list[Any], value: Any) -> Callable[[dict], dict]:
    def mutate(job: dict) -> dict:
        target = job
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return job
    return mutate


def _delete(path: list[Any]) -> Callable[[dict], dict]:
    def mutate(job: dict) -> dict:
        target = job
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]
        return job
    return mutate


L0 = ["layers", 0]
L1 = ["layers", 1]

# (id, mutation of a good job, the field named, a fragment of the message)
BAD = [
    # malformed ranges
    ("range-step-0", _set(L0 + ["range"], "1-10x0"), "job.layers[0].range", "step 0"),
    ("range-letters", _set(L0 + ["range"], "abc"), "job.layers[0].range", "cannot parse"),
    ("range-unicode-digits", _set(L0 + ["range"], "\uff11-5"), "job.layers[0].range",
     "cannot parse"),
    ("range-arabic-indic", _set(L0 + ["range"], "\u0661-\u0665"), "job.layers[0].range",
     "cannot parse"),
    ("range-underscore", _set(L0 + ["range"], "1_000"), "job.layers[0].range", "cannot parse"),
    ("range-empty", _set(L0 + ["range"], ""), "job.layers[0].range", "empty"),
    ("range-dangling", _set(L0 + ["range"], "1-"), "job.layers[0].range", "cannot parse"),
    ("range-empty-part", _set(L0 + ["range"], "1,,3"), "job.layers[0].range", "cannot parse"),
    ("range-fileseq-fill", _set(L0 + ["range"], "1-10:2"), "job.layers[0].range",
     "cannot parse"),
    ("range-fileseq-inverse", _set(L0 + ["range"], "1-10y2"), "job.layers[0].range",
     "cannot parse"),
    ("range-trailing-newline", _set(L0 + ["range"], "1-5\n"), "job.layers[0].range",
     "cannot parse"),
    ("range-step-away", _set(L0 + ["range"], "10-1x2"), "job.layers[0].range", "away"),
    ("range-huge-digits", _set(L0 + ["range"], "1" * 5000), "job.layers[0].range",
     "cannot parse"),
    ("range-too-large-number", _set(L0 + ["range"], "1-99999999999"), "job.layers[0].range",
     "at most"),
    ("range-bool", _set(L0 + ["range"], True), "job.layers[0].range", "string"),
    ("range-list", _set(L0 + ["range"], [1, 2]), "job.layers[0].range", "string"),
    # unknown keys
    ("job-unknown-key", _set(["prority"], 10), "job.prority", "unknown key"),
    ("layer-unknown-key", _set(L1 + ["comand"], "x"), "job.layers[1].comand", "unknown key"),
    # empty commands
    ("command-empty-string", _set(L0 + ["command"], ""), "job.layers[0].command", "empty"),
    ("command-blank-string", _set(L0 + ["command"], "   "), "job.layers[0].command", "empty"),
    ("command-empty-list", _set(L0 + ["command"], []), "job.layers[0].command", "empty"),
    ("command-empty-program", _set(L0 + ["command"], ["", "x"]), "job.layers[0].command[0]",
     "empty"),
    ("command-not-string-word", _set(L0 + ["command"], ["echo", 5]), "job.layers[0].command[1]",
     "strings"),
    ("command-nul", _set(L0 + ["command"], ["echo", "a\0b"]), "job.layers[0].command[1]", "NUL"),
    ("command-dict", _set(L0 + ["command"], {"a": 1}), "job.layers[0].command", "string"),
    # dependencies
    ("depends-missing", _set(L1 + ["depends_on"], ["lighting"]), "job.layers[1].depends_on[0]",
     "no layer named 'lighting'"),
    ("depends-self", _set(L1 + ["depends_on"], ["comp"]), "job.layers[1].depends_on[0]",
     "itself"),
    ("depends-not-name", _set(L1 + ["depends_on"], [3]), "job.layers[1].depends_on[0]",
     "layer name"),
    ("depends-not-list", _set(L1 + ["depends_on"], 5), "job.layers[1].depends_on",
     "list"),
    # bools and junk where whole numbers belong
    ("priority-bool", _set(["priority"], True), "job.priority", "whole number"),
    ("chunk-bool", _set(L0 + ["chunk"], False), "job.layers[0].chunk", "whole number"),
    ("slots-bool", _set(L0 + ["slots"], True), "job.layers[0].slots", "whole number"),
    ("memory-bool", _set(L0 + ["memory"], True), "job.layers[0].memory", "whole number"),
    ("retries-bool", _set(L0 + ["max_retries"], True), "job.layers[0].max_retries",
     "whole number"),
    ("chunk-float", _set(L0 + ["chunk"], 2.5), "job.layers[0].chunk", "whole number"),
    ("chunk-zero", _set(L0 + ["chunk"], 0), "job.layers[0].chunk", "out of range"),
    ("slots-huge", _set(L0 + ["slots"], 10**6), "job.layers[0].slots", "out of range"),
    ("priority-unicode", _set(["priority"], "\uff15"), "job.priority", "whole number"),
    ("priority-underscore", _set(["priority"], "1_000"), "job.priority", "whole number"),
    ("priority-huge-digits", _set(["priority"], "9" * 5000), "job.priority", "whole number"),
    # environment
    ("env-not-mapping", _set(L0 + ["env"], ["A=1"]), "job.layers[0].env", "mapping"),
    ("env-name-digit", _set(L0 + ["env"], {"1ABC": "x"}), "job.layers[0].env.1ABC",
     "environment variable name"),
    ("env-name-dash", _set(L0 + ["env"], {"A-B": "x"}), "job.layers[0].env.A-B",
     "environment variable name"),
    ("env-name-equals", _set(L0 + ["env"], {"A=B": "x"}), "job.layers[0].env.A=B",
     "environment variable name"),
    ("env-name-newline", _set(L0 + ["env"], {"PATH\n": "x"}), "job.layers[0].env.PATH\n",
     "environment variable name"),
    ("env-name-empty", _set(L0 + ["env"], {"": "x"}), "job.layers[0].env.",
     "environment variable name"),
    ("env-value-none", _set(L0 + ["env"], {"A": None}), "job.layers[0].env.A", "strings"),
    ("env-value-bool", _set(L0 + ["env"], {"A": True}), "job.layers[0].env.A", "strings"),
    ("env-value-list", _set(L0 + ["env"], {"A": ["x"]}), "job.layers[0].env.A", "strings"),
    ("env-value-nul", _set(L0 + ["env"], {"A": "x\0y"}), "job.layers[0].env.A", "NUL"),
    # names and structure
    ("duplicate-layer", _set(L1 + ["name"], "render"), "job.layers[1].name", "duplicate"),
    ("job-name-space", _set(["name"], "my job"), "job.name", "not a valid name"),
    ("job-name-newline", _set(["name"], "job\n"), "job.name", "not a valid name"),
    ("job-name-long", _set(["name"], "a" * 129), "job.name", "not a valid name"),
    ("job-name-dash-first", _set(["name"], "-x"), "job.name", "not a valid name"),
    ("project-bad", _set(["project"], "a/b"), "job.project", "not a valid name"),
    ("layer-name-bad", _set(L0 + ["name"], "r e"), "job.layers[0].name", "not a valid name"),
    ("job-name-missing", _delete(["name"]), "job.name", "required"),
    ("command-missing", _delete(L0 + ["command"]), "job.layers[0].command", "required"),
    ("range-missing", _delete(L0 + ["range"]), "job.layers[0].range", "required"),
    ("layers-missing", _delete(["layers"]), "job.layers", "at least one layer"),
    ("layers-empty", _set(["layers"], []), "job.layers", "at least one layer"),
    ("layer-not-mapping", _set(["layers"], ["render"]), "job.layers[0]", "mapping"),
    ("cwd-empty", _set(L0 + ["cwd"], ""), "job.layers[0].cwd", "directory"),
]


@pytest.mark.parametrize("mutate,field,fragment", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_spec_names_its_field(mutate, field, fragment):
    job = mutate(copy.deepcopy(make_job()))
    with pytest.raises(SpecError) as info:
        validate_job(job)
    assert info.value.field == field
    assert fragment in info.value.message
    assert str(info.value).startswith(field + ": ")


def test_two_layer_cycle_is_spelled_out():
    job = make_job(layers=[
        {"name": "a", "command": "x", "range": "1", "depends_on": ["b"]},
        {"name": "b", "command": "x", "range": "1", "depends_on": ["a"]},
    ])
    with pytest.raises(SpecError) as info:
        validate_job(job)
    assert info.value.field == "job.layers"
    assert "a -> b -> a" in info.value.message


def test_longer_cycle_is_spelled_out():
    job = make_job(layers=[
        {"name": "start", "command": "x", "range": "1"},
        {"name": "a", "command": "x", "range": "1", "depends_on": ["start", "c"]},
        {"name": "b", "command": "x", "range": "1", "depends_on": ["a"]},
        {"name": "c", "command": "x", "range": "1", "depends_on": ["b"]},
    ])
    with pytest.raises(SpecError) as info:
        validate_job(job)
    assert "a -> c -> b -> a" in info.value.message


def test_diamond_is_not_a_cycle():
    job = make_job(layers=[
        {"name": "a", "command": "x", "range": "1"},
        {"name": "b", "command": "x", "range": "1", "depends_on": ["a"]},
        {"name": "c", "command": "x", "range": "1", "depends_on": ["a"]},
        {"name": "d", "command": "x", "range": "1", "depends_on": ["b", "c"]},
    ])
    assert [la.name for la in validate_job(job).layers] == ["a", "b", "c", "d"]


def test_huge_range_is_refused_without_expanding():
    # Expanding four billion frames would exhaust memory; the count is computed arithmetically.
    job = with_layer(0, range="-2147483647-2147483647")
    with pytest.raises(SpecError) as info:
        validate_job(job, max_frames=DEFAULT_MAX_FRAMES)
    assert info.value.field == "job.layers[0].range"
    assert "maximum of 1,000,000 frames" in info.value.message


def test_range_over_max_frames():
    with pytest.raises(SpecError) as info:
        validate_job(with_layer(0, range="1-1000000000"), max_frames=1_000_000)
    assert info.value.field == "job.layers[0].range"
    with pytest.raises(frames.RangeError):
        frames.expand("1-1000000000", 1_000_000)


def test_max_frames_counts_the_whole_job():
    job = make_job(layers=[
        {"name": "a", "command": "x", "range": "1-60"},
        {"name": "b", "command": "x", "range": "1-60"},
    ])
    validate_job(job, max_frames=120)
    with pytest.raises(SpecError) as info:
        validate_job(job, max_frames=100)
    assert info.value.field == "job.layers[1].range"


@pytest.mark.parametrize("jobs,field", [
    ([], "jobs"),
    ("a job", "jobs"),
    (None, "jobs"),
    ([make_job(), make_job(name="bad name")], "jobs[1].name"),
    ([make_job(), 5], "jobs[1]"),
])
def test_bad_submission(jobs, field):
    with pytest.raises(SpecError) as info:
        validate_submission(jobs)
    assert info.value.field == field


def test_long_dependency_chain_validates():
    # Deeper than Python's recursion limit: cycle detection must not recurse per layer.
    n = 3000
    layers = [{"name": f"l{i}", "command": "x", "range": "1",
               "depends_on": [f"l{i + 1}"] if i < n - 1 else []} for i in range(n)]
    assert len(validate_job({"name": "chain", "layers": layers}).layers) == n
    layers[-1]["depends_on"] = ["l0"]
    with pytest.raises(SpecError) as info:
        validate_job({"name": "chain", "layers": layers})
    assert info.value.message.endswith("l2999 -> l0")


@pytest.mark.parametrize("text,fragment", [
    ("(" * 400 + "host.cores > 1" + ")" * 400, "more than 300 words"),
    ("(" * 40 + "host.cores > 1" + ")" * 40, "nested more than 32 deep"),
    ("not " * 400 + "host.cores > 1", "more than 300 words"),
    ("not " * 40 + "host.cores > 1", "nested more than 32 deep"),
    ("true and " * 200 + "true", "more than 300 words"),
    ("host.cores > 1 " + "x" * 3000, "longer than 2000 characters"),
])
def test_overdeep_or_overlong_requirements_are_refused_by_name(text, fragment):
    with pytest.raises(SpecError) as info:
        validate_job(with_layer(0, requirements=text))
    assert info.value.field == "job.layers[0].requirements"
    assert fragment in info.value.message


def test_requirements_nested_within_the_cap_still_parse_and_evaluate():
    from cuefarm import requirements as reqs
    tree = reqs.parse("(" * 30 + "host.cores >= 8" + ")" * 30)
    assert reqs.evaluate(tree, {"cores": 16}) is True
    assert reqs.evaluate(reqs.parse("not " * 31 + "host.cores >= 8"), {"cores": 16}) is False
    with pytest.raises(reqs.RequirementError):
        reqs.parse("(" * 33 + "true" + ")" * 33)


# --- the job file reference is written from the keys validation uses ----------------------------

def test_docs_job_file_is_the_generated_reference():
    checked_in = Path(__file__).resolve().parents[2] / "docs" / "job-file.md"
    assert checked_in.read_text(encoding="utf-8") == spec.reference(), (
        "docs/job-file.md is out of date: cuefarm spec --reference > docs/job-file.md")


def test_the_reference_documents_the_defaults_and_bounds_validation_applies():
    job = validate_job({"name": "j", "layers": [{"name": "l", "command": "x", "range": "1"}]})
    layer = job.layers[0]
    for key in spec.LAYER_FIELDS.values():
        if key.default is not spec.REQUIRED and hasattr(layer, key.name):
            assert getattr(layer, key.name) == key.default, key.name
        if key.lo is not None and key.name != "slots":
            def with_value(v, key=key):
                return {"name": "j", "layers": [{"name": "l", "command": "x", "range": "1",
                                                 key.name: v}]}
            assert getattr(validate_job(with_value(key.hi)).layers[0], key.name) == key.hi
            with pytest.raises(SpecError, match="out of range"):
                validate_job(with_value(key.hi + 1))
    for key in spec.JOB_FIELDS.values():
        if key.default is not spec.REQUIRED:
            assert getattr(job, key.name) == key.default, key.name
        if key.lo is not None:
            with pytest.raises(SpecError, match="out of range"):
                validate_job({"name": "j", "layers": [{"name": "l", "command": "x",
                                                       "range": "1"}], key.name: key.lo - 1})
    assert "cwd" in spec.reference() and "under the worker's data directory" in spec.reference()


def test_paused_is_true_or_false():
    base = {"name": "j", "layers": [{"name": "r", "command": ["true"], "range": "1"}]}
    assert validate_job({**base, "paused": True}).paused is True
    assert validate_job(base).paused is False
    with pytest.raises(SpecError) as err:
        validate_job({**base, "paused": "yes"})
    assert err.value.field == "jobs[0].paused" or err.value.field.endswith(".paused")


def test_a_command_or_env_too_large_to_start_a_program_with_is_refused():
    most = spec.MAX_EXEC_STRING - 1                     # and the NUL that ends it
    validate_job(with_layer(0, command=["echo", "x" * most], env={"A": "y" * (most - 2)}))
    for layer, field, message in [
            ({"command": ["echo", "x" * (most + 1)]}, "command[1]", "131,073 bytes"),
            ({"command": "é" * (most // 2 + 1)}, "command", "131,073 bytes"),   # UTF-8
            ({"env": {"A": "y" * (most - 1)}}, "env.A", "131,073 bytes"),
            ({"env": {f"V{i}": "y" * 100_000 for i in range(11)}}, "",
             "the command and env take 1,100,0"),
    ]:
        with pytest.raises(SpecError) as info:
            validate_job(with_layer(0, **layer))
        assert info.value.field == f"job.layers[0]{'.' if field else ''}{field}"
        assert message in info.value.message


@pytest.mark.parametrize("key, words", [
    ("tags", "at most 1,000 tags"), ("hosts", "at most 1,000 patterns"),
    ("omit_hosts", "at most 1,000 patterns"), ("limits", "at most 1,000 limits"),
    ("depends_on", "at most 1,000 dependencies")])
def test_a_layers_lists_are_bounded(key, words):
    # Each is matched against every host the layer may run on, at every dispatch.
    with pytest.raises(SpecError) as info:
        validate_job(with_layer(0, **{key: ["x"] * 1_001}))
    assert info.value.field == f"job.layers[0].{key}" and info.value.message.startswith(words)
    if key in spec.LAYER_EDITABLE:              # and when a layer is changed
        with pytest.raises(SpecError) as info:
            spec.validate_layer_changes({key: ["x"] * 1_000_000})
        assert info.value.field == f"values.{key}" and info.value.message.startswith(words)
    if key != "depends_on":                     # a thousand different ones are taken
        taken = validate_job(with_layer(0, **{key: [f"x{i}" for i in range(1_000)]}))
        assert len(getattr(taken.layers[0], key)) == 1_000
