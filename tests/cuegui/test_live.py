"""The window against a real supervisor and real rqd workers (subprocesses): every view shows
real data, every action changes the supervisor's state and the view follows by event."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial

import pytest
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QApplication, QGraphicsRectItem, QMessageBox

from cuegui import theme
from cuegui.connection import Connection
from cuegui.models import SortRole
from cuegui.window import MainWindow
from tests.cuegui import helpers
from tests.farm import wait_until

WAIT = 60_000
wait = partial(helpers.wait, timeout=WAIT)
PY = sys.executable


def job_spec(name: str, command, frames: str = "1-4", **layer) -> dict:
    return {"name": name, "project": "gui", "layers": [
        {"name": "render", "command": command, "range": frames, **layer}]}


QUICK = [PY, "-c", "print('rendered frame #FRAME#')"]
SLOW = [PY, "-c", "import time; time.sleep(60)"]
FAIL = [PY, "-c", "import sys; print('ERROR: no licence'); sys.exit(3)"]


def fail_once(marker_dir) -> list[str]:
    """Fails the first time a frame runs, succeeds when retried."""
    code = (f"import os, sys; p = os.path.join({str(marker_dir)!r}, '#FRAME#')\n"
            "if os.path.exists(p): sys.exit(0)\nopen(p, 'w').close(); sys.exit(1)")
    return [PY, "-c", code]


class Prompts:
    """What a user types into the action dialogs."""

    def integer(self, *args):
        return 77

    def slots(self, job):
        return 1, 3

    def project(self, current, choices):
        return "moved"

    def host_slots(self, host):
        return 3

    def tags(self, host):
        return ["gpu"], []


def open_window(farm, prompts) -> MainWindow:
    """Two workers with two slots each, and a window (admin mode, every question answered
    yes and kept in `asked`) on their supervisor; its connection is not started yet."""
    farm.start_rqd("render01", 2)
    farm.start_rqd("render02", 2)
    farm.wait_hosts_up(["render01", "render02"])
    conn = Connection(farm.address, idle_ping=1.0)
    asked: list[str] = []
    win = MainWindow(conn, mode="admin", prompts=prompts,
                     confirm=lambda parent, q: asked.append(q) or True)
    win.asked = asked
    return win


@pytest.fixture
def live(qtbot, sqlite_farm):
    """Two workers with two slots each, and a window (admin mode) on their supervisor."""
    farm = sqlite_farm
    win = open_window(farm, Prompts())
    conn = win.connection
    win.snapshots = []
    conn.snapshot.connect(win.snapshots.append)
    qtbot.addWidget(win)
    win.show()
    conn.start()
    # The first batch after subscribing brings one more resync (workers' heartbeats are
    # batches, so it comes at once); from then on changes arrive as events.
    wait(qtbot, lambda: win.connection_state == "connected" and len(win.snapshots) == 2)
    yield farm, win
    win.close()


def accept_next_question(button=QMessageBox.StandardButton.Yes) -> None:
    """Answer the next modal question box as a user would."""
    def answer():
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            box.button(button).click()
        else:
            QTimer.singleShot(50, answer)
    QTimer.singleShot(50, answer)


def trigger(qtbot, action) -> None:
    """Trigger an action once it is enabled: its rule follows the rows' states by event."""
    try:
        wait(qtbot, action.isEnabled, timeout=20_000)
    except Exception:
        raise AssertionError(f"{action.text()} stays disabled: {action.toolTip()}")
    action.trigger()


def select_job(qtbot, win, job_id) -> None:
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    assert win.jobs_view.select_id(job_id)
    wait(qtbot, lambda: win.frames_model.job_id == job_id
         and win.frames_model.total == win.jobs_model.get(job_id)["frames_total"])


