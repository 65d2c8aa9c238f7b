"""The wrangling actions of the window against a real supervisor: frames marked done, moved to
the front, staggered, retried with more memory and resubmitted; a layer's properties; a
dependency added with the wizard; each read back through the client API.  Frames run on a
simulated worker speaking the real protocol, so the test decides when each one ends."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QItemSelectionModel
from qtpy.QtWidgets import QMessageBox

from cuefarm import protocol as p
from cuegui.connection import Connection
from cuegui.views.wrangle import LayerPropertiesDialog
from cuegui.window import MainWindow
from tests.cuegui.test_live import select_job, trigger, wait
from tests.supervisor.test_wire import Peer, register


class Answers:
    """What a user types into the action prompts: `integers` in order."""

    def __init__(self):
        self.integers: list[int] = []
        self.offered: list[int] = []

    def integer(self, title, label, value, lo, hi):
        self.offered.append(value)
        return self.integers.pop(0) if self.integers else None


@pytest.fixture
def wrangler(qtbot, sqlite_farm):
    """A window (wrangler mode, every question answered yes) on a supervisor with no worker."""
    farm = sqlite_farm
    conn = Connection(farm.address, idle_ping=1.0)
    asked: list[str] = []
    win = MainWindow(conn, mode="wrangler", prompts=Answers(),
                     confirm=lambda parent, q: asked.append(q) or True)
    win.asked = asked
    qtbot.addWidget(win)
    win.show()
    conn.start()
    wait(qtbot, lambda: win.connection_state == "connected")
    yield farm, win
    win.close()


def select_frames(qtbot, win, numbers: list[int], layer: str | None = None) -> None:
    ids = [f["id"] for f in win.frames_model.all_rows()
           if f["number"] in numbers and (layer is None or f["layer"] == layer)]
    view = win.frames_view
    view.clearSelection()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for fid in ids:
        index = view.model().index(view.table_model().position(fid), 0)
        view.selectionModel().select(index, flags)
    wait(qtbot, lambda: len(win.frames_view.selected_rows()) == len(ids))


def order(client, job_id, layer=None):
    return [f["number"] for f in client.frames(job_id, layer)]


def test_front_stagger_and_mark_done_from_the_frames_menu(qtbot, wrangler):
    farm, win = wrangler
    client = farm.client()
    [job_id] = client.submit({"name": "queue", "project": "gui", "layers": [
        {"name": "a", "command": "x", "range": "1-6"},
        {"name": "b", "command": "x", "range": "1-2", "depends_on": ["a"]}]})
    select_job(qtbot, win, job_id)
    queue = win.action_set.queue
    select_frames(qtbot, win, [4, 6], "a")
    trigger(qtbot, queue["front"])
    wait(qtbot, lambda: order(client, job_id, "a") == [4, 6, 1, 2, 3, 5])

    select_frames(qtbot, win, [1, 2, 3, 4, 5, 6], "a")
    win.prompts.integers = [3]
    trigger(qtbot, queue["stagger"])
    wait(qtbot, lambda: order(client, job_id, "a") == [4, 2, 6, 3, 1, 5])
    # Cancelled: nothing is sent.
    trigger(qtbot, queue["stagger"])
    qtbot.wait(500)
    assert order(client, job_id, "a") == [4, 2, 6, 3, 1, 5]

    # Done frames satisfy what waits: layer b runs once all of a is done.
    select_frames(qtbot, win, [1, 2, 3, 4, 5, 6], "a")
    trigger(qtbot, queue["done"])
    assert win.asked[-1].startswith("Mark 6 frames done?")
    wait(qtbot, lambda: {f["state"] for f in client.frames(job_id, "b")} == {"WAITING"})
    assert {f["state"] for f in client.frames(job_id, "a")} == {"EATEN"}
    layer_a = client.layers(job_id)[0]
    assert (layer_a["eaten"], layer_a["waiting"], layer_a["depend"]) == (6, 0, 0)
    # Finished frames have no place in the queue: the actions say so.
    select_frames(qtbot, win, [1], "a")
    wait(qtbot, lambda: not queue["front"].isEnabled())
    assert "none of the selected frames is waiting" in queue["front"].toolTip()
    assert not queue["done"].isEnabled()


def test_retry_with_more_memory_and_resubmit(qtbot, wrangler):
    farm, win = wrangler
    client = farm.client()
    [job_id] = client.submit({"name": "memory", "project": "gui", "layers": [
        {"name": "r", "command": "x", "range": "1-2", "memory": 1000, "max_retries": 0}]})
    w = Peer(farm.port + 1)
    register(w, "sim1", slots=1)
    first = w.recv_type(p.Launch)
    w.send(p.Complete([p.Completion(first.attempt_id, 137, 1.0, 2.0,
                                    peak_rss=1800 * 1024 * 1024)]))
    second = w.recv_type(p.Launch)
    w.send(p.Complete([p.Completion(second.attempt_id, 0, 1.0, 2.0)]))
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: {f["state"] for f in win.frames_model.all_rows()} == {"DEAD",
                                                                              "SUCCEEDED"})
    dead = next(f for f in win.frames_model.all_rows() if f["state"] == "DEAD")
    done = next(f for f in win.frames_model.all_rows() if f["state"] == "SUCCEEDED")
    queue = win.action_set.queue

    # The prompt offers 1.5 times the peak (1800 MB); a reservation that would not grow is
    # refused and shown, and nothing changes.
    select_frames(qtbot, win, [dead["number"]])
    win.prompts.integers = [900]
    trigger(qtbot, queue["memory"])
    assert win.prompts.offered[-1] == 2700
    # Shown in a message box (the status bar's line may already tell of the job's dead frame,
    # whose event can come after the refusal).
    wait(qtbot, lambda: any("already reserves 1000 MB" in box.text()
                            for box in win.findChildren(QMessageBox)))
    assert client.layers(job_id)[0]["memory"] == 1000
    win.prompts.integers = [2700]
    trigger(qtbot, queue["memory"])
    again = w.recv_type(p.Launch)
    assert (again.frame_id, again.memory_mb) == (dead["id"], 2700)
    assert client.layers(job_id)[0]["memory"] == 2700
    w.send(p.Complete([p.Completion(again.attempt_id, 0, 3.0, 4.0)]))

    # Resubmit: a succeeded frame runs again.
    wait(qtbot, lambda: client.job(job_id)["state"] == "FINISHED")
    select_frames(qtbot, win, [done["number"]])
    trigger(qtbot, queue["resubmit"])
    assert win.asked[-1].startswith("Resubmit frame")
    rerun = w.recv_type(p.Launch)
    assert rerun.frame_id == done["id"] and rerun.attempt_id == f"{done['id']}.2"
    w.close()


def test_layer_properties_dialog_applies_changes_and_shows_refusals(qtbot, wrangler):
    farm, win = wrangler
    client = farm.client()
    [job_id] = client.submit({"name": "props", "project": "gui", "layers": [
        {"name": "render", "command": "x", "range": "1-4", "memory": 2048, "tags": ["linux"],
         "slots": 2}]})
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: win.layers_model.rowCount() == 1)
    win.layers_view.select_id(list(win.layers_model.all_rows())[0]["id"])
    trigger(qtbot, win.action_set.layers["properties"])
    d = win.wrangle_actions.dialog
    f = d.fields
    assert (f["memory"].value(), f["tags"].text(), f["slots"].text()) == (2048, "linux", "2")
    # Bad input is shown at its field; nothing is sent.
    f["slots"].setText("lots")
    d.apply_button.click()
    assert "slots are a number" in d.error_at("slots")
    assert d.isVisible()
    # A limit the farm does not have: the supervisor's refusal, at its field.
    f["slots"].setText("4+")
    f["limits"].setText("nuke")
    d.apply_button.click()
    wait(qtbot, lambda: "no limit named 'nuke'" in d.error_at("limits"))
    assert d.isVisible() and client.layers(job_id)[0]["slots"] == 2
    f["limits"].setText("")
    f["range"].setText("1-x")
    d.apply_button.click()
    assert "cannot parse '1-x'" in d.error_at("range")
    # None of its frames has run: the range and chunk change with the rest.
    f["range"].setText("1-20")
    f["chunk"].setValue(5)
    f["memory"].setValue(8192)
    f["tags"].setText("linux, gpu")
    d.apply_button.click()
    wait(qtbot, lambda: not d.isVisible())
    layer = client.layers(job_id)[0]
    assert (layer["memory"], layer["tags"], layer["slots"]) == (8192, ["linux", "gpu"], "4+")
    assert layer["timeout"] == 0 and layer["limits"] == []
    assert (layer["range"], layer["chunk"], layer["frames_total"]) == ("1-20", 5, 4)
    # The window shows the frames made again.
    wait(qtbot, lambda: sorted(f["frames"] for f in win.frames_model.all_rows())
         == ["1-5", "11-15", "16-20", "6-10"])
    # Once a frame has run, the range is fixed: the dialog says so.
    ran = LayerPropertiesDialog(win.connection, job_id, {**layer, "succeeded": 1}, win)
    qtbot.addWidget(ran)
    assert not ran.fields["range"].isEnabled() and not ran.fields["chunk"].isEnabled()
    assert "have run" in ran.fields["range"].toolTip()

    # Artists may not change layers: the action says why.
    win.set_mode("artist")
    wait(qtbot, lambda: not win.action_set.layers["properties"].isEnabled())
    assert "for wranglers" in win.action_set.layers["properties"].toolTip()


def test_dependency_wizard_adds_a_dependency_and_the_graph_shows_both_sides(qtbot, wrangler):
    farm, win = wrangler
    client = farm.client()
    [plates] = client.submit({"name": "plates", "project": "gui", "layers": [
        {"name": "scan", "command": "x", "range": "1-3"}]})
    [comp] = client.submit({"name": "comp", "project": "gui", "layers": [
        {"name": "comp", "command": "x", "range": "1-4"}]})
    select_job(qtbot, win, comp)
    trigger(qtbot, win.action_set.depend["adddep"])
    d = win.wrangle_actions.dialog
    d.set_kind("frame")
    d.select_target(plates)
    wait(qtbot, lambda: d.target_layer_box.count() == 1)
    d.layer_box.setCurrentText("comp")
    # Frame 4 has nothing to wait for in a 1-3 layer: refused, shown, the dialog stays.
    d.add_button.click()
    wait(qtbot, lambda: "has frames 4" in d.error_at("target_layer"))
    assert d.isVisible() and client.dependencies(comp) == []
    d.set_kind("layer")
    d.add_button.click()
    wait(qtbot, lambda: not d.isVisible())
    [dep] = client.dependencies(comp)
    assert (dep["kind"], dep["layer"], dep["target_job_id"], dep["target_layer"]) == (
        "layer", "comp", plates, "scan")
    assert {f["state"] for f in client.frames(comp)} == {"DEPEND"}
    # The comp's graph shows what it waits for; the plates' graph, what waits on them.
    graph = win.job_panel.graph
    wait(qtbot, lambda: any(e.dep.get("id") == dep["id"] for e in graph.edges()))
    select_job(qtbot, win, plates)
    wait(qtbot, lambda: any(e.dep.get("dependant") and e.dep.get("job_id") == comp
                            for e in graph.edges()))
    # A circle is refused in the wizard.
    trigger(qtbot, win.action_set.depend["adddep"])
    d = win.wrangle_actions.dialog
    d.select_target(comp)
    wait(qtbot, lambda: d.target_box.currentData() == comp)
    d.add_button.click()
    wait(qtbot, lambda: "circle" in d.error_at("target_job_id"))
    assert client.dependencies(plates) == []
    d.close()


def test_layer_stagger_and_mark_layer_done_from_the_layers_menu(qtbot, wrangler):
    farm, win = wrangler
    client = farm.client()
    [job_id] = client.submit({"name": "layers", "project": "gui", "layers": [
        {"name": "sim", "command": "x", "range": "1-6"},
        {"name": "render", "command": "x", "range": "1-20", "chunk": 5,
         "depends_on": ["sim"]}]})
    [later] = client.submit({"name": "later", "project": "gui", "layers": [
        {"name": "comp", "command": "x", "range": "1-2"}]})
    client.add_dependency("job", later, job_id)
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: win.layers_model.rowCount() == 2)
    layers = {r["name"]: r for r in win.layers_model.all_rows()}
    win.layers_view.select_id(layers["sim"]["id"])
    win.prompts.integers = [2]
    trigger(qtbot, win.action_set.layers["stagger"])
    wait(qtbot, lambda: order(client, job_id, "sim") == [1, 3, 5, 2, 4, 6])

    # Every unfinished frame of both layers done: the job finishes, what waits on it runs.
    trigger(qtbot, win.action_set.layers["done"])
    wait(qtbot, lambda: {f["state"] for f in client.frames(job_id, "sim")} == {"EATEN"})
    assert {f["state"] for f in client.frames(job_id, "render")} == {"WAITING"}
    win.layers_view.select_id(layers["render"]["id"])
    trigger(qtbot, win.action_set.layers["done"])
    assert win.asked[-1].startswith('Mark every unfinished frame of layer "render" done?')
    wait(qtbot, lambda: client.job(job_id)["state"] == "FINISHED")
    job = client.job(job_id)
    assert (job["eaten"], job["waiting"], job["depend"]) == (6 + 4, 0, 0)
    assert {f["state"] for f in client.frames(later)} == {"WAITING"}
    # A finished layer has nothing left to mark or stagger.
    wait(qtbot, lambda: not win.action_set.layers["done"].isEnabled())
    assert "the layer has finished" in win.action_set.layers["done"].toolTip()
    assert not win.action_set.layers["stagger"].isEnabled()
