"""Charts (pyqtgraph), in two tabs.  Farm: slots, frames running and waiting, slots per
project, and the selected job's frame runtimes and peak memory.  Supervisor: its health,
worker licences and usage per project (cuegui.views.supcharts).

Time charts follow pyqtgraph's scrollingPlots example: data in ring buffers, peak
downsampling, clipping to the visible range, a date axis; drag to pan, wheel to zoom,
right-click for pyqtgraph's menu.  Redrawing happens only while the charts are visible.
The farm charts are not linked in time: the ones with supervisor history reach back hours,
the ones sampled by this window start when it opened, and one axis would leave them blank.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import QTimer, Signal
from qtpy.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QLabel, QTabWidget,
                            QVBoxLayout, QWidget)

from cuegui import theme
from cuegui.background import Stepper
from cuegui.models.frames import runtime
from cuegui.models.series import (ProjectStack, Series, farm_sample, farm_sample_steps,
                                  with_gaps)
from cuegui.views.supcharts import (PLOT_HEIGHT, SupervisorCharts, label_axes, legend_below,
                                   scrolling, show_span, style_plot)

SAMPLE_MS = 2000
METRICS_MS = 5000          # the supervisor's figures, asked for while the charts are shown
USAGE_EVERY = 12           # usage (per day) with every 12th metrics refresh
PROJECT_COLOURS = theme.PROJECT_COLOURS
# Supervisor metric series that can stand in for the start of a chart.
HISTORY = {"slots_used": "slots.used", "slots_total": "slots.total",
           "running": "frames.running", "waiting": "frames.waiting"}
HISTORY_SPAN = 6 * 3600.0
# The farm series in words, for the note above the charts.
SERIES_WORDS = {"slots_used": "slots in use", "slots_total": "slots offered",
                "running": "frames running", "waiting": "frames waiting"}


def _plot(title: str, date_axis: bool = True, unit: str = "") -> pg.PlotWidget:
    axes = {"bottom": pg.DateAxisItem(orientation="bottom")} if date_axis else {}
    w = pg.PlotWidget(axisItems=axes)
    w.setTitle(title)
    # Axes say what they count, in words (see supcharts.label_axes).
    label_axes(w, unit, "time" if date_axis else "frame number")
    item = w.getPlotItem()
    item.setClipToView(True)
    item.setDownsampling(auto=True, mode="peak")
    item.showGrid(x=True, y=True, alpha=0.15)
    item.setMenuEnabled(True)
    w.setMouseEnabled(x=True, y=False)
    item.enableAutoRange(y=True)
    item.setAutoVisible(y=True)
    w.setMinimumHeight(theme.scaled(PLOT_HEIGHT))
    legend_below(w, 6)
    return w


class ChartsPanel(QWidget):
    """Samples `jobs_model` and `hosts_model` every SAMPLE_MS; `history_wanted` asks the
    window for metric history once (answer with `set_history`)."""

    history_wanted = Signal(dict)       # key -> supervisor series name
    metrics_wanted = Signal(dict, bool)  # last point held per series key, with usage

    def __init__(self, jobs_model, hosts_model, frames_model, parent=None):
        super().__init__(parent)
        self.jobs_model, self.hosts_model, self.frames_model = jobs_model, hosts_model, frames_model
        self.series = {k: Series(k) for k in HISTORY}
        self.projects = ProjectStack()
        self.slots = _plot("Farm slots: in use and offered", unit="slots")
        # Running (a few dozen) and waiting (thousands) on one axis would flatten running.
        self.frames = _plot("Frames running", unit="frames")
        self.waiting = _plot("Frames waiting", unit="frames")
        self.stack = _plot("Slots in use per project", unit="slots")
        self.runtimes = _plot("Selected job: frame runtime", date_axis=False, unit="seconds")
        self.memory = _plot("Selected job: peak memory", date_axis=False, unit="MB")
        for w in (self.runtimes, self.memory):
            w.setMouseEnabled(x=True, y=True)
        self.memory.setXLink(self.runtimes)
        self.supervisor = SupervisorCharts()
        self.history_errors: list[str] = []
        self.live = True
        self._metrics_pending = False
        self._metrics_count = 0
        self.curves: dict[str, Any] = {}
        self._layer_curves: dict[str, tuple] = {}
        self._job_work = Stepper(self._draw_job, self)
        self._job_dirty = True
        self.history_keys: list[str] = []
        self._legend = self.stack.getPlotItem().legend
        self._stack_curves: list = []
        self.note = QLabel()
        self.note.setObjectName("panelCaption")
        self.follow = QCheckBox("Follow time")
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep the latest samples in view; panning or zooming stops it")
        self.follow.toggled.connect(self._follow_toggled)
        for w in (self.slots, self.frames, self.waiting, self.stack,
                  *self.supervisor.plots.values(),
                  self.supervisor.licences):
            w.getPlotItem().getViewBox().sigRangeChangedManually.connect(
                lambda *_: self.follow.setChecked(False))
        grid = QGridLayout()
        grid.addWidget(self.slots, 0, 0)
        grid.addWidget(self.stack, 0, 1)
        grid.addWidget(self.frames, 1, 0)
        grid.addWidget(self.waiting, 1, 1)
        grid.addWidget(self.runtimes, 2, 0)
        grid.addWidget(self.memory, 2, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        head = QHBoxLayout()
        head.addWidget(self.note, 1)
        head.addWidget(self.follow)
        layout.addLayout(head)
        farm = scrolling(grid)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(farm, "Farm")
        self.tabs.addTab(self.supervisor, "Supervisor, licences, usage")
        self.tabs.currentChanged.connect(lambda _i: self.refresh_metrics())
        layout.addWidget(self.tabs, 1)
        self.apply_theme()
        self._history_asked = False
        self._sampler = Stepper(lambda figures: None, self)
        self._timer = QTimer(self, interval=SAMPLE_MS)
        self._timer.timeout.connect(self._sample_soon)
        self._timer.start()
        self._metrics_timer = QTimer(self, interval=METRICS_MS)
        self._metrics_timer.timeout.connect(lambda: self.shown() and self.refresh_metrics())
        self._metrics_timer.start()
        self._job_timer = QTimer(self, singleShot=True, interval=1000)
        self._job_timer.timeout.connect(self.redraw_job)
        m = frames_model
        for signal in (m.modelReset, m.dataChanged, m.rowsInserted, m.rowsRemoved,
                       m.layoutChanged):
            signal.connect(self._frames_changed)
        self._update_note()

    # -- theme --------------------------------------------------------------------------------

    def apply_theme(self) -> None:
        self._build_curves()
        for w in (self.slots, self.frames, self.waiting, self.stack, self.runtimes, self.memory):
            style_plot(w)
        self.supervisor.apply_theme()

    def _build_curves(self) -> None:
        for w in (self.slots, self.frames, self.waiting, self.runtimes, self.memory):
            w.clear()
            if w.getPlotItem().legend is not None:
                w.getPlotItem().legend.clear()
        c = theme.FRAME_COLORS
        total = pg.mkPen(theme.chrome("PLOT_FG"), width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine)
        self.curves = {
            "slots_total": self.slots.plot(pen=total, name="offered"),
            "slots_used": self.slots.plot(pen=pg.mkPen(c["RUNNING"], width=2), name="in use",
                                          fillLevel=0, brush=(232, 197, 71, 60)),
            "running": self.frames.plot(pen=pg.mkPen(c["RUNNING"], width=2), name="running",
                                        fillLevel=0, brush=(232, 197, 71, 30)),
            "waiting": self.waiting.plot(pen=pg.mkPen(c["WAITING"], width=2), name="waiting",
                                         fillLevel=0, brush=(95, 168, 224, 30)),
        }
        self._layer_curves = {}
        self._stack_curves = []
        if self._legend is not None:
            self._legend.clear()
        self.stack.clear()
        self.redraw()

    # -- data ---------------------------------------------------------------------------------

    def sample(self, now: float | None = None) -> None:
        """Take one sample of the farm from the models now, and redraw if shown."""
        self._store(time.time() if now is None else now,
                    farm_sample(self.jobs_model.all_rows(), self.hosts_model.all_rows()))

    def set_live(self, live: bool, now: float | None = None) -> None:
        """Sample only while the data are live: the rows held while the supervisor is lost
        are stale, and their time shows as a gap (a break is marked when the link is lost,
        so even an outage shorter than a few samples is not drawn across)."""
        if self.live and not live:
            now = time.time() if now is None else now
            for series in self.series.values():
                if len(series.live):
                    series.add_break(now)
            if len(self.projects.buffer):
                self.projects.add_break(now)
        self.live = live

    def _sample_soon(self) -> None:
        """The timer's sample, gathered a slice at a time."""
        if not self.live:
            return
        now = time.time()
        steps = farm_sample_steps(list(self.jobs_model.all_rows()),
                                  list(self.hosts_model.all_rows()))
        self._sampler.on_result = lambda figures: self._store(now, figures)
        self._sampler.start(steps)

    def _store(self, now: float, figures: dict) -> None:
        for key, series in self.series.items():
            series.add(now, figures[key])
        self.projects.add(now, figures["projects"])
        if self.shown():
            self.redraw()

    def shown(self) -> bool:
        """On screen: visible and not hidden behind another dock's tab."""
        return self.isVisible() and not self.visibleRegion().isEmpty()

    def want_history(self) -> None:
        """Ask once for the supervisor's metric history (the window answers)."""
        if not self._history_asked:
            self._history_asked = True
            self.history_wanted.emit(dict(HISTORY))

    def set_history(self, history: dict[str, Any]) -> None:
        """Metric history by chart key; series without history keep live samples only.
        An "errors" entry (a list of texts: series the supervisor does not record, calls
        that failed) is shown in the note."""
        history = dict(history)
        self.history_errors = list(history.pop("errors", None) or [])
        for key, points in history.items():
            if key in self.series and points:
                self.series[key].set_history(points)
        self.history_keys = sorted(k for k, v in history.items() if v)
        self._update_note()
        self.redraw()

    def history_failed(self, message: str) -> None:
        """The history query failed as a whole: say so (live samples go on)."""
        self.history_errors = [f"history: {message}"]
        self._update_note()

    def refresh_metrics(self) -> None:
        """Ask for the supervisor's figures since the last point held (one query at a time)."""
        if self._metrics_pending:
            return
        self._metrics_pending = True
        since = {k: t for k in self.supervisor.series
                 if (t := self.supervisor.last_time(k)) is not None}
        usage = self._metrics_count % USAGE_EVERY == 0
        self._metrics_count += 1
        self.metrics_wanted.emit(since, usage)

    def set_metrics(self, answer: dict) -> None:
        """The answer to metrics_wanted (see cuegui.models.metrics.fetch_metrics)."""
        self._metrics_pending = False
        self.supervisor.apply(answer or {})

    def metrics_failed(self, message: str) -> None:
        self._metrics_pending = False
        self.supervisor.apply({"errors": [message]})

    def _update_note(self) -> None:
        keys = self.history_keys
        if keys:
            text = ("History from the supervisor for "
                    + ", ".join(SERIES_WORDS.get(k, k) for k in keys)
                    + "; the rest since this window opened.")
        else:
            text = "Sampled every 2 s since this window opened."
        if self.history_errors:
            text += " No history: " + "; ".join(self.history_errors) + "."
        self.note.setText(text)
        self.note.setToolTip("\n".join(self.history_errors))

    def redraw(self) -> None:
        for key, series in self.series.items():
            t, v = with_gaps(*series.arrays())
            if key in self.curves:
                self.curves[key].setData(t, v, connect="finite")
        t, cum = with_gaps(*self.projects.stacked())
        while len(self._stack_curves) < cum.shape[1]:
            k = len(self._stack_curves)
            colour = PROJECT_COLOURS[k % len(PROJECT_COLOURS)]
            qc = pg.mkColor(colour)
            qc.setAlpha(150)
            curve = self.stack.plot(pen=pg.mkPen(colour, width=1), fillLevel=0, brush=qc,
                                    name=self.projects.names[k])
            self._stack_curves.append(curve)
            style_plot(self.stack)
        n = len(self._stack_curves)
        for k, curve in enumerate(self._stack_curves):
            curve.setData(t, cum[:, k], connect="finite")
            curve.setZValue(n - k)      # bands drawn widest first, each on the one below
        if self.follow.isChecked():
            self._follow_time()
        if self._job_dirty:
            self.redraw_job()

    def _follow_toggled(self, on: bool) -> None:
        self.supervisor.follow = on
        if on:
            self.redraw()
            self.supervisor.redraw()

    def _follow_time(self) -> None:
        """Each time chart shows all of its own data (at least the latest MIN_SPAN seconds)."""
        spans = {self.slots: [self.series["slots_used"], self.series["slots_total"]],
                 self.frames: [self.series["running"]],
                 self.waiting: [self.series["waiting"]]}
        for plot, series in spans.items():
            times = [t for t in (s.arrays()[0] for s in series) if len(t)]
            if times:
                show_span(plot, min(float(t[0]) for t in times),
                           max(float(t[-1]) for t in times))
        t, _ = self.projects.stacked()
        if len(t):
            show_span(self.stack, float(t[0]), float(t[-1]))

    def points(self) -> dict[str, int]:
        """Data points per chart (for tests and the screenshot tour)."""
        out = {"slots": len(self.series["slots_used"].arrays()[0]),
               "frames": sum(len(self.series[k].arrays()[0]) for k in ("running", "waiting")),
               "projects": len(self.projects.buffer)}
        out.update(self.supervisor.points())
        return out

    def _frames_changed(self, *_args: Any) -> None:
        self._job_dirty = True
        if self.shown() and not self._job_timer.isActive():
            self._job_timer.start()

    def redraw_job(self, wait: bool = False) -> None:
        """Runtimes and peak memory of the selected job's frames that ran, by frame number,
        one curve per layer.  The points are gathered a slice at a time (a job may have
        100,000 frames); `wait` gathers them all at once."""
        self._job_dirty = False
        self._job_work.start(job_points(list(self.frames_model.all_rows())))
        if wait:
            self._job_work.finish()

    def _draw_job(self, by_layer: dict[str, np.ndarray]) -> None:
        for name in list(self._layer_curves):
            if name not in by_layer:
                for curve, plot in zip(self._layer_curves.pop(name),
                                       (self.runtimes, self.memory)):
                    plot.removeItem(curve)
        fresh = False
        for k, name in enumerate(sorted(by_layer)):
            arr = by_layer[name]
            if name not in self._layer_curves:
                colour = PROJECT_COLOURS[(k + 2) % len(PROJECT_COLOURS)]
                self._layer_curves[name] = tuple(
                    plot.plot(pen=pg.mkPen(colour, width=1.5), name=name, symbolBrush=colour,
                              symbolPen=None)
                    for plot in (self.runtimes, self.memory))
                fresh = True
            symbol = "o" if len(arr) < 2000 else None
            for curve, col in zip(self._layer_curves[name], (1, 2)):
                curve.setData(arr[:, 0], arr[:, col], symbol=symbol, symbolSize=5)
        if fresh:
            style_plot(self.runtimes)
            style_plot(self.memory)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.redraw()
        self.refresh_metrics()


def job_points(frames: list[dict]):
    """Steps returning (frame, runtime s, peak MB) rows per layer, for the frames that ran."""
    by_layer: dict[str, list] = {}
    for i, f in enumerate(frames):
        if i % 2000 == 1999:
            yield
        rt = runtime(f)
        if rt is not None:
            by_layer.setdefault(str(f.get("layer")), []).append(
                (f.get("frame_start") or f.get("number") or 0, rt,
                 (f.get("peak_rss") or 0) / (1024 * 1024)))
    return {name: np.asarray(sorted(points), dtype=float) for name, points in by_layer.items()}