def test_a_job_reaches_100_percent_by_events(qtbot, live):
    farm, win = live
    [job_id] = farm.client().submit(job_spec("progress", QUICK, "1-6"))
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    col = win.jobs_model.column_index("progress")
    wait(qtbot, lambda: win.jobs_model.get(job_id)["status"] == "finished")
    index = win.jobs_model.index(win.jobs_model.position(job_id), col)
    assert index.data(SortRole) == 1.0 and index.data() == "100%"
    assert len(win.snapshots) == 2          # no resync since the fixture's: events only


def test_job_detail_hosts_charts_and_why_show_real_data(qtbot, live):
    farm, win = live
    client = farm.client()
    [job_id] = client.submit({"name": "detail", "project": "gui", "layers": [
        {"name": "sim", "command": SLOW, "range": "1-2"},
        {"name": "render", "command": QUICK, "range": "1-3", "depends_on": ["sim"]}]})
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: win.layers_model.total == 2 and win.job_panel.graph.edges())
    [edge] = win.job_panel.graph.edges()
    assert edge.dep["layer"] == "render" and edge.dep["target_layer"] == "sim"
    wait(qtbot, lambda: sum(f["state"] == "RUNNING" for f in win.frames_model.rows()) == 2)
    assert {f["state"] for f in win.frames_model.rows() if f["layer"] == "render"} == {"DEPEND"}
    host = next(f["host"] for f in win.frames_model.rows() if f["state"] == "RUNNING")
    assert win.hosts_view.select_id(next(h["id"] for h in win.hosts_model.rows()
                                         if h["name"] == host))
    wait(qtbot, lambda: win.host_frames_model.rowCount() >= 1)
    assert {r["job_name"] for r in win.host_frames_model.rows()} == {"detail"}
    trigger(qtbot, win.action_set.jobs["why"])
    wait(qtbot, lambda: "waiting for layer" in win.why_panel.text())
    depend = next(f for f in win.frames_model.rows() if f["state"] == "DEPEND")
    assert win.frames_view.select_id(depend["id"])
    trigger(qtbot, win.action_set.frames["why"])
    wait(qtbot, lambda: "frame" in win.why_panel.caption.text()
         and "sim" in win.why_panel.text())
    charts = win.charts_panel
    charts.sample()
    t, v = charts.series["slots_total"].arrays()
    assert v[-1] == 4
    assert charts.projects.names == ["gui"]
    charts.redraw_job(wait=True)
    assert "sim" in charts._layer_curves


def test_pause_and_kill_from_the_gui(qtbot, live):
    farm, win = live
    client = farm.client()
    [job_id] = client.submit(job_spec("control", SLOW, "1-8"))
    wait(qtbot, lambda: (win.jobs_model.get(job_id) or {}).get("running", 0) > 0)
    assert win.jobs_view.select_id(job_id)
    trigger(qtbot, win.action_set.jobs["pause"])
    wait(qtbot, lambda: client.job(job_id)["state"] == "PAUSED")
    wait(qtbot, lambda: win.jobs_model.get(job_id)["status"] == "paused")
    trigger(qtbot, win.action_set.jobs["resume"])
    wait(qtbot, lambda: win.jobs_model.get(job_id)["state"] == "ACTIVE")
    trigger(qtbot, win.action_set.jobs["kill"])
    wait(qtbot, lambda: client.job(job_id)["status"] == "killed")
    wait(qtbot, lambda: win.jobs_model.get(job_id)["status"] == "killed"
         and win.jobs_model.get(job_id)["running"] == 0)
    assert "Kill" in win.statusBar().currentMessage() and "Kill" in win.asked[0]
    # What happened shows: nothing rendered, all eaten; the layer's box says so too.
    progress = win.jobs_model.index(win.jobs_model.position(job_id),
                                    win.jobs_model.column_index("progress"))
    assert progress.data() == "0% · 8 eaten"
    wait(qtbot, lambda: box_colour(win, "render") == theme.FRAME_COLORS["EATEN"])


def box_colour(win, layer: str) -> str | None:
    """The outline colour of a layer's box in the dependency picture."""
    for item in win.job_panel.graph.scene().items():
        if isinstance(item, QGraphicsRectItem) and item.data(0) == layer:
            return item.pen().color().name()
    return None


