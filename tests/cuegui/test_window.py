"""The main window against a simulated supervisor: applying data, filters, sorting, actions and
their rules, status, settings, theme, font scaling, painting."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QSettings, Qt
from qtpy.QtGui import QFont
from qtpy.QtWidgets import QApplication, QMessageBox

from cuegui import theme
from cuegui.connection import Connection
from cuegui.models import SortRole
from cuegui.window import MainWindow
from tests import rows
from tests.cuegui.helpers import wait
from tests.cuegui.simsupervisor import SimSupervisor

@pytest.fixture
def sim():
    s = SimSupervisor()
    states = ["WAITING", "DEPEND", "RUNNING", "SUCCEEDED", "DEAD", "EATEN"]
    statuses = ["running", "waiting", "paused", "failing", "dependency", "finished", "killed"]
    s.jobs = {i: rows.job(i, status=statuses[i % 7], frames_total=12, succeeded=i % 5,
                          dead=i % 3, running=1, eaten=1, user="ann" if i % 2 else "bob",
                          project="feature" if i < 5 else "promo", priority=100 - i * 7,
                          state={"paused": "PAUSED", "finished": "FINISHED",
                                 "killed": "FINISHED"}.get(statuses[i % 7], "ACTIVE"))
              for i in range(1, 8)}
    s.hosts = {1: rows.host(1), 2: rows.host(2, lock="LOCKED", slots_total=0, slots_used=16),
               3: rows.host(3, state="DOWN")}
    s.layers = {1: rows.layer(1, job_id=1, name="render",
                              command=["render", "-s", "#FRAME_START#", "-e", "#FRAME_END#",
                                       "out.#ZFRAME#.exr"]),
                2: rows.layer(2, job_id=1, name="comp", depends_on=["render"])}
    s.dependencies = {1: [{"id": 9, "kind": "layer", "layer": "comp", "target_job_id": 1,
                           "target_layer": "render", "satisfied": False, "target_dead": 0}]}
    s.frames = {i: rows.frame(i, job_id=1, state=states[i % 6], frame_start=i, frame_end=i + 1,
                              frames=f"{i}-{i + 1}", peak_rss=i * 2**20,
                              host="render01" if states[i % 6] == "RUNNING" else None)
                for i in range(1, 13)}
    s.start()
    yield s
    s.stop()


def make_window(qtbot, sim, **kw) -> MainWindow:
    conn = Connection(sim.address, idle_ping=0.5, request_timeout=2.0, ping_timeout=0.5)
    kw.setdefault("mode", "wrangler")
    w = MainWindow(conn, **kw)
    qtbot.addWidget(w)
    w.show()
    conn.start()
    wait(qtbot, lambda: w.jobs_model.total == 7 and w.hosts_model.total == 3)
    return w


@pytest.fixture
def win(qtbot, sim):
    w = make_window(qtbot, sim)
    yield w
    w.close()


def test_window_shows_the_supervisors_rows(win):
    assert win.conn_label.text() == "Connected"
    assert win.counts_label.text() == "7 jobs · 3 hosts"
    assert win.jobs_model.ids() == [7, 6, 5, 4, 3, 2, 1]          # newest first
    assert [h["name"] for h in win.hosts_model.rows()] == ["render01", "render02", "render03"]
    assert win.mode_label.text() == "Wrangler mode"


def test_artist_mode_shows_my_jobs_by_default(qtbot, sim):
    w = make_window(qtbot, sim, mode="artist", user="ann")
    try:
        assert w.jobs_panel.mine.isChecked()
        assert w.jobs_model.ids() == [7, 5, 3, 1]
        w.jobs_panel.mine.setChecked(False)
        assert w.jobs_model.rowCount() == 7
    finally:
        w.close()


def test_filters_by_status_user_project_and_text(qtbot, win):
    panel, model = win.jobs_panel, win.jobs_model
    panel.update_choices()
    for status, action in panel.status_actions.items():
        action.setChecked(status in ("failing", "paused"))
    assert sorted(model.ids()) == [2, 3]
    assert panel.status_button.text() == "Status: 2 of 7"
    for action in panel.status_actions.values():
        action.setChecked(True)
    panel.user_box.setCurrentIndex(panel.user_box.findData("bob"))
    assert sorted(model.ids()) == [2, 4, 6]
    panel.project_box.setCurrentIndex(panel.project_box.findData("promo"))
    assert model.ids() == [6]
    panel.user_box.setCurrentIndex(0)
    panel.filter.setText("job_005")
    wait(qtbot, lambda: model.ids() == [5])
    panel.filter.clear()
    panel.project_box.setCurrentIndex(0)
    wait(qtbot, lambda: model.rowCount() == 7)


def test_sorting_by_header_uses_raw_values(qtbot, win):
    view, model = win.jobs_view, win.jobs_model
    view.sortByColumn(model.column_index("priority"), Qt.SortOrder.AscendingOrder)
    assert [r["priority"] for r in model.rows()] == [51, 58, 65, 72, 79, 86, 93]
    view.sortByColumn(model.column_index("dead"), Qt.SortOrder.DescendingOrder)
    assert [r["dead"] for r in model.rows()] == [2, 2, 1, 1, 1, 0, 0]


def test_frame_state_filter_and_counts(qtbot, win):
    win.jobs_view.select_id(1)
    wait(qtbot, lambda: win.frames_model.rowCount() == 12)
    buttons = win.frames_panel.state_buttons
    assert buttons["DEAD"].text() == "Dead 1"
    buttons["RUNNING"].setChecked(True)
    buttons["DEAD"].setChecked(True)
    assert sorted(f["state"] for f in win.frames_model.rows()) == ["DEAD"] * 2 + ["RUNNING"] * 2
    buttons["RUNNING"].setChecked(False)
    buttons["DEAD"].setChecked(False)
    assert win.frames_model.rowCount() == 12


def test_job_detail_shows_layers_and_the_dependency_picture(qtbot, win):
    win.jobs_view.select_id(1)
    wait(qtbot, lambda: win.layers_model.total == 2 and win.job_panel.graph.edges())
    [edge] = win.job_panel.graph.edges()
    assert edge.dep["id"] == 9
    assert "job_001" in win.job_panel.caption.text()
    deps = win.action_set.deps
    assert not deps["satisfy"].isEnabled()
    edge.setSelected(True)
    assert deps["satisfy"].isEnabled() and deps["drop"].isEnabled()
    win.set_mode("artist")
    assert not deps["satisfy"].isEnabled()
    assert "for wranglers" in deps["satisfy"].toolTip()


def test_actions_follow_the_selection_and_say_why_not(qtbot, win):
    a = win.action_set
    assert not a.jobs["pause"].isEnabled() and not a.hosts["lock"].isEnabled()
    assert "select one or more jobs" in a.jobs["pause"].toolTip()
    win.jobs_view.select_id(2)            # paused
    assert a.jobs["resume"].isEnabled() and not a.jobs["pause"].isEnabled()
    assert "none of the selected jobs is active" in a.jobs["pause"].statusTip()
    win.hosts_dock.raise_()
    win.hosts_view.select_id(1)
    assert not a.hosts["lock"].isEnabled() and "for admins" in a.hosts["lock"].toolTip()
    win.set_mode("admin")
    assert a.hosts["lock"].isEnabled() and not a.hosts["unlock"].isEnabled()
    win.jobs_view.clearSelection()
    assert not a.jobs["kill"].isEnabled()


def test_host_shortcuts_act_only_on_hosts_in_view_and_ask_first(qtbot, sim):
    asked: list[str] = []
    answers = [False, True]
    w = make_window(qtbot, sim, mode="admin",
                    confirm=lambda parent, q: asked.append(q) or answers.pop(0))
    try:
        lock = w.action_set.hosts["lock"]
        w.hosts_dock.raise_()
        w.hosts_view.select_id(1)
        w.jobs_dock.raise_()                 # the hosts' selection is now out of sight
        wait(qtbot, lambda: not lock.isEnabled())
        assert "Hosts tab is not showing" in lock.toolTip()
        w.activateWindow()
        w.jobs_view.setFocus()
        ctrl_shift = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier
        qtbot.keyClick(w.jobs_view, Qt.Key.Key_L, ctrl_shift)
        qtbot.keyClick(w.jobs_view, Qt.Key.Key_U, ctrl_shift)
        assert asked == []
        # In view, the shortcut asks first: No changes nothing, Yes locks.
        w.hosts_dock.raise_()
        wait(qtbot, lock.isEnabled)
        w.hosts_view.setFocus()
        qtbot.keyClick(w.hosts_view, Qt.Key.Key_L, ctrl_shift)
        assert asked == ['Lock host "render01"? They take no new frames until unlocked; '
                         'running frames finish.']
        qtbot.keyClick(w.hosts_view, Qt.Key.Key_L, ctrl_shift)
        wait(qtbot, lambda: any(action == "lock" for action, _ in sim.controls))
        assert [body["hosts"] for action, body in sim.controls if action == "lock"] \
            == [["render01"]]
    finally:
        w.close()


def test_an_artist_cannot_act_on_others_jobs(qtbot, sim):
    w = make_window(qtbot, sim, mode="artist", user="ann")
    try:
        w.jobs_panel.mine.setChecked(False)
        w.jobs_view.select_id(4)                     # bob's
        reason = w.action_set.jobs.reason("pause")
        assert "artists act on their own jobs" in reason and "bob" in reason
        w.jobs_view.select_id(1)                     # ann's
        assert w.action_set.jobs.reason("pause") is None
        w.action_set.jobs["pause"].trigger()
        wait(qtbot, lambda: ("pause", [1]) in sim.controls)
    finally:
        w.close()


def test_wrangler_actions_ask_and_call(qtbot, sim):
    class Answers:
        def integer(self, *args):
            return 77

        def slots(self, job):
            return 2, 8

        def project(self, current, choices):
            assert "promo" in choices
            return "promo"
    asked = []
    w = make_window(qtbot, sim, prompts=Answers(),
                    confirm=lambda parent, q: asked.append(q) or True)
    try:
        w.jobs_view.select_id(3)
        w.action_set.jobs["priority"].trigger()
        wait(qtbot, lambda: ("priority", [3]) in sim.controls)
        w.action_set.jobs["kill"].trigger()
        wait(qtbot, lambda: ("kill", [3]) in sim.controls)
        assert asked and "Kill" in asked[0]
    finally:
        w.close()


def test_copy_command_fills_in_the_frame(qtbot, win):
    win.jobs_view.select_id(1)
    wait(qtbot, lambda: win.frames_model.rowCount() == 12 and win.layers_model.total == 2)
    win.frames_view.select_id(4)
    win.action_set.frames["copy"].trigger()
    assert QApplication.clipboard().text() == "render -s 4 -e 5 out.0004.exr"


def test_a_failed_action_shows_in_the_status_bar_and_a_box(qtbot, win, sim):
    with sim.lock:
        del sim.jobs[5]                  # gone on the supervisor, still shown here
    win.jobs_view.select_id(5)
    win.action_set.jobs["retry"].trigger()
    wait(qtbot, lambda: "failed" in win.statusBar().currentMessage())
    assert "no job 5" in win.statusBar().currentMessage()

    def shown_boxes():
        return [w for w in QApplication.topLevelWidgets()
                if isinstance(w, QMessageBox) and w.isVisible()]
    # Loading the job's frames fails too (in the status bar only) and may come first.
    wait(qtbot, shown_boxes)
    boxes = shown_boxes()
    assert "no job 5" in boxes[0].text()
    for box in boxes:
        box.close()


def test_connection_states_read_in_the_status_bar(win):
    win.on_state("reconnecting", "no reply")
    assert win.conn_label.text() == "Reconnecting"
    win.on_state("unreachable", "no reply from the supervisor")
    assert win.conn_label.text() == "Supervisor unreachable"
    assert "unreachable" in win.statusBar().currentMessage()


def test_double_click_opens_the_log(qtbot, win, sim):
    with sim.lock:
        sim.frames[2].update(attempt=1, attempt_id="2.1", host="render01")
        sim.logs[(2, 1)] = b"frame two says hi\n"
    win.jobs_view.select_id(1)
    wait(qtbot, lambda: win.frames_model.get(2) and win.frames_model.get(2)["attempt"] == 1)
    view = win.frames_view
    rect = view.visualRect(view.model().index(win.frames_model.position(2), 1))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    wait(qtbot, lambda: "frame two says hi" in win.log_panel.contents())
    caption = win.log_panel.caption.text()
    assert "job_001" in caption
    # Frame and attempt lead the caption, so a narrow dock cuts the job name, not them.
    assert caption.startswith("Frame ") and caption.index("attempt") < caption.index("job_001")


def test_default_layout_gives_each_table_room(qtbot, win):
    win.resize(1440, 900)
    win.reset_layout()
    QApplication.processEvents()
    jobs = win.jobs_model
    longest = win.jobs_view.fontMetrics().horizontalAdvance("~12:59:59")
    assert win.jobs_view.columnWidth(jobs.column_index("left")) >= longest + 12
    # The layers table shows its columns through Memory without scrolling.
    layers = win.layers_view
    memory = win.layers_model.column_index("memory")
    right = layers.horizontalHeader().sectionViewportPosition(memory) + \
        layers.columnWidth(memory)
    assert right <= layers.viewport().width()
    # No table ends in a blank strip: the last column takes the spare width.
    for view in (win.hosts_view, win.host_frames_view, win.frames_view, win.layers_view):
        assert view.horizontalHeader().stretchLastSection()
    # The hosts' running frames get several rows.
    win.hosts_dock.raise_()
    QApplication.processEvents()
    rows = win.host_frames_view.viewport().height() / win.host_frames_view.row_height()
    assert rows >= 4


def test_a_hosts_running_frames(qtbot, win, sim):
    win.hosts_view.select_id(1)
    wait(qtbot, lambda: win.host_frames_model.rowCount() == 2)
    assert {r["job_name"] for r in win.host_frames_model.rows()} == {"job_001"}
    sim.publish(frames=[{**sim.frames[2], "state": "SUCCEEDED"}])
    wait(qtbot, lambda: win.host_frames_model.rowCount() == 1)
    assert "1 frame" in win.hosts_panel.frames_caption.text()


def test_a_flagged_job_shows_why_the_supervisor_paused_it(qtbot, win, sim):
    reason = "paused: every UP host failed this job"
    sim.publish(jobs=[{**sim.jobs[3], "state": "PAUSED", "status": "paused",
                       "flagged": reason}])
    m = win.jobs_model
    col = m.column_index("status")
    wait(qtbot, lambda: (m.get(3) or {}).get("flagged") == reason)
    index = m.index(m.position(3), col)
    assert index.data() == "flagged" and index.data(SortRole) == "flagged"
    assert reason in index.data(Qt.ItemDataRole.ToolTipRole)
    win.jobs_view.select_id(3)
    wait(qtbot, lambda: reason in win.job_panel.caption.text())
    assert "paused by the supervisor" in win.job_panel.caption.text()
    # The status filter still files it under paused.
    win.jobs_panel.status_actions["paused"].setChecked(False)
    assert m.position(3) is None
    win.jobs_panel.status_actions["paused"].setChecked(True)
    # Resumed, the flag is gone and the pill says what the supervisor says.
    sim.publish(jobs=[{**sim.jobs[3], "state": "ACTIVE", "status": "running", "flagged": ""}])
    wait(qtbot, lambda: m.index(m.position(3), col).data() == "running")
    assert "paused by the supervisor" not in win.job_panel.caption.text()


def test_the_selected_jobs_time_left_comes_from_its_frames(qtbot, win, sim):
    # Two frames of 120 s done, one running (past the average), two waiting: 240 s of work
    # on the one frame running.
    states = ["SUCCEEDED", "SUCCEEDED", "RUNNING", "WAITING", "WAITING"]
    sim.publish(jobs=[rows.job(8, frames_total=5, succeeded=2, running=1, waiting=2,
                               started_at=rows.NOW - 1000)],
                layers=[rows.layer(80, job_id=8, name="render", frames_total=5, succeeded=2,
                                   running=1, waiting=2)],
                frames=[rows.frame(800 + i, job_id=8, state=state,
                                   runtime=120.0 if state == "SUCCEEDED" else None,
                                   started_at=rows.NOW - 1000 if state == "RUNNING" else None)
                        for i, state in enumerate(states)])
    m = win.jobs_model
    wait(qtbot, lambda: m.get(8) is not None)
    left = m.column_index("left")
    assert m.index(m.position(8), left).data() == ""
    win.jobs_view.select_id(8)
    wait(qtbot, lambda: m.index(m.position(8), left).data() == "~4:00")


def test_why_asks_the_supervisor(qtbot, win):
    win.jobs_view.select_id(4)
    win.action_set.jobs["why"].trigger()
    wait(qtbot, lambda: "simulated reason" in win.why_panel.text())
    assert win.why_dock.isVisible() and "job_004" in win.why_panel.caption.text()


def test_charts_sample_the_farm_and_take_history(qtbot, win, sim):
    charts = win.charts_panel
    charts.sample(now=1000.0)
    charts.sample(now=1002.0)
    t, v = charts.series["slots_total"].arrays()
    assert list(t[-2:]) == [1000.0, 1002.0] and v[-1] == 16       # render01 only: UP, open
    t, v = charts.series["running"].arrays()
    assert v[-1] == 5                  # one running frame in each unfinished job
    assert charts.projects.names == []
    charts.set_history({"running": [(900.0, 3.0), (950.0, 4.0)]})
    t, v = charts.series["running"].arrays()
    assert list(t[:2]) == [900.0, 950.0] and list(v[:2]) == [3.0, 4.0]
    assert "running" in charts.note.text()


def test_settings_remember_layout_columns_sort_filters_theme_and_mode(qtbot, sim, tmp_path):
    store = QSettings(str(tmp_path / "cuegui.ini"), QSettings.Format.IniFormat)
    w = make_window(qtbot, sim, settings=store)
    w.jobs_view.sortByColumn(w.jobs_model.column_index("priority"), Qt.SortOrder.AscendingOrder)
    w.jobs_view.setColumnHidden(w.jobs_model.column_index("user"), True)
    w.jobs_panel.status_actions["finished"].setChecked(False)
    w.frames_panel.state_buttons["DEAD"].setChecked(True)
    w.set_mode("admin")
    w.light_action.setChecked(True)
    w.hosts_dock.raise_()
    w.close()
    theme.apply_dark(QApplication.instance())
    w2 = make_window(qtbot, sim, settings=store, mode=None)
    try:
        m = w2.jobs_model
        assert m.sort_column == m.column_index("priority")
        assert w2.jobs_view.isColumnHidden(m.column_index("user"))
        assert not w2.jobs_panel.status_actions["finished"].isChecked()
        assert w2.frames_panel.checked_states() == {"DEAD"}
        assert w2.mode == "admin"
        assert store.value("theme") == "light"
        assert [r["priority"] for r in m.rows()] == sorted(r["priority"] for r in m.rows())
    finally:
        w2.close()


def test_light_theme_toggle(qtbot, win):
    dark = QApplication.palette().window().color().lightness()
    win.light_action.setChecked(True)
    assert theme.current == "light"
    assert QApplication.palette().window().color().lightness() > dark
    win.light_action.setChecked(False)
    assert theme.current == "dark"


def test_readable_with_a_large_font(qtbot, sim):
    """Sizes come from font metrics: a doubled font gives taller rows and wider columns."""
    app = QApplication.instance()
    before = app.font()
    small = make_window(qtbot, sim)
    row, col = small.jobs_view.row_height(), small.jobs_view.columnWidth(1)
    small.close()
    big = QFont(before)
    big.setPointSizeF(before.pointSizeF() * 2)
    app.setFont(big)
    try:
        large = make_window(qtbot, sim)
        assert large.jobs_view.row_height() >= row * 1.7
        assert large.jobs_view.verticalHeader().defaultSectionSize() >= row * 1.7
        assert large.jobs_view.columnWidth(1) >= col * 1.7
        assert large.jobs_panel.toolbar.iconSize().height() >= 30
        image = large.grab().toImage()
        assert image.width() > 100
        large.close()
    finally:
        app.setFont(before)


def colours(image, step: int = 3) -> int:
    """Distinct colours among a grid of the image's pixels (a blank panel has a handful)."""
    return len({image.pixel(x, y) for x in range(0, image.width(), step)
                for y in range(0, image.height(), step)})


