"""The job file Structs: every wrong value at every key is refused naming that key, the loose
forms a job file may use still convert, and the key tables are read off the Structs."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cuefarm import jobkeys, spec
from cuefarm.spec import SpecError, validate_job, validate_job_changes, validate_layer_changes

BASE = {"name": "j", "project": "p", "layers": [
    {"name": "a", "command": ["render", "#FRAME#"], "range": "1-10"},
    {"name": "b", "command": "comp", "range": "1-10", "depends_on": ["a"]}]}


def job_with(where: str, key: str, value: Any) -> dict:
    job = copy.deepcopy(BASE)
    (job if where == "job" else job["layers"][1])[key] = value
    return job


def refused(job: dict, call=validate_job) -> SpecError:
    with pytest.raises(SpecError) as info:
        call(job)
    err = info.value
    assert str(err) == f"{err.field}: {err.message}"
    assert err.message and "Expected `" not in err.message and "- at `$" not in err.message, err
    return err


def at_or_below(field: str, path: str) -> bool:
    return field == path or field.startswith(path + ".") or field.startswith(path + "[")


# --- strategies: values each kind of key refuses ------------------------------------------------

junk_scalars = st.one_of(st.floats(allow_nan=False), st.booleans(),
                         st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
not_whole_text = st.text(max_size=8).filter(lambda s: not jobkeys.INT_RE.fullmatch(s.strip()))
not_name = st.one_of(st.integers(), st.none(), junk_scalars, st.lists(st.text(), max_size=2),
                     st.text(max_size=140).filter(lambda s: not spec.NAME_RE.fullmatch(s)))
not_whole = st.one_of(junk_scalars.filter(lambda v: not isinstance(v, int) or isinstance(v, bool)),
                      not_whole_text, st.lists(st.integers(), max_size=2))
not_bool = st.one_of(st.integers(), st.floats(allow_nan=False), st.text(max_size=5), st.none(),
                     st.lists(st.booleans(), max_size=2))
not_a_list = st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans(),
                       st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2))
bad_entry = st.one_of(st.integers(), st.none(), st.booleans(), st.lists(st.text(), max_size=1),
                      st.text(min_size=1, max_size=20).filter(
                          lambda s: "," not in s and not spec.PATTERN_RE.fullmatch(s.strip())
                          and s.strip()))
name_list = st.one_of(not_a_list, st.none(),
                      st.lists(bad_entry, min_size=1, max_size=3).map(lambda xs: ["ok", *xs]))

WRONG: dict[tuple[str, str], st.SearchStrategy] = {
    ("job", "name"): not_name,
    ("job", "project"): not_name,
    ("job", "priority"): st.one_of(not_whole, st.none()),
    ("job", "min_slots"): st.one_of(not_whole, st.none()),
    ("job", "max_slots"): not_whole,
    ("job", "paused"): not_bool,
    ("job", "layers"): st.one_of(st.just([]), st.none(), not_a_list,
                                 st.lists(st.one_of(st.integers(), st.text(), st.none()),
                                          min_size=1, max_size=2)),
    ("layer", "name"): not_name,
    ("layer", "command"): st.one_of(st.integers(), st.none(), st.floats(), st.booleans(),
                                    st.dictionaries(st.text(max_size=2), st.text(max_size=2)),
                                    st.just(""), st.just([]),
                                    st.lists(st.one_of(st.integers(), st.none()), min_size=1,
                                             max_size=2).map(lambda xs: ["x", *xs])),
    ("layer", "range"): st.one_of(st.booleans(), st.floats(), st.none(),
                                  st.lists(st.integers(), max_size=2), st.just("1-"),
                                  st.just("")),
    ("layer", "slots"): st.one_of(st.floats(), st.booleans(), st.none(),
                                  st.lists(st.integers(), max_size=1),
                                  st.text(max_size=6).filter(
                                      lambda s: s != "all"
                                      and not spec.SLOTS_RE.fullmatch(s.strip()))),
    ("layer", "env"): st.one_of(
        not_a_list.filter(lambda v: not isinstance(v, dict)), st.none(), st.text(max_size=4),
        st.lists(st.text(max_size=3), min_size=1, max_size=2),
        st.dictionaries(st.text(max_size=6).filter(lambda s: not spec.ENV_NAME_RE.fullmatch(s)),
                        st.text(max_size=3), min_size=1, max_size=2),
        st.dictionaries(st.sampled_from(["A", "B_1"]),
                        st.one_of(st.none(), st.booleans(), st.lists(st.text(), max_size=1),
                                  st.text(max_size=3).map(lambda s: s + "\0")),
                        min_size=1, max_size=2)),
    ("layer", "cwd"): st.one_of(st.just(""), st.integers(), st.booleans(),
                                st.lists(st.text(), max_size=1)),
    ("layer", "depends_on"): st.one_of(st.integers(), st.floats(), st.booleans(), st.none(),
                                       st.lists(st.one_of(st.integers(), st.none(),
                                                          st.lists(st.text(), max_size=1)),
                                                min_size=1, max_size=2)),
    ("layer", "tags"): name_list,
    ("layer", "hosts"): name_list,
    ("layer", "omit_hosts"): name_list,
    ("layer", "limits"): name_list,
    ("layer", "os"): st.one_of(st.integers(), st.booleans(), st.lists(st.text(), max_size=1),
                               st.text(max_size=8).filter(lambda s: s not in spec.OS_NAMES)),
    ("layer", "requirements"): st.one_of(st.integers(), st.booleans(),
                                         st.lists(st.text(), max_size=1), st.just("host.cores >")),
    ("layer", "reservations"): st.one_of(st.integers(), st.none(), st.booleans(),
                                         st.just("host.licence=1"), st.just("cores")),
    ("layer", "outputs"): st.one_of(not_a_list.filter(lambda v: not isinstance(v, str)),
                                    st.none(), st.just(["/o"] * (spec.MAX_OUTPUTS + 1)),
                                    st.lists(st.one_of(st.integers(), st.none(), st.just(" "),
                                                       st.just("a\0b"), st.just("x" * 4097)),
                                             min_size=1, max_size=2)),
}
for name, k in spec.LAYER_FIELDS.items():
    if k.lo is not None and name != "slots":
        WRONG[("layer", name)] = st.one_of(not_whole, st.none())


def test_every_key_has_wrong_values_to_try():
    assert {n for w, n in WRONG if w == "job"} == set(spec.JOB_FIELDS) - {"notify"}
    assert {n for w, n in WRONG if w == "layer"} == set(spec.LAYER_FIELDS)


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_a_wrong_value_at_any_key_is_refused_naming_that_key(data):
    where, key = data.draw(st.sampled_from(sorted(WRONG)))
    value = data.draw(WRONG[(where, key)])
    err = refused(job_with(where, key, value))
    path = "job" if where == "job" else "job.layers[1]"
    if key == "reservations" and isinstance(value, str):
        assert err.field == f"{path}.reservations"
    else:
        assert at_or_below(err.field, f"{path}.{key}"), (key, value, str(err))


BOUNDED = sorted((w, n, k.lo, k.hi) for w, table in (("job", spec.JOB_FIELDS),
                                                      ("layer", spec.LAYER_FIELDS))
                 for n, k in table.items() if k.lo is not None)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), as_text=st.booleans())
def test_a_whole_number_out_of_range_is_refused_with_its_bounds(data, as_text):
    where, key, lo, hi = data.draw(st.sampled_from(BOUNDED))
    n = data.draw(st.one_of(st.integers(-(10 ** 17), lo - 1), st.integers(hi + 1, 10 ** 17)))
    err = refused(job_with(where, key, str(n) if as_text else n))
    assert err.field == ("job" if where == "job" else "job.layers[1]") + f".{key}"
    if not (key == "slots" and as_text):   # "-1", "10000": no slots form ("N", "N+") at all
        assert err.message == f"{n} is out of range {lo}..{hi}"


@settings(max_examples=200, deadline=None)
@given(data=st.data(), as_text=st.booleans())
def test_a_whole_number_in_range_is_taken_as_written(data, as_text):
    where, key, lo, hi = data.draw(st.sampled_from(BOUNDED))
    n = data.draw(st.integers(lo, hi))
    job = job_with(where, key, f" {n} " if as_text else n)
    if key == "min_slots":
        job["max_slots"] = max(n, 1)
    done = validate_job(job, expand=False)
    assert getattr(done if where == "job" else done.layers[1], key) == n


@pytest.mark.parametrize("field, value, fragment", [
    ("job", {"job": "x"}, "whole number"),
    ("job", {"job": 0}, "out of range 1.."),
    ("job", {"job": True}, "whole number"),
    ("per_frame", {"layer": "a", "per_frame": "yes"}, "true or false"),
    ("layer", {"layer": ["a"]}, "layer name"),
    ("per_frame", {"job": 3, "per_frame": True}, "within one job"),
    ("lyer", {"lyer": "a"}, "unknown key 'lyer'"),
])
def test_a_wrong_dependency_mapping_names_its_key(field, value, fragment):
    err = refused(job_with("layer", "depends_on", [value]))
    assert err.field == f"job.layers[1].depends_on[0].{field}"
    assert fragment in err.message


@pytest.mark.parametrize("given, expect", [
    ({"tags": "gpu, linux,gpu"}, {"tags": ["gpu", "linux"]}),
    ({"hosts": "render-*,lab[0-9]"}, {"hosts": ["render-*", "lab[0-9]"]}),
    ({"depends_on": "a"}, {"depends_on": [spec.Dependency("layer", layer="a")]}),
    ({"depends_on": {"layer": "a", "per_frame": True}},
     {"depends_on": [spec.Dependency("frame", layer="a")]}),
    ({"depends_on": [{"job": "12", "layer": "x"}]},
     {"depends_on": [spec.Dependency("job", layer="x", job=12)]}),
    ({"outputs": "/o/b.####.exr"}, {"outputs": ["/o/b.####.exr"]}),
    ({"range": 7}, {"range": "7"}),
    ({"slots": " 3+ "}, {"slots": 3, "slots_mode": "plus"}),
    ({"slots": "all"}, {"slots": 1, "slots_mode": "all"}),
    ({"env": {"N": 3, "F": 1.5}}, {"env": {"N": "3", "F": "1.5"}}),
    ({"reservations": "host.processors=4+,host.memory=8000,host.gpus=1"},
     {"slots": 4, "slots_mode": "plus", "memory": 8000, "gpus": 1}),
    ({"memory": "2048", "timeout": "60"}, {"memory": 2048, "timeout": 60}),
])
def test_loose_forms_a_job_file_may_use(given, expect):
    job = copy.deepcopy(BASE)
    job["layers"][1].update(given)
    before = copy.deepcopy(job)
    layer = validate_job(job).layers[1]
    assert {k: getattr(layer, k) for k in expect} == expect
    assert job == before                        # the caller's dict is left as it was


@pytest.mark.parametrize("given, field, fragment", [
    ({"reservations": "host.processors=9999"}, "reservations", "out of range"),
    ({"reservations": "host.memory=lots"}, "memory", "whole number"),
    ({"reservations": "host.gpus=1", "gpus": 2}, "gpus", "given both"),
])
def test_reservations_name_where_to_look(given, field, fragment):
    job = copy.deepcopy(BASE)
    job["layers"][1].update(given)
    err = refused(job)
    assert err.field == f"job.layers[1].{field}" and fragment in err.message


# --- edits -------------------------------------------------------------------------------------

@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_a_wrong_value_in_a_layer_edit_is_refused_naming_that_key(data):
    key = data.draw(st.sampled_from(sorted(spec.LAYER_EDITABLE)))
    value = data.draw(WRONG[("layer", key)].filter(
        lambda v: not (key in ("os", "requirements") and v is None)))
    err = refused({key: value}, validate_layer_changes)
    assert at_or_below(err.field, f"values.{key}"), (key, value, str(err))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_a_wrong_value_in_a_job_edit_is_refused_naming_that_key(data):
    key = data.draw(st.sampled_from(sorted(spec.JOB_EDITABLE)))
    value = data.draw(WRONG[("job", key)])
    err = refused({key: value}, validate_job_changes)
    assert err.field == f"values.{key}", (key, value, str(err))


@pytest.mark.parametrize("values, field, fragment", [
    ({}, "values", "give at least one of"),
    ([], "values", "give at least one of"),
    ({"name": "x"}, "values.name", "unknown key 'name' (allowed: max_slots, min_slots"),
    ({5: 1}, "values.5", "unknown key 5"),
])
def test_job_edits_refuse_what_cannot_be_changed(values, field, fragment):
    err = refused(values, validate_job_changes)
    assert err.field == field and fragment in err.message


def test_edits_return_only_the_columns_given():
    assert validate_job_changes({"priority": "70", "max_slots": None}) == {
        "priority": 70, "max_slots": None}
    assert validate_layer_changes({"slots": "2+", "tags": "a,b,a", "os": None,
                                   "requirements": None}) == {
        "slots": 2, "slots_mode": "plus", "tags": ["a", "b"], "os": None,
        "requirements": None}


# --- the key tables are the Structs' -----------------------------------------------------------

@pytest.mark.parametrize("kind, table", [(jobkeys.JobFile, spec.JOB_FIELDS),
                                         (jobkeys.LayerFile, spec.LAYER_FIELDS),
                                         (jobkeys.DependencyFile, spec.DEPENDENCY_FIELDS)])
def test_the_key_tables_are_read_off_the_structs(kind, table):
    fields = msgspec.structs.fields(kind)
    assert [f.name for f in fields] == list(table)
    for f in fields:
        k = table[f.name]
        assert k.value and (k.doc or f.name == "notify"), f.name
        if f.required:
            assert k.default is spec.REQUIRED
        else:
            made = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
            assert k.default == made, f.name
    defaults = msgspec.convert({k.name: "x" for k in table.values()
                                if k.default is spec.REQUIRED and k.name != "layers"}
                               | ({"layers": [{"name": "l", "command": "c", "range": "1"}]}
                                  if kind is jobkeys.JobFile else {}), kind)
    for k in table.values():
        if k.default is not spec.REQUIRED:
            assert getattr(defaults, k.name) == k.default


def test_tuples_from_a_python_caller_are_taken_as_the_lists_the_wire_makes_of_them():
    job = {"name": "j", "layers": ({"name": "a", "command": ("render", "#FRAME#"),
                                    "range": "1-2", "chunk": "2", "tags": ("gpu",),
                                    "depends_on": ({"job": "7"},)},)}
    layer = validate_job(job).layers[0]
    assert (layer.command, layer.chunk, layer.tags) == (["render", "#FRAME#"], 2, ["gpu"])
    assert layer.depends_on == [spec.Dependency("job", job=7)]