def test_declining_the_kill_question_changes_nothing(qtbot, live):
    farm, win = live
    win.confirm = __import__("cuegui.actions", fromlist=["ask"]).ask
    client = farm.client()
    [job_id] = client.submit(job_spec("keep", SLOW, "1-2"))
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    assert win.jobs_view.select_id(job_id)
    accept_next_question(QMessageBox.StandardButton.No)
    trigger(qtbot, win.action_set.jobs["kill"])
    trigger(qtbot, win.action_set.jobs["pause"])   # queued after the kill would have been
    wait(qtbot, lambda: client.job(job_id)["state"] == "PAUSED")
    assert client.job(job_id)["status"] != "killed"


def test_retry_and_eat_dead_frames(qtbot, live, tmp_path):
    farm, win = live
    client = farm.client()
    [retry_id] = client.submit(job_spec("flaky", fail_once(tmp_path), "1-3", max_retries=0))
    [eat_id] = client.submit(job_spec("broken", FAIL, "1-2", max_retries=0))
    wait(qtbot, lambda: (win.jobs_model.get(retry_id) or {}).get("dead") == 3
         and (win.jobs_model.get(eat_id) or {}).get("dead") == 2)
    assert win.jobs_view.select_id(retry_id)
    assert win.action_set.jobs.reason("retry") is None
    trigger(qtbot, win.action_set.jobs["retry"])
    wait(qtbot, lambda: win.jobs_model.get(retry_id)["status"] == "finished"
         and win.jobs_model.get(retry_id)["succeeded"] == 3)
    assert win.jobs_view.select_id(eat_id)
    trigger(qtbot, win.action_set.jobs["eat"])
    wait(qtbot, lambda: win.jobs_model.get(eat_id)["eaten"] == 2)
    assert client.job(eat_id)["eaten"] == 2


def test_frame_actions_and_the_command(qtbot, live):
    farm, win = live
    client = farm.client()
    [job_id] = client.submit(job_spec("frames", SLOW, "1-6"))
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: sum(f["state"] == "RUNNING" for f in win.frames_model.rows()) == 4)
    running = next(f for f in win.frames_model.rows() if f["state"] == "RUNNING")
    waiting = next(f for f in win.frames_model.rows() if f["state"] == "WAITING")
    assert win.frames_view.select_id(running["id"])
    trigger(qtbot, win.action_set.frames["copy"])
    assert "time.sleep(60)" in QApplication.clipboard().text()
    trigger(qtbot, win.action_set.frames["kill"])       # stops it; it waits to run again
    wait(qtbot, lambda: win.frames_model.get(running["id"])["attempt"] >= 2
         or win.frames_model.get(running["id"])["state"] == "WAITING")
    assert win.frames_view.select_id(waiting["id"])
    trigger(qtbot, win.action_set.frames["eat"])
    wait(qtbot, lambda: win.frames_model.get(waiting["id"])["state"] == "EATEN")
    trigger(qtbot, win.action_set.frames["retry"])
    wait(qtbot, lambda: win.frames_model.get(waiting["id"])["state"] in ("WAITING", "RUNNING"))
    assert client.frames(job_id, states=["EATEN"]) == []


def test_wrangler_changes(qtbot, live):
    farm, win = live
    client = farm.client()
    [job_id] = client.submit(job_spec("wrangle", SLOW, "1-2"))
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    assert win.jobs_view.select_id(job_id)
    trigger(qtbot, win.action_set.jobs["priority"])
    wait(qtbot, lambda: win.jobs_model.get(job_id)["priority"] == 77)
    trigger(qtbot, win.action_set.jobs["slots"])
    wait(qtbot, lambda: (win.jobs_model.get(job_id)["min_slots"],
                         win.jobs_model.get(job_id)["max_slots"]) == (1, 3))
    trigger(qtbot, win.action_set.jobs["project"])
    wait(qtbot, lambda: win.jobs_model.get(job_id)["project"] == "moved")
    assert client.job(job_id)["project"] == "moved"


