"""A big job's frames reach the window in pages from a real supervisor; a host's running frames
come from one request.  Qt's model tester watches the frames model while the pages arrive."""

from __future__ import annotations

from functools import partial

import pytest
from qtpy.QtCore import QPersistentModelIndex

from cuefarm import protocol as p
from cuegui.connection import Connection
from cuegui.models import FramesModel, IdRole
from cuegui.window import MainWindow
from tests import rows
from tests.cuegui import helpers
from tests.cuegui.test_models import SignalLog
from tests.supervisor.test_wire import Peer, register

# Qt's QAbstractItemModelTester reports problems as warnings: make them fail the test.  (The
# offscreen platform warns about size hints of the docks; that is no model problem.)
pytestmark = [pytest.mark.qt_log_level_fail("WARNING"),
              pytest.mark.qt_log_ignore("propagateSizeHints")]

WAIT = 60_000
wait = partial(helpers.wait, timeout=WAIT)
FIRST, PAGE = 70, 80       # pages of more rows than a batch inserts one by one
LAST = 70                  # six whole pages and a last one, short but still more
TOTAL = FIRST + 6 * PAGE + LAST
JOB = {"name": "pages", "project": "gui", "layers": [
    {"name": "sim", "command": "x", "range": "1-330"},
    {"name": "render", "command": "x", "range": "1-290", "depends_on": ["sim"]}]}


@pytest.fixture
def window(qtbot, sqlite_farm):
    """A window on a real supervisor, fetching frames in small pages."""
    conn = Connection(sqlite_farm.address, idle_ping=1.0, first_page=FIRST, page_size=PAGE)
    win = MainWindow(conn, mode="wrangler", confirm=lambda parent, q: True)
    win.jobs_panel.mine.setChecked(False)
    win.snapshots, win.loaded, win.pages = [], [], []
    conn.snapshot.connect(win.snapshots.append)
    conn.job_loaded.connect(win.loaded.append)
    conn.frames_page.connect(win.pages.append)
    qtbot.addWidget(win)
    win.show()
    conn.start()
    wait(qtbot, lambda: win.connection_state == "connected" and win.snapshots)
    # The first event batch after subscribing brings one more resync; from then on changes
    # arrive as events.
    sqlite_farm.client().submit({"name": "first", "layers": [
        {"name": "r", "command": "x", "range": "1"}]})
    wait(qtbot, lambda: len(win.snapshots) == 2)
    yield sqlite_farm, win
    win.close()


def test_the_frames_view_of_a_multi_page_job_shows_every_row(qtbot, qtmodeltester, window,
                                                             monkeypatch):
    farm, win = window
    # Pages at least this big are planned off the UI thread: both paths are taken.
    monkeypatch.setattr(FramesModel, "async_threshold", PAGE)
    model = win.frames_model
    qtmodeltester.check(model, force_py=True)
    log = SignalLog(model)
    client = farm.client()
    [job_id] = client.submit(JOB)
    expected = client.frames(job_id)
    assert len(expected) == TOTAL
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    assert win.jobs_view.select_id(job_id)
    wait(qtbot, lambda: win.pages and win.pages[-1].done)
    wait(qtbot, lambda: not model.loading and model.total == TOTAL)
    first = win.loaded[-1]
    assert len(first.frames) == FIRST and not first.complete
    assert [len(pg.frames) for pg in win.pages] == [PAGE] * 6 + [LAST]
    # Every row, once, in the supervisor's order (the view is unsorted), with its data.
    assert model.ids() == [f["id"] for f in expected]
    assert model.rowCount() == TOTAL and log.resets == 1
    last = model.index(TOTAL - 1, model.column_index("layer"))
    assert last.data() == "render" and last.data(IdRole) == expected[-1]["id"]
    assert not model.paging and "loading" not in win.frames_panel.caption.text()
    assert f"{TOTAL} frames" in win.frames_panel.caption.text()