def test_every_panel_paints(qtbot, win, sim, tmp_path):
    win.charts_panel._timer.stop()      # the chart's points: the samples taken below (and
                                        # any the timer took while the window connected)
    # The render layer names its images, and frame 3's is written: the preview shows it.
    from qtpy.QtGui import QColor, QImage, QLinearGradient, QPainter
    sim.layers[1]["outputs"] = [str(tmp_path / "beauty.####.png")]
    picture = QImage(320, 180, QImage.Format.Format_RGB32)
    gradient = QLinearGradient(0, 0, 320, 180)
    gradient.setColorAt(0, QColor("#203050"))
    gradient.setColorAt(1, QColor("#e0a040"))
    painter = QPainter(picture)
    painter.fillRect(picture.rect(), gradient)
    painter.end()
    assert picture.save(str(tmp_path / "beauty.0003.png"))
    win.jobs_view.select_id(1)
    wait(qtbot, lambda: win.frames_model.rowCount() == 12)
    wait(qtbot, lambda: win.layers_model.get(1) and win.layers_model.get(1).get("outputs"))
    win.frames_view.select_id(3)
    wait(qtbot, lambda: win.preview_panel.image is not None)
    win.charts_panel.sample(now=1000.0)
    win.charts_panel.sample(now=1002.0)
    win.show_why(1)
    wait(qtbot, lambda: "simulated reason" in win.why_panel.text())
    # Real content behind each picture, not just the panels' chrome.
    assert win.jobs_model.rowCount() > 0 and win.hosts_model.rowCount() > 0
    assert win.layers_model.rowCount() > 0 and win.frames_model.rowCount() == 12
    assert win.charts_panel.points()["slots"] >= 2
    # An empty dock (title, toolbar, header) has a few dozen colours; a filled one hundreds.
    floor = 120
    for dock in win.docks():
        dock.raise_()
        QApplication.processEvents()
        image = dock.grab().toImage()
        assert image.width() > 100 and image.height() > 100
        assert colours(image) > floor, dock.objectName()      # text, bars, curves: detail
        assert image.save(str(tmp_path / f"{dock.objectName()}.png"))


