"""Comments, layer statistics, host history, tag groups and the jumps between a frame, its
host and its job, in the window against a real supervisor and real workers: each action's
change is read back through the client API."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt

from cuefarm import CueFarmError
from cuegui.connection import Connection
from cuegui.window import MainWindow
from tests.conftest import ROLES
from tests.cuegui.test_live import QUICK, SLOW, Prompts, job_spec, select_job, wait
from tests.farm import running_farm

HISTORY = {"CUEFARM_SUPERVISOR_HOST_HISTORY_STEP": "1",
           "CUEFARM_SUPERVISOR_FIGURES_INTERVAL": "0.5"}


@pytest.fixture
def notes(qtbot, sqlite_url, tmp_path):
    """Roles (boss an admin, others artists), two workers (render02 tagged gpu), a history
    step of one second, and a window as the user running the test (an admin: the
    supervisor's own user)."""
    with running_farm(sqlite_url, tmp_path, {**ROLES, **HISTORY}) as farm:
        farm.start_rqd("render01", 2)
        farm.start_rqd("render02", 2)
        farm.wait_hosts_up(["render01", "render02"])
        farm.client().host_tags("render02", add=["gpu"])
        conn = Connection(farm.address, idle_ping=1.0)
        win = MainWindow(conn, mode="admin", prompts=Prompts(),
                         confirm=lambda parent, q: True)
        qtbot.addWidget(win)
        win.show()
        conn.start()
        wait(qtbot, lambda: win.connection_state == "connected" and win.hosts_model.total == 2)
        yield farm, win
        win.close()


def test_job_comments_are_added_read_back_and_pushed_from_another_user(qtbot, notes):
    farm, win = notes
    client = farm.client()
    [job_id] = client.submit(job_spec("noted", QUICK, "1-2"))
    select_job(qtbot, win, job_id)
    panel = win.notes.job_comments
    wait(qtbot, lambda: panel.subject == job_id and panel.editor.isEnabled())

    # Adding from the panel stores it under the window's user, read back through the API.
    panel.editor.setPlainText("  hold: waiting on textures  ")
    assert panel.add_button.isEnabled()
    panel.add_button.click()
    wait(qtbot, lambda: panel.list.count() == 1)
    [stored] = client.comments(job_id)
    assert (stored["author"], stored["text"]) == (win.user, "hold: waiting on textures")
    assert panel.editor.toPlainText() == ""
    assert "hold: waiting on textures" in panel.list.item(0).text()

    # Another user's comment arrives by event: the count in the jobs table and the panel.
    farm.client(user="bob").add_comment("textures are in", job_id)
    wait(qtbot, lambda: panel.list.count() == 2)
    assert "bob" in panel.list.item(1).text()
    wait(qtbot, lambda: win.jobs_model.get(job_id)["comments"] == 2)
    col = win.jobs_model.column_index("comments")
    index = win.jobs_model.index(win.jobs_model.position(job_id), col)
    assert index.data() == "2" and "2 comments" in index.data(Qt.ItemDataRole.ToolTipRole)

    # Deleting: the window's user is an admin, so bob's comment may go too.
    panel.list.setCurrentRow(1)
    assert panel.delete_button.isEnabled()
    panel.delete_button.click()
    wait(qtbot, lambda: panel.list.count() == 1)
    assert [c["author"] for c in client.comments(job_id)] == [win.user]


def test_refused_comments_say_why_and_change_nothing(qtbot, notes):
    farm, win = notes
    client = farm.client()
    [job_id] = client.submit(job_spec("noted", QUICK, "1"))
    select_job(qtbot, win, job_id)
    panel = win.notes.job_comments
    wait(qtbot, lambda: panel.subject == job_id)
    panel.editor.setPlainText("   ")
    assert not panel.add_button.isEnabled()         # nothing to add
    panel.editor.setPlainText("x" * 10_001)
    assert not panel.add_button.isEnabled()
    assert "10,000" in panel.add_button.toolTip()
    # The supervisor's refusal reaches the panel (as a user who slipped past the button).
    panel.add_wanted.emit("x" * 10_001)
    wait(qtbot, lambda: "at most 10,000 characters" in panel.error.text())
    assert client.comments(job_id) == []

    # An artist's comment cannot be deleted by another artist: the button says so, and the
    # supervisor refuses it when asked anyway.
    cid = farm.client(user="bob").add_comment("mine", job_id)
    wait(qtbot, lambda: panel.list.count() == 1)
    panel.set_user("carol", admin=False)
    panel.list.setCurrentRow(0)
    assert not panel.delete_button.isEnabled() and "bob's" in panel.delete_button.toolTip()
    carol = farm.client(user="carol")
    with pytest.raises(Exception) as info:
        carol.delete_comment(cid)
    assert "bob's" in str(info.value)
    assert [c["id"] for c in client.comments(job_id)] == [cid]


def test_host_comments_history_and_tag_groups(qtbot, notes):
    farm, win = notes
    client = farm.client()
    assert win.hosts_view.select_id(win.notes._host_id("render01"))
    panel = win.notes.host_comments
    wait(qtbot, lambda: panel.subject == "render01")
    panel.editor.setPlainText("fan is loud")
    panel.add_button.click()
    wait(qtbot, lambda: panel.list.count() == 1)
    assert [(c["author"], c["text"]) for c in client.comments(host="render01")] == [
        (win.user, "fan is loud")]
    wait(qtbot, lambda: win.hosts_model.get(win.notes._host_id("render01"))["comments"] == 1)

    # History: points the supervisor keeps, charted for the host selected.
    history = win.notes.host_history
    wait(qtbot, lambda: history.host == "render01" and len(history.points) >= 2)
    assert [p["t"] for p in history.points] == [p["t"] for p in client.host_history("render01")
                                                ][:len(history.points)]

    # Tag groups: the gpu group shows render02 only, with its slot figures.
    win.notes.update_tag_groups()
    labels = [win.notes.tag_box.itemText(i) for i in range(win.notes.tag_box.count())]
    assert "gpu: 1 host, 0/2 slots" in labels
    assert win.notes.group_by_tag("gpu")
    wait(qtbot, lambda: win.hosts_model.rowCount() == 1)
    assert win.hosts_view.table_model().index(0, 0).data() == "render02"
    assert win.notes.group_by_tag(None)
    wait(qtbot, lambda: win.hosts_model.rowCount() == 2)
    assert not win.notes.group_by_tag("nope")


def test_layer_statistics_and_the_run_time_histogram(qtbot, notes):
    farm, win = notes
    client = farm.client()
    [job_id] = client.submit({"name": "stats", "project": "gui", "layers": [
        {"name": "heavy", "command": ["sleep", "0.5"], "range": "1-3"},
        {"name": "light", "command": QUICK, "range": "1-2"}]})
    client.wait(job_id, timeout=120)
    select_job(qtbot, win, job_id)
    stats = win.notes.layer_stats
    wait(qtbot, lambda: stats.job_id == job_id and stats.model.total == 2
         and all(r["succeeded"] > 0 for r in stats.model.all_rows()))
    by_layer = {r["layer"]: r for r in stats.model.all_rows()}
    api = {r["layer"]: r for r in client.layer_stats(job_id)}
    assert by_layer["heavy"]["core_hours"] == api["heavy"]["core_hours"]
    assert by_layer["heavy"]["avg"] >= 0.5
    # The heaviest layer is chosen; its histogram counts each of its frames once.
    assert stats.shown_layer == "heavy"
    assert int(sum(stats.bars.opts["height"])) == 3
    assert "heaviest is heavy" in stats.caption.text()


def test_jumping_between_a_frame_its_host_and_its_job(qtbot, notes):
    farm, win = notes
    client = farm.client()
    [job_id] = client.submit(job_spec("running", SLOW, "1"))
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: any(f.get("host") for f in win.frames_model.all_rows()))
    [frame] = list(win.frames_model.all_rows())
    assert win.frames_view.select_id(frame["id"])
    win.notes.update_jumps()
    assert win.notes.go_to_host.isEnabled()
    win.notes.go_to_host.trigger()
    host_id = win.notes._host_id(frame["host"])
    assert win.hosts_view.current_row()["id"] == host_id
    wait(qtbot, lambda: win.selected_host == frame["host"])

    # From the host: its running frame's job, selected (another job was selected meanwhile).
    [other] = client.submit(job_spec("other", QUICK, "1"))
    select_job(qtbot, win, other)
    assert win.hosts_view.select_id(host_id)
    wait(qtbot, lambda: win.host_frames_model.rowCount() == 1)
    win.notes.update_jumps()
    assert win.notes.go_to_running_job.isEnabled()
    win.notes.go_to_running_job.trigger()
    wait(qtbot, lambda: win.selected_job == job_id)
    wait(qtbot, lambda: (win.frames_view.current_row() or {}).get("id") == frame["id"])
    client.kill(job_id)