def test_satisfy_and_drop_dependencies(qtbot, live):
    farm, win = live
    client = farm.client()
    [job_id] = client.submit({"name": "deps", "project": "gui", "layers": [
        {"name": "a", "command": SLOW, "range": "1"},
        {"name": "b", "command": QUICK, "range": "1-2", "depends_on": ["a"]},
        {"name": "c", "command": QUICK, "range": "1", "depends_on": ["a"]}]})
    select_job(qtbot, win, job_id)
    graph = win.job_panel.graph
    wait(qtbot, lambda: len(graph.edges()) == 2)
    edge = next(e for e in graph.edges() if e.dep["layer"] == "b")
    assert graph.select_dependency(edge.dep["id"])
    trigger(qtbot, win.action_set.deps["satisfy"])
    wait(qtbot, lambda: all(f["state"] == "SUCCEEDED" for f in win.frames_model.rows()
                            if f["layer"] == "b"))
    wait(qtbot, lambda: any(e.dep["layer"] == "b" and e.dep["satisfied"]
                            for e in graph.edges()))
    edge = next(e for e in graph.edges() if e.dep["layer"] == "c")
    assert graph.select_dependency(edge.dep["id"])
    trigger(qtbot, win.action_set.deps["drop"])
    wait(qtbot, lambda: all(f["state"] == "SUCCEEDED" for f in win.frames_model.rows()
                            if f["layer"] == "c"))
    wait(qtbot, lambda: [e.dep["layer"] for e in graph.edges()] == ["b"])


def test_hosts_lock_purge_slots_and_tags(qtbot, live):
    farm, win = live
    hosts = win.hosts_model
    slots = hosts.column_index("slots")

    def row(name):
        return next((r for r in hosts.rows() if r["name"] == name), None)

    def slot_text(name):
        r = row(name)
        return None if r is None else hosts.index(hosts.position(r["id"]), slots).data()

    win.hosts_dock.raise_()          # host actions act on the hosts in view
    wait(qtbot, lambda: slot_text("render01") == "0/2" and slot_text("render02") == "0/2")
    client = farm.client()
    client.submit(job_spec("busy", SLOW, "1-4"))
    wait(qtbot, lambda: slot_text("render01") == "2/2" and slot_text("render02") == "2/2")
    # Lock render01: it keeps finishing its frames, so it reads 2/0.
    assert win.hosts_view.select_id(row("render01")["id"])
    trigger(qtbot, win.action_set.hosts["lock"])
    wait(qtbot, lambda: slot_text("render01") == "2/0" and row("render01")["lock"] == "LOCKED")
    assert next(h for h in client.hosts() if h["name"] == "render01")["lock"] == "LOCKED"
    trigger(qtbot, win.action_set.hosts["unlock"])
    wait(qtbot, lambda: slot_text("render01") == "2/2" and row("render01")["lock"] == "OPEN")
    # Lock and purge render02: its frames are killed and go back to waiting.
    assert win.hosts_view.select_id(row("render02")["id"])
    trigger(qtbot, win.action_set.hosts["purge"])
    wait(qtbot, lambda: slot_text("render02") == "0/0")
    trigger(qtbot, win.action_set.hosts["unlock"])
    trigger(qtbot, win.action_set.hosts["slots"])
    wait(qtbot, lambda: row("render02")["slots_total"] == 3)
    trigger(qtbot, win.action_set.hosts["tags"])
    wait(qtbot, lambda: "gpu" in (row("render02").get("tags") or []))
    trigger(qtbot, win.action_set.hosts["drain"])
    lock = hosts.column_index("lock")
    wait(qtbot, lambda: hosts.index(hosts.position(row("render02")["id"]), lock).data()
         == "DRAINING")
    wait(qtbot, lambda: win.action_set.hosts.reason("drain")
         == "the selected hosts are draining already")


