"""Charts people read: a short outage still breaks the lines, every axis says what it counts
in words, running and waiting keep their own axes, and plots keep a readable height."""

from __future__ import annotations

import numpy as np

from cuegui import theme
from cuegui.models.frames import FramesModel
from cuegui.models.hosts import HostsModel
from cuegui.models.jobs import JobsModel
from cuegui.views.charts import ChartsPanel
from cuegui.views.supcharts import PLOT_HEIGHT

SAMPLE = {"slots_used": 8, "slots_total": 16, "running": 12, "waiting": 600,
          "projects": {"feature": 8}}


def _panel(qtbot, height=900) -> ChartsPanel:
    panel = ChartsPanel(JobsModel(), HostsModel(), FramesModel())
    qtbot.addWidget(panel)
    panel.resize(1200, height)
    panel.show()
    return panel


def test_a_short_outage_is_not_drawn_across(qtbot):
    panel = _panel(qtbot)
    panel._timer.stop()                 # only the samples the test takes
    start = 1_700_000_000.0
    for k in range(10):
        panel._store(start + 2 * k, SAMPLE)
    panel.redraw()
    assert not np.isnan(panel.curves["running"].yData).any()
    # Lost for four seconds: too short for a pause in the samples to read as a gap alone.
    panel.set_live(False, now=start + 19)
    panel.set_live(True)
    for k in range(11, 14):
        panel._store(start + 2 * k, SAMPLE)
    panel.redraw()
    for key in ("running", "waiting", "slots_used", "slots_total"):
        ys = panel.curves[key].yData
        assert np.isnan(ys).sum() == 1, key
        assert not np.isnan(ys[:10]).any() and not np.isnan(ys[-3:]).any(), key
    assert np.isnan(panel._stack_curves[0].yData).sum() == 1
    # Losing the link again while already lost adds no second break.
    panel.set_live(False, now=start + 27)
    panel.set_live(False, now=start + 28)
    assert np.isnan(panel.series["running"].arrays()[1]).sum() == 2


def test_axes_are_labelled_in_words_and_plots_stay_tall(qtbot):
    panel = _panel(qtbot, height=300)   # a short dock: the charts scroll, not squash
    sup = panel.supervisor
    expect = {panel.slots: ("slots", "time"), panel.frames: ("frames", "time"),
              panel.waiting: ("frames", "time"), panel.stack: ("slots", "time"),
              panel.runtimes: ("seconds", "frame number"), panel.memory: ("MB", "frame number"),
              sup.plots["cpu"]: ("percent", "time"), sup.plots["rss"]: ("MB", "time"),
              sup.plots["db"]: ("milliseconds", "time"),
              sup.plots["rates"]: ("per second", "time"), sup.plots["backlog"]: ("rows", "time"),
              sup.licences: ("licences", "time"), sup.usage: ("slot-hours", "day")}
    for plot, (left, bottom) in expect.items():
        item = plot.getPlotItem()
        assert item.getAxis("left").labelText == left, plot.getPlotItem().titleLabel.text
        assert item.getAxis("bottom").labelText == bottom
        assert item.getAxis("left").isVisible() and item.getAxis("left").showLabel
        assert "_" not in item.titleLabel.text       # words, not field names
    # Running and waiting are counted on separate axes (two plots, one curve each).
    assert panel.frames.getPlotItem().listDataItems() == [panel.curves["running"]]
    assert panel.waiting.getPlotItem().listDataItems() == [panel.curves["waiting"]]
    for plot in expect:
        plot.getPlotItem().layout.activate()
    for plot in (panel.slots, panel.frames, panel.waiting, panel.stack, panel.runtimes,
                 panel.memory, *sup.plots.values()):
        assert plot.height() >= theme.scaled(PLOT_HEIGHT)
        # Title, axis names and legend leave the data room to be read.
        assert plot.getPlotItem().getViewBox().height() >= theme.scaled(100)


def test_the_note_names_series_in_words(qtbot):
    panel = _panel(qtbot)
    panel.set_history({"slots_used": [(1.0, 2.0)], "waiting": [(1.0, 5.0)]})
    assert "slots in use" in panel.note.text() and "frames waiting" in panel.note.text()
    assert "_" not in panel.note.text()


def test_axis_labels_follow_the_theme(qtbot):
    panel = _panel(qtbot)
    theme.apply(qtbot_app(), "light")
    try:
        panel.apply_theme()
        fg = theme.chrome("PLOT_FG")
        axis = panel.frames.getPlotItem().getAxis("left")
        assert axis.labelStyle["color"].lower() == fg.lower()
    finally:
        theme.apply_dark(qtbot_app())


def qtbot_app():
    from qtpy.QtWidgets import QApplication
    return QApplication.instance()
