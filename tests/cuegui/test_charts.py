"""The charts against a real supervisor and real rqd workers: every chart gets data points
from the supervisor (metric history, licences, usage), and what it does not record is said."""

from __future__ import annotations

import sys

import pytest

from cuegui.connection import Connection
from cuegui.models.metrics import SUPERVISOR_SERIES, fetch_metrics
from cuegui.window import MainWindow
from tests.farm import running_farm

PY = sys.executable
WAIT = 60_000


@pytest.fixture
def farm(sqlite_url, tmp_path):
    """A supervisor sampling its metrics twice a second and accounting usage every second,
    with one worker licence and two workers."""
    with running_farm(sqlite_url, tmp_path, {"CUEFARM_SUPERVISOR_METRICS_INTERVAL": "0.5",
                                             "CUEFARM_SUPERVISOR_USAGE_INTERVAL": "1"}) as f:
        f.client().set_licences(1)
        f.start_rqd("render01", 2)
        f.start_rqd("render02", 2)
        f.wait_hosts_up(["render01", "render02"])
        yield f


def run_a_job(farm, qtbot) -> int:
    """Run a job of six half-second frames to the end and wait until its usage is accounted."""
    client = farm.client()
    [job_id] = client.submit({"name": "charted", "project": "charts", "layers": [
        {"name": "render", "command": [PY, "-c", "import time; time.sleep(0.5)"],
         "range": "1-6"}]})
    client.wait(job_id, timeout=60)
    qtbot.waitUntil(lambda: any(r["slot_hours"] > 0 for r in client.usage(
        "2020-01-01", "2030-12-31", by="project")), timeout=WAIT)
    return job_id


def test_fetch_metrics_reads_every_series_licences_and_usage(farm, qtbot):
    run_a_job(farm, qtbot)
    client = farm.client()
    answer = fetch_metrics(client, {}, usage=True)
    assert answer["errors"] == []
    for key in SUPERVISOR_SERIES:
        assert answer["points"][key], key
    assert answer["licences"]["installed"] == 1
    today = answer["usage"][-1][1]
    assert today["charts"] > 0
    # Asked again from the last point held: only newer points come back.
    last = {k: v[-1][0] for k, v in answer["points"].items()}
    again = fetch_metrics(client, last, usage=False)
    assert all(t > last[k] for k, pts in again["points"].items() for t, _ in pts)
    assert again["usage"] is None


def test_every_chart_shows_points_from_the_supervisor(farm, qtbot):
    run_a_job(farm, qtbot)
    client = farm.client()
    conn = Connection(farm.address, idle_ping=1.0)
    win = MainWindow(conn, mode="admin")
    qtbot.addWidget(win)
    win.show()
    conn.start()
    try:
        charts = win.charts_panel
        win.charts_dock.raise_()
        charts.tabs.setCurrentWidget(charts.supervisor)
        qtbot.waitUntil(lambda: charts.shown(), timeout=WAIT)

        def all_drawn():
            charts.refresh_metrics()
            points = charts.points()
            return all(points[k] > 0 for k in ("cpu", "rss", "db", "rates", "backlog",
                                               "licences", "usage"))
        qtbot.waitUntil(all_drawn, timeout=WAIT)
        # History of the frame counts reaches back before the window opened.
        qtbot.waitUntil(lambda: bool(charts.history_keys), timeout=WAIT)
        assert {"running", "waiting"} <= set(charts.history_keys)
        # The curves hold what the series hold (the supervisor's points, drawn).
        sup = charts.supervisor
        # (xData: every point set, before clipping to the view.)
        for key in ("db_latency", "loop_turn_max"):   # round trips, longest loop turns
            curve = sup.curves[key]
            assert len(curve.xData) == len(sup.series[key].arrays()[0]) > 0, key
            assert (curve.yData >= 0).all(), key
        xs, ys = sup.curves["installed"].getData()
        assert len(xs) and set(ys) == {1.0}
        assert "Licences:" in sup.note.text() and "installed" in sup.note.text()
        # What the supervisor does not record is said in the note, never silently dropped.
        known = {m["name"] for m in client.metrics()}
        missing = [n for n in ("slots.used", "slots.total") if n not in known]
        for name in missing:
            assert name in charts.note.text()
        if not missing:
            assert "slots_used" in charts.history_keys
    finally:
        conn.stop()
        win.close()