def test_submit_dialog(qtbot, live):
    farm, win = live
    dialog = win.open_submit()
    dialog.set_values(name="bad name!", command="echo #FRAME#", range="1-3")
    assert dialog.error_at("name") and not dialog.submit_button.isEnabled()
    dialog.set_values(name="from_gui", range="1-3x")
    assert dialog.error_at("range") and not dialog.submit_button.isEnabled()
    dialog.set_values(range="1-3", depends_on="999999")
    assert dialog.submit_button.isEnabled()
    dialog.submit_button.click()            # the supervisor knows no job 999999
    wait(qtbot, lambda: "999999" in dialog.error_at("depends_on"))
    dialog.set_values(depends_on="")
    dialog.submit_button.click()
    wait(qtbot, lambda: any(j["name"] == "from_gui" for j in win.jobs_model.all_rows()))
    job = next(j for j in win.jobs_model.all_rows() if j["name"] == "from_gui")
    wait(qtbot, lambda: win.jobs_view.current_row() and win.jobs_view.current_row()["id"]
         == job["id"])
    wait(qtbot, lambda: win.jobs_model.get(job["id"])["status"] == "finished")


def test_log_shows_a_finished_frame_and_follows_a_running_one(qtbot, live):
    farm, win = live
    client = farm.client()
    [done_id] = client.submit(job_spec("logs", QUICK, "3"))
    wait(qtbot, lambda: (win.jobs_model.get(done_id) or {}).get("status") == "finished")
    select_job(qtbot, win, done_id)
    assert win.frames_view.select_id(win.frames_model.row(0)["id"])
    trigger(qtbot, win.action_set.frames["log"])
    wait(qtbot, lambda: "rendered frame 3" in win.log_panel.contents())
    assert "exit status: 0" in win.log_panel.contents()

    # A running frame: its log grows and the view follows as the frame's events arrive.
    # (Words printed apart, so the command echoed in the log header does not match.)
    script = ("import time\nprint('first', 'line', flush=True)\ntime.sleep(3)\n"
              "print('second', 'line', flush=True)\ntime.sleep(1)\n")
    [run_id] = client.submit(job_spec("follow", [PY, "-c", script], "1"))
    wait(qtbot, lambda: (win.jobs_model.get(run_id) or {}).get("running") == 1)
    select_job(qtbot, win, run_id)
    pieces = []
    win.connection.log_piece.connect(pieces.append)
    win.open_log(win.frames_model.row(0))
    wait(qtbot, lambda: "first line" in win.log_panel.contents())
    before = "second line" not in win.log_panel.contents()
    wait(qtbot, lambda: "second line" in win.log_panel.contents()
         and "exit status: 0" in win.log_panel.contents())
    if before:      # (on a slow machine the whole log may come at once)
        assert any(p.mode == "append" and "second line" in p.text for p in pieces)
    assert win.log_panel.contents().count("first line") == 1


def test_reconnects_after_a_supervisor_restart(qtbot, live):
    farm, win = live
    states: list[str] = []
    win.connection.state_changed.connect(lambda s, d: states.append(s))
    before = len(win.snapshots)
    farm.kill_supervisor()
    wait(qtbot, lambda: "reconnecting" in states)
    assert win.conn_label.text() in ("Reconnecting", "Supervisor unreachable")
    farm.start_supervisor()
    wait(qtbot, lambda: win.connection_state == "connected" and len(win.snapshots) > before)
    [job_id] = farm.client().submit(job_spec("after_restart", QUICK, "1-2"))
    wait(qtbot, lambda: (win.jobs_model.get(job_id) or {}).get("status") == "finished")
    assert win.conn_label.text() == "Connected"


