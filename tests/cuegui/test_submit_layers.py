"""The submit dialog with several layers: each with its own command, range, chunk, environment
and layers it waits for; errors across layers shown before sending; a job file written from
the dialog that `cuefarm submit` takes back unchanged; a paused multi-layer job submitted to a
real supervisor and read back through the client API."""

from __future__ import annotations

import json

import pytest

from cuefarm.cli.submit import load_jobs
from cuegui.connection import Connection
from cuegui.views.submit import SubmitDialog
from cuegui.views.submitlayers import cross_layer_errors, parse_env
from cuegui.window import MainWindow
from tests.cuegui.test_live import PY, wait


def three_layers(d: SubmitDialog) -> None:
    d.set_values(name="shot020_fx", command=f"{PY} -c \"print('sim #FRAME#')\"", range="1-6",
                 chunk=2, layer_name="sim", env="SIM_QUALITY=high\nOCIO = /show/ocio.cfg")
    d.add_layer("render", command=f"{PY} -c \"print('render #FRAME#')\"", range="1-6",
                chunk=1, after="sim", env="", outputs="/shots/fx/render.####.png")
    d.add_layer("comp", command=f"{PY} -c \"print('comp #FRAME#')\"", range="1-6",
                after="sim, render", max_retries=3)


@pytest.fixture
def dialog(qtbot):
    d = SubmitDialog(["fx"], project="fx")
    qtbot.addWidget(d)
    d.show()
    return d


def test_layers_keep_their_own_values(dialog):
    three_layers(dialog)
    assert [dialog.layer_tabs.tabText(i) for i in range(3)] == ["sim", "render", "comp"]
    job = dialog.job()
    sim, render, comp = job["layers"]
    assert sim == {"name": "sim", "command": f"{PY} -c \"print('sim #FRAME#')\"",
                   "range": "1-6", "chunk": 2, "slots": 1, "memory": 0, "max_retries": 1,
                   "env": {"SIM_QUALITY": "high", "OCIO": "/show/ocio.cfg"}}
    assert render["depends_on"] == ["sim"] and render["chunk"] == 1 and "env" not in render
    assert render["outputs"] == ["/shots/fx/render.####.png"] and "outputs" not in sim
    assert comp["depends_on"] == ["sim", "render"] and comp["max_retries"] == 3
    assert "outputs" not in comp        # a new layer does not write the images of the last
    # Switching back shows the first layer's fields as they were.
    dialog.select_layer(0)
    assert dialog.fields["chunk"].value() == 2
    assert dialog.fields["layer_name"].text() == "sim"
    assert "SIM_QUALITY=high" in dialog.fields["env"].toPlainText()
    assert dialog.validate(every_field=True)
    # Removing a layer: the others stop waiting for it.
    dialog.remove_layer(0)
    assert [layer["name"] for layer in dialog.job()["layers"]] == ["render", "comp"]
    assert dialog.job()["layers"][1]["depends_on"] == ["render"]
    assert "depends_on" not in dialog.job()["layers"][0]
    assert dialog.validate(every_field=True)
    dialog.remove_layer()
    assert not dialog.remove_layer()
    assert dialog.status.text() == "A job needs at least one layer"


@pytest.mark.parametrize("layer, values, key, says", [
    (1, {"range": "1-6x"}, "range", "range"),
    (1, {"layer_name": "sim"}, "layer_name", "duplicate layer name 'sim'"),
    (2, {"command": ""}, "command", "the command is empty"),
    (1, {"after": "comp"}, "after", "dependency cycle"),
    (2, {"after": "nowhere"}, "after", "no layer named 'nowhere'"),
    (0, {"env": "JUST TEXT"}, "env", "NAME=value"),
    (0, {"env": "9BAD=1"}, "env", "not a valid environment variable name"),
])
def test_errors_in_any_layer_stop_the_submit(dialog, qtbot, layer, values, key, says):
    three_layers(dialog)
    dialog.select_layer(layer)
    dialog.set_values(**values)
    assert says in dialog.error_at(key), (dialog.error_at(key), dialog.status.text())
    assert not dialog.submit_button.isEnabled()
    # Looking at another layer: the wrong one is marked, and the status line says why.
    other = 0 if layer else 1
    dialog.select_layer(other)
    assert layer in dialog.elsewhere
    assert says in dialog.status.text() and dialog.layer_tabs.tabToolTip(layer)
    sent = []
    dialog.submit_wanted.connect(sent.append)
    dialog._submit()
    assert sent == []
    # Submit shows the layer that is wrong.
    assert dialog.current == layer and says in dialog.error_at(key)