def test_the_screenshot_tour_shows_comments_layer_statistics_and_host_history(notes,
                                                                              tmp_path):
    import json
    import subprocess
    import sys

    from tests.farm import wait_until
    farm, _win = notes
    client = farm.client()
    [job_id] = client.submit({"name": "toured", "project": "gui", "layers": [
        {"name": "prep", "command": QUICK, "range": "1-3"},
        {"name": "render", "command": SLOW, "range": "1-4", "depends_on": ["prep"]}]})
    wait_until(lambda: (client.job(job_id).get("running") or 0) > 0, 60.0)
    client.add_comment("renders may run", job_id)
    farm.client(user="bob").add_comment("check frame 4", job_id)
    for name in ("render01", "render02"):
        client.add_comment("fan is loud", host=name)
    wait_until(lambda: len(client.host_history("render01")) >= 2, 30.0)
    out = tmp_path / "shots"
    proc = subprocess.run([sys.executable, "-m", "cuegui", "--supervisor", farm.address,
                           "--screenshots", str(out), "--timeout", "60"],
                          capture_output=True, text=True, timeout=120,
                          env={**farm.env, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    for name in ("comments", "layer_stats", "host_history", "host_comments", "audit",
                 "host_audit"):
        assert (out / f"{name}.png").stat().st_size > 1000
    tour = json.loads((out / "tour.json").read_text())
    assert tour["job"] == job_id
    assert tour["audit"] >= 2        # the two comments added to it
    assert (tour["comments"], tour["host_comments"], tour["layer_stats"]) == (2, 1, 2)
    assert tour["host_history"]["host"] in ("render01", "render02")
    assert tour["host_history"]["points"] >= 2
    client.kill(job_id)


def test_the_audit_trail_of_a_job_and_a_host(qtbot, notes):
    farm, win = notes
    client = farm.client()
    [job_id] = client.submit(job_spec("audited", QUICK, "1-2"))
    client.set_priority(job_id, 77)
    with pytest.raises(CueFarmError):            # bob is an artist, and not its owner
        farm.client(user="bob").pause(job_id)
    select_job(qtbot, win, job_id)
    table = win.notes.job_audit.table

    def actions():
        return [(table.item(i, 1).text(), table.item(i, 3).text(), table.item(i, 4).text())
                for i in range(table.rowCount())]
    wait(qtbot, lambda: len(actions()) >= 3)
    rows = actions()
    assert (win.user, "job control: priority", "ok") in rows
    assert any(who == "bob" and what == "job control: pause" and outcome.startswith("refused")
               for who, what, outcome in rows), rows
    assert any(what == "submit" for _, what, _ in rows)
    # What the panel shows is what the API says.
    assert len(rows) == len(client.audit(job_id=job_id))

    # A host's trail, in the hosts panel's Audit tab; a new action shows up by itself.
    client.lock("render01")
    assert win.hosts_view.select_id(next(h["id"] for h in win.hosts_model.all_rows()
                                         if h["name"] == "render01"))
    host_table = win.notes.host_audit.table
    wait(qtbot, lambda: host_table.rowCount() >= 1 and
         host_table.item(0, 3).text() == "host control: lock")
    client.unlock("render01")
    wait(qtbot, lambda: host_table.rowCount() >= 2 and
         host_table.item(0, 3).text() == "host control: unlock")
