"""The submit dialog checks with the supervisor's own rules and shows errors at their field."""

from __future__ import annotations

import pytest

from cuegui.views.submit import ADVANCED, SubmitDialog, all_errors, parse_depends, widget_key


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
    ("os", "solaris", "os"),
    ("hosts", "render-01, bad/host", "hosts"),
    ("omit_hosts", "ok-*, not/this", "omit_hosts"),
    ("requirements", "host.memory >=", "requirements"),
    ("limits", "nuke, bad limit!", "limits"),
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


def test_a_fresh_form_shows_no_error_until_a_field_is_edited(qtbot):
    d = SubmitDialog(["feature"])
    qtbot.addWidget(d)
    d.show()
    assert not any(d.error_at(k) for k in d.errors)
    assert d.submit_button.isEnabled()
    assert not d.advanced.isVisible()
    # Editing one field checks that field only: the empty command is not flagged yet.
    qtbot.keyClicks(d.fields["name"], "bad name!")
    qtbot.waitUntil(lambda: bool(d.error_at("name")))
    assert not d.error_at("command") and not d.error_at("range")
    assert d.fields["name"].property("invalid") is True


def test_submit_shows_every_error_at_its_field(qtbot):
    d = SubmitDialog(["feature"])
    qtbot.addWidget(d)
    d.show()
    d.fields["os"].setEditText("plan9")
    d.fields["limits"].setText("bad limit!")
    d.touched.clear()
    with qtbot.assertNotEmitted(d.submit_wanted):
        d.submit_button.click()
    shown = {k for k in d.errors if d.error_at(k)}
    assert shown == {"name", "command", "range", "os", "limits"}
    assert "plan9" in d.error_at("os")
    # An error in the advanced section opens it.
    assert d.advanced.isVisible() and d.advanced_button.isChecked()
    assert not d.submit_button.isEnabled()
    d.set_values(name="shot", command="render", range="1-3", os="linux", limits="nuke")
    assert not any(d.error_at(k) for k in d.errors) and d.submit_button.isEnabled()


def test_the_advanced_fields_reach_the_job(dialog, qtbot):
    dialog.set_values(gpus=2, os="windows", hosts="render-*, ws-01", omit_hosts="old-*",
                      requirements="host.memory >= 32000", limits="nuke, arnold", timeout=3600,
                      timeout_no_output=600)
    layer = dialog.job()["layers"][0]
    assert {k: layer[k] for k in ADVANCED} == {
        "gpus": 2, "os": "windows", "hosts": ["render-*", "ws-01"], "omit_hosts": ["old-*"],
        "requirements": "host.memory >= 32000", "limits": ["nuke", "arnold"], "timeout": 3600,
        "timeout_no_output": 600}
    with qtbot.waitSignal(dialog.submit_wanted) as sent:
        dialog.submit_button.click()
    assert sent.args[0]["layers"][0]["os"] == "windows"


def test_all_errors_finds_each_wrong_field():
    job = {"name": "bad name!", "project": "p", "layers": [
        {"name": "main", "command": "", "range": "1-3x", "tags": ["ok", "no good"]}]}
    assert set(all_errors(job)) == {"name", "command", "range", "tags"}
    assert all_errors({"name": "ok", "project": "p", "layers": [
        {"name": "main", "command": "c", "range": "1"}]}) == {}