def test_a_lost_supervisor_greys_the_data_and_holds_the_actions(qtbot, sim):
    from cuegui import connection
    # With the default watchdog, a dead supervisor is told within 2.5 s.
    assert connection.IDLE_PING + connection.PING_TIMEOUT <= 2.5
    w = MainWindow(Connection(sim.address), mode="admin")
    qtbot.addWidget(w)
    w.show()
    w.connection.start()
    try:
        wait(qtbot, lambda: w.jobs_model.total == 7 and w.connection_state == "connected")
        w.jobs_view.select_id(2)
        pause, resume = w.action_set.jobs["pause"], w.action_set.jobs["resume"]
        wait(qtbot, resume.isEnabled)
        assert all(v.isEnabled() for v in w.data_views()) and w._clock.isActive()
        sim.stop()
        wait(qtbot, lambda: w.connection_state != "connected")
        assert not any(v.isEnabled() for v in w.data_views())
        assert not w._clock.isActive()                   # elapsed times stop ticking
        assert not resume.isEnabled() and "not reachable" in resume.toolTip()
        assert not w.action_set.hosts["admission"].isEnabled()
        assert "showing data as of" in w.statusBar().currentMessage()
        resume.trigger()
        sim.start()
        wait(qtbot, lambda: w.connection_state == "connected")
        assert all(v.isEnabled() for v in w.data_views()) and w._clock.isActive()
        wait(qtbot, resume.isEnabled)
        assert not pause.isEnabled()                     # the rules apply again
        assert ("resume", [2]) not in sim.controls       # nothing was sent while away
    finally:
        w.close()