def test_cross_layer_checks_and_environment_parsing():
    assert cross_layer_errors(["a", "b"], [[], ["a"]]) == {}
    found = cross_layer_errors(["a", "b", "c"], [["c"], ["a"], ["b"]])
    assert set(found) == {0, 1, 2} and all("cycle" in f["after"] for f in found.values())
    assert parse_env("A=1\n\n B = two words ") == ({"A": "1", "B": "two words"}, "")
    assert parse_env("A=1\nA=2")[1] == "line 2: A is set twice"
    assert parse_env("=x")[1].startswith("line 1")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_saved_job_file_reads_back_unchanged(dialog, tmp_path, suffix):
    three_layers(dialog)
    path = dialog.save_job_file(str(tmp_path / f"fx{suffix}"))
    assert path and path.endswith(suffix)
    assert "Saved" in dialog.status.text()
    assert load_jobs(path) == [dialog.job()]
    if suffix == ".json":
        assert json.loads(open(path).read()) == dialog.job()


def test_a_job_file_is_not_written_while_the_form_is_wrong(dialog, tmp_path):
    three_layers(dialog)
    dialog.set_values(range="")
    assert dialog.save_job_file(str(tmp_path / "bad.yaml")) is None
    assert not (tmp_path / "bad.yaml").exists()
    assert "fix the errors" in dialog.status.text()
    dialog.set_values(range="1-3")
    assert dialog.save_job_file(str(tmp_path / "no" / "such" / "dir.yaml")) is None
    assert dialog.status.text().startswith("Not saved:")


def test_a_paused_multi_layer_job_reaches_the_supervisor_and_its_file_submits_the_same(
        qtbot, sqlite_farm, tmp_path):
    farm = sqlite_farm
    client = farm.client()
    conn = Connection(farm.address, idle_ping=1.0)
    win = MainWindow(conn, mode="admin")
    qtbot.addWidget(win)
    win.show()
    conn.start()
    wait(qtbot, lambda: win.connection_state == "connected")
    try:
        dialog = win.open_submit()
        three_layers(dialog)
        dialog.paused.setChecked(True)
        path = dialog.save_job_file(str(tmp_path / "fx.yaml"))
        sent = dialog.job()
        dialog.submit_button.click()
        wait(qtbot, lambda: any(j["name"] == "shot020_fx" for j in win.jobs_model.all_rows()))
        [job] = [j for j in client.jobs() if j["name"] == "shot020_fx"]
        # Stored paused: never active, so not a frame of it could start meanwhile.
        assert client.job(job["id"])["state"] == "PAUSED"
        layers = {row["name"]: row for row in client.layers(job["id"])}
        assert set(layers) == {"sim", "render", "comp"}
        for want in sent["layers"]:
            got = layers[want["name"]]
            assert got["range"] == want["range"] and got["chunk"] == want["chunk"]
            assert got["max_retries"] == want["max_retries"]
            assert [d.get("layer") for d in got["depends_on"]] == want.get("depends_on", [])
            assert got["outputs"] == want.get("outputs", [])
        # The file written by the dialog, submitted by the command line: the same layers.
        result = farm.cli("submit", path)
        assert result.exit_code == 0, result.output
        [again] = [j for j in client.jobs() if j["name"] == "shot020_fx"
                   and j["id"] != job["id"]]
        assert client.job(again["id"])["state"] == "PAUSED"       # the file says so too
        assert [(r["name"], r["range"], r["chunk"], r["depends_on"])
                for r in client.layers(again["id"])] == \
            [(r["name"], r["range"], r["chunk"], r["depends_on"])
             for r in client.layers(job["id"])]
    finally:
        win.close()