def test_screenshots_command_saves_one_png_per_view(live, tmp_path):
    farm, win = live
    client = farm.client()
    [done_id] = client.submit(job_spec("shots", QUICK, "1-3"))
    client.wait(done_id, timeout=60)
    [busy_id] = client.submit(job_spec("busy", SLOW, "1-6"))
    [held_id] = client.submit(job_spec("held", SLOW, "1-2"))
    client.pause([held_id])
    wait_until(lambda: (client.job(busy_id).get("running") or 0) > 0, 60.0,
               message="the busy job to start")
    out = tmp_path / "shots"
    proc = subprocess.run([PY, "-m", "cuegui", "--supervisor", farm.address,
                           "--screenshots", str(out), "--timeout", "60"],
                          capture_output=True, text=True, timeout=120,
                          env={**farm.env, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0, proc.stderr
    from cuegui.screenshots import VIEWS
    # Every view of the tour (the image viewer only when a frame wrote an image).
    for name in VIEWS:
        if name != "viewer":
            assert (out / f"{name}.png").stat().st_size > 1000, name
    tour = json.loads((out / "tour.json").read_text())
    # The job pane shows an unfinished job with frames running, and it is in the jobs list.
    assert tour["job"] == busy_id and busy_id in tour["jobs_listed"]
    assert done_id in tour["jobs_listed"] and held_id in tour["jobs_listed"]   # Mine is off
    assert "busy" in tour["job_caption"] and tour["frames"] == 6 and tour["layers"] == 1
    assert tour["log_frame"] is not None and tour["log_chars"] > 0
    # Why is asked about the job that waits, and says why it waits (not "finished").
    assert tour["why_job"] == held_id and "held" in tour["why_caption"]
    assert "paused" in tour["why"].lower() and "finished" not in tour["why"].lower()
    assert tour["hosts"] == 2
    charts = tour["charts"]
    assert charts["slots"] > 0 and charts["frames"] > 0
    assert all(charts[k] > 0 for k in ("cpu", "rss", "db", "rates", "backlog")), charts


def test_a_job_the_supervisor_pauses_shows_its_flag(qtbot, live):
    """Every host fails the job until the supervisor pauses it; the window says why."""
    farm, win = live
    [job_id] = farm.client().submit(job_spec("always_fails", FAIL, "1-2", max_retries=20))
    wait(qtbot, lambda: (win.jobs_model.get(job_id) or {}).get("flagged"))
    flag = farm.client().job(job_id)["flagged"]
    m = win.jobs_model
    index = m.index(m.position(job_id), m.column_index("status"))
    assert index.data() == "flagged" and flag in index.data(Qt.ItemDataRole.ToolTipRole)
    select_job(qtbot, win, job_id)
    wait(qtbot, lambda: flag in win.job_panel.caption.text())


def test_my_jobs_finishing_or_failing_give_one_notice_each(qtbot, live):
    farm, win = live
    client = farm.client()        # the same user as the window
    [ok] = client.submit(job_spec("notice_ok", QUICK, "1-2"))
    [bad] = client.submit(job_spec("notice_bad", FAIL, "1", max_retries=0))
    wait(qtbot, lambda: len(win.job_notices.shown) >= 2)
    qtbot.wait(500)               # later batches about the same jobs add nothing
    shown = win.job_notices.shown
    assert f"Job notice_ok ({ok}) finished: 2 frame(s) succeeded" in shown
    assert f"Job notice_bad ({bad}) has dead frames (1)" in shown
    assert len(shown) == 2
    assert win.statusBar().currentMessage() in shown
    # Off from the View menu: nothing more (and the choice is kept).
    win.notices_action.setChecked(False)
    client.kill(bad)
    [quiet] = client.submit(job_spec("notice_quiet", QUICK, "1"))
    wait_until(lambda: client.job(quiet)["state"] == "FINISHED", 30, message="quiet done")
    qtbot.wait(500)
    assert len(win.job_notices.shown) == 2
    # Another user's jobs never give a notice.
    from cuegui.jobnotices import notices_for
    row = {"id": 9, "name": "x", "user": "someone_else", "state": "FINISHED", "dead": 2}
    assert notices_for({"state": "ACTIVE", "dead": 0}, row, win.user) == []
    assert notices_for({"state": "ACTIVE", "dead": 0}, {**row, "user": win.user}, win.user) \
        == ["Job x (9) finished: 0 frame(s) succeeded, 2 dead"]