def test_filters_never_leave_a_silent_empty_table_or_a_surprise_selection(qtbot, win, sim):
    panel = win.frames_panel
    win.jobs_view.select_id(1)
    wait(qtbot, lambda: win.frames_model.job_id == 1 and win.frames_model.total == 12)
    # A state filter for this job's frames...
    panel.state_buttons["DEAD"].setChecked(True)
    assert {r["state"] for r in win.frames_model.rows()} == {"DEAD"}
    # ...and a text filter that matches none: the table says so.
    panel.filter.setText("no such frame")
    wait(qtbot, lambda: win.frames_model.rowCount() == 0)
    assert win.frames_view.empty_hint() == "No frames match the filters: 12 hidden"
    assert not win.frames_view.grab().isNull()
    panel.filter.clear()
    # Another job starts with every state shown.
    win.jobs_view.select_id(3)
    wait(qtbot, lambda: win.selected_job == 3)
    assert panel.checked_states() == set()
    # Filtering the selected job out of the list selects nothing else, and the job stays.
    win.jobs_panel.filter.setText("job_004")
    wait(qtbot, lambda: win.jobs_model.rowCount() == 1)
    assert win.selected_job == 3 and win.jobs_view.selected_rows() == []
    assert "hidden by the jobs list's filters" in win.job_panel.caption.text()
    win.jobs_panel.filter.clear()
    wait(qtbot, lambda: [r["id"] for r in win.jobs_view.selected_rows()] == [3])
    assert win.selected_job == 3
    assert "hidden" not in win.job_panel.caption.text()