def test_a_resync_pages_through_the_job_in_place(qtbot, qtmodeltester, window):
    farm, win = window
    model = win.frames_model
    client = farm.client()
    [job_id] = client.submit(JOB)
    wait(qtbot, lambda: win.jobs_model.get(job_id) is not None)
    assert win.jobs_view.select_id(job_id)
    wait(qtbot, lambda: win.pages and win.pages[-1].done and model.total == TOTAL)
    qtmodeltester.check(model, force_py=True)
    log = SignalLog(model)
    late = QPersistentModelIndex(model.index(TOTAL - 10, 0))  # a row from the last page
    late_id = late.data(IdRole)
    client.pause(job_id)                                    # the job row changes, not frames
    pages_before, snapshots_before = len(win.pages), len(win.snapshots)
    win.connection.resync()
    wait(qtbot, lambda: len(win.snapshots) > snapshots_before)
    assert not win.snapshots[-1].frames_complete and len(win.snapshots[-1].frames) == FIRST
    wait(qtbot, lambda: len(win.pages) > pages_before and win.pages[-1].done
         and not model.paging and not model.loading)
    assert model.total == TOTAL and model.ids() == [f["id"] for f in client.frames(job_id)]
    assert log.resets == 0 and log.removed == []            # in place: nothing came or went
    assert late.isValid() and late.data(IdRole) == late_id


def test_a_resync_by_pages_drops_what_no_page_had():
    model = FramesModel()
    model.show_job(1, [rows.frame(i) for i in range(1, 11)])
    model.show_job(1, [rows.frame(i) for i in range(1, 4)], complete=False)
    assert model.paging and model.total == 10
    model.add_page(1, [rows.frame(i) for i in range(4, 8)], done=False)
    model.add_page(2, [rows.frame(99, job_id=2)], done=False)          # not the job shown
    model.add_page(1, [rows.frame(8, state="DEAD")], done=True)
    assert not model.paging and model.ids() == list(range(1, 9))
    assert model.get(8)["state"] == "DEAD"
    model.add_page(1, [rows.frame(50)], done=True)                     # late: ignored
    assert model.total == 8


def test_the_hosts_view_shows_frames_running_there_from_every_job(qtbot, window):
    farm, win = window
    node = Peer(farm.port + 1)
    try:
        register(node, "node1", slots=4)
        launches = [node.recv_type(p.Launch)]                 # the fixture's job "first"
        client = farm.client()
        [a] = client.submit({"name": "alpha", "layers": [
            {"name": "render", "command": "x", "range": "1-2"}]})
        launches += [node.recv_type(p.Launch), node.recv_type(p.Launch)]
        [b] = client.submit({"name": "beta", "layers": [
            {"name": "fx", "command": "x", "range": "4"}]})
        launches.append(node.recv_type(p.Launch))
        node.send(p.Heartbeat(running=[p.RunningAttempt(la.attempt_id, pid=1)
                                       for la in launches]))
        wait(qtbot, lambda: any(h["name"] == "node1" for h in win.hosts_model.rows()))
        host_id = next(h["id"] for h in win.hosts_model.rows() if h["name"] == "node1")
        assert win.hosts_view.select_id(host_id)
        frames = win.host_frames_model
        wait(qtbot, lambda: frames.rowCount() == 4)
        assert sorted((r["job_name"], r["layer"], r["number"]) for r in frames.rows()) == [
            ("alpha", "render", 1), ("alpha", "render", 2), ("beta", "fx", 4),
            ("first", "r", 1)]
        assert {r["job_id"] for r in frames.rows()} >= {a, b}
        assert "Running on node1: 4 frames" in win.hosts_panel.frames_caption.text()
        # A frame that ends leaves the view by event.
        node.send(p.Complete([p.Completion(launches[3].attempt_id, 0, 1.0, 2.0)]))
        wait(qtbot, lambda: frames.rowCount() == 3)
        assert "beta" not in {r["job_name"] for r in frames.rows()}
    finally:
        node.close()
