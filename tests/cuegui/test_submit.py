"""The submit dialog checks with the supervisor's own rules and shows errors at their field."""

from __future__ import annotations

import pytest

from cuegui.views.submit import SubmitDialog, parse_depends, widget_key


@pytest.fixture
def dialog(qtbot):
    d = SubmitDialog(["feature"])
    qtbot.addWidget(d)
    d.set_values(name="shot010", command="render #FRAME#", range="1-10")
    return d


@pytest.mark.parametrize("field, value, key", [
    ("name", "bad name!", "name"),
    ("range", "1-10x", "range"),
    ("range", "", "range"),
    ("command", "", "command"),
    ("slots", "lots", "slots"),
    ("tags", "gpu, bad tag!", "tags"),
    ("project", "my project", "project"),
    ("depends_on", "comp", "depends_on"),
])
def test_an_error_shows_at_its_field(dialog, field, value, key):
    assert dialog.submit_button.isEnabled()
    dialog.set_values(**{field: value})
    assert dialog.error_at(key), dialog.job()
    assert not dialog.submit_button.isEnabled()
    assert dialog.fields[key].property("invalid") is True
    others = [k for k in dialog.errors if k != key and dialog.error_at(k)]
    assert not others


def test_a_valid_form_builds_the_job(dialog, qtbot):
    dialog.set_values(chunk=5, slots="4+", memory=2048, tags="gpu, linux", depends_on="12, 14/comp",
                      min_slots=2, max_slots=10, priority=70)
    job = dialog.job()
    assert job == {"name": "shot010", "project": "feature", "priority": 70, "min_slots": 2,
                   "max_slots": 10, "layers": [{
                       "name": "main", "command": "render #FRAME#", "range": "1-10", "chunk": 5,
                       "slots": "4+", "memory": 2048, "max_retries": 1, "tags": ["gpu", "linux"],
                       "depends_on": [{"job": 12}, {"job": 14, "layer": "comp"}]}]}
    with qtbot.waitSignal(dialog.submit_wanted) as sent:
        dialog.submit_button.click()
    assert sent.args[0] == job


def test_an_answer_from_the_supervisor_shows_at_its_field(dialog):
    dialog.failed("no job 99 to wait for", "jobs[0].layers[0].depends_on[0].job")
    assert "no job 99" in dialog.error_at("depends_on")
    dialog.failed("the supervisor is busy", None)
    assert "busy" in dialog.status.text()


def test_field_mapping_and_dependencies():
    assert widget_key("job.layers[0].tags[1]") == "tags"
    assert widget_key("jobs[0].layers[0].range") == "range"
    assert widget_key("job.max_slots") == "max_slots"
    assert widget_key(None) == "name"
    assert parse_depends("12, 14/comp x") == [{"job": 12}, {"job": 14, "layer": "comp"}, "x"]