def test_a_long_flag_reason_wraps_and_never_widens_the_job_panel(qtbot, win, sim):
    narrow = win.job_panel.minimumSizeHint().width()
    reason = "paused: every UP host failed this job " + "with a very long message " * 30
    sim.publish(jobs=[{**sim.jobs[3], "state": "PAUSED", "status": "paused",
                       "flagged": reason}])
    wait(qtbot, lambda: (win.jobs_model.get(3) or {}).get("flagged") == reason)
    win.jobs_view.select_id(3)
    wait(qtbot, lambda: "very long message" in win.job_panel.caption.text())
    assert win.job_panel.minimumSizeHint().width() <= narrow
    assert win.job_panel.caption.wordWrap()


def test_a_frame_action_clears_the_state_filter_so_its_frames_stay_in_view(qtbot, sim):
    w = make_window(qtbot, sim, confirm=lambda parent, q: True)
    try:
        w.jobs_view.select_id(1)
        wait(qtbot, lambda: w.frames_model.total == 12)
        w.frames_panel.state_buttons["DEAD"].setChecked(True)
        dead = w.frames_model.rows()[0]
        assert w.frames_view.select_id(dead["id"])
        retry = w.action_set.frames["retry"]
        wait(qtbot, retry.isEnabled)
        retry.trigger()
        wait(qtbot, lambda: any(action == "retry" for action, _ in sim.controls))
        assert w.frames_panel.checked_states() == set()
        assert w.frames_model.position(dead["id"]) is not None
    finally:
        w.close()