def test_the_licence_chart_follows_time_and_shows_overage(qtbot):
    """Opened before any point exists, then fed a point every 30 s for ten minutes: the
    visible range keeps up with the latest point, and the time over the installed count is
    drawn where it can be seen."""
    from cuegui.models.jobs import JobsModel
    from cuegui.models.hosts import HostsModel
    from cuegui.models.frames import FramesModel
    from cuegui.views.charts import ChartsPanel
    panel = ChartsPanel(JobsModel(), HostsModel(), FramesModel())
    qtbot.addWidget(panel)
    panel.resize(1200, 900)
    panel.show()
    sup = panel.supervisor
    sup.apply({"licences": {"installed": 2, "in_use": 0}})      # nothing to draw yet
    start = 1_700_000_000.0
    view = sup.licences.getPlotItem().getViewBox()
    for k in range(21):
        t = start + 30 * k
        used = 1 if k < 10 else 4          # over the two installed from the fifth minute
        sup.apply({"points": {"licences_in_use": [(t, used)], "process_cpu": [(t, 5.0)]}})
        (left, right), _ = view.viewRange()
        assert left <= t <= right, (k, left, right)
    (left, right), (bottom, top) = view.viewRange()
    xs, tops = sup._over_top.getData()
    _, bases = sup._over_base.getData()
    over = xs[tops > bases]
    assert len(over) and left <= over.min() and over.max() <= right
    assert bottom <= 2 and top >= 4
    # The health charts follow too; a hand-made range stops following until asked again.
    (cpu_left, cpu_right), _ = sup.plots["cpu"].getPlotItem().getViewBox().viewRange()
    assert cpu_left <= start + 600 <= cpu_right
    assert panel.follow.isChecked()
    view.sigRangeChangedManually.emit([True, False])
    assert not panel.follow.isChecked() and not sup.follow
    panel.follow.setChecked(True)
    assert sup.follow


def test_charts_break_at_outages_give_running_its_own_axis_and_keep_legends_off_the_data(
        qtbot):
    import numpy as np
    from cuegui import theme
    from cuegui.models.frames import FramesModel
    from cuegui.models.hosts import HostsModel
    from cuegui.models.jobs import JobsModel
    from cuegui.models.series import with_gaps
    from cuegui.views.charts import ChartsPanel
    from cuegui.views.supcharts import PLOT_HEIGHT

    t, v = with_gaps(np.array([0.0, 2, 4, 6, 100, 102]), np.array([1.0, 2, 3, 4, 5, 6]))
    assert list(t) == [0, 2, 4, 6, 8, 98, 100, 102]
    assert np.isnan(v[4]) and np.isnan(v[5]) and list(v[[0, 3, 6, 7]]) == [1, 4, 5, 6]

    panel = ChartsPanel(JobsModel(), HostsModel(), FramesModel())
    qtbot.addWidget(panel)
    panel.resize(1200, 300)         # a short dock: the charts scroll rather than squash
    panel.show()
    panel.set_live(False)           # no samples of the (empty) models meanwhile
    start = 1_700_000_000.0
    for k in range(100):
        if 40 <= k < 70:
            continue                # the supervisor was away for a minute
        panel._store(start + 2 * k, {"slots_used": 8, "slots_total": 16, "running": 12,
                                     "waiting": 600, "projects": {"feature": 8}})
    panel.redraw()
    for key in ("running", "waiting", "slots_used"):
        ys = panel.curves[key].yData
        assert np.isnan(ys).sum() == 2, key           # one break, at the outage
    assert panel.curves["running"] in panel.frames.getPlotItem().listDataItems()
    assert panel.curves["waiting"] not in panel.frames.getPlotItem().listDataItems()
    for plot in (panel.slots, panel.frames, panel.waiting, panel.stack, panel.runtimes,
                 panel.supervisor.licences):
        assert plot.height() >= theme.scaled(PLOT_HEIGHT)
        item = plot.getPlotItem()
        item.layout.activate()
        data = item.getViewBox().sceneBoundingRect()
        assert not item.legend.sceneBoundingRect().intersects(data)
    # Not live: the timer takes no sample.
    before = len(panel.series["running"].arrays()[0])
    panel._sample_soon()
    assert len(panel.series["running"].arrays()[0]) == before


def test_a_charts_first_redraw_imports_nothing_on_the_ui_thread():
    """numpy imports some of itself on first use (np.median: numpy.ma), and under PySide every
    import reads the module's source: the first chart redraw took 26-66 ms so.  Loading the
    charts' series module loads what a redraw needs."""
    import subprocess
    code = ("import sys, numpy as np\n"
            "from cuegui.models.series import with_gaps\n"
            "before = set(sys.modules)\n"
            "with_gaps(np.array([0.0, 2, 4, 6, 100, 102]), np.arange(6.0))\n"
            "print(sorted(set(sys.modules) - before))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]", f"imported on the first redraw: {out}"
