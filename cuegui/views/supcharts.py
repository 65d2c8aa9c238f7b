"""Charts of the supervisor's own figures: its health, worker licences, usage per project.

The data come from the supervisor's metric history (`cuegui.models.metrics.fetch_metrics`),
refreshed while the charts are on screen; the points live in ring buffers like the farm charts.
The health charts share one time axis (their data start together, at the supervisor's first
sample); the licence chart has its own.  Usage is slot-hours per project per day, stacked bars.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtWidgets import QFrame, QGridLayout, QLabel, QScrollArea, QVBoxLayout, QWidget

from cuegui import theme
from cuegui.models.metrics import SUPERVISOR_SERIES
from cuegui.models.series import Series, with_gaps

MB = 1024 * 1024
# plot -> [(series key, legend name, colour, scale)]
HEALTH = {
    "cpu": ("Supervisor CPU and machine memory",
            [("process_cpu", "process CPU", "#e8c547", 1.0),
             ("host_cpu", "machine CPU", "#5fa8e0", 1.0),
             ("host_memory", "machine memory", "#a57de0", 1.0)]),
    "rss": ("Supervisor memory", [("process_rss", "resident", "#4cb860", 1.0 / MB)]),
    "db": ("Database round trip and longest loop turn",
           [("db_latency", "SELECT 1", "#e89a3c", 1000.0),
            ("loop_turn_max", "loop turn", "#5fa8e0", 1000.0)]),
    "rates": ("Dispatches and reports",
              [("dispatch_rate", "dispatches", "#4cb860", 1.0),
               ("report_rate", "reports", "#5fa8e0", 1.0)]),
    "backlog": ("Event backlog: rows waiting to be published",
                [("events_backlog", "rows", "#e5534b", 1.0)]),
}
# What the left axis of each chart counts, in words.
UNITS = {"cpu": "percent", "rss": "MB", "db": "milliseconds", "rates": "per second",
         "backlog": "rows"}


PLOT_HEIGHT = 260         # at a 16-pixel line height: a title, axis names, a legend, and
                          # still some 120 pixels of data


def legend_below(w: pg.PlotWidget, columns: int = 4) -> pg.LegendItem:
    """A legend on a row of its own under the x axis, never over the data."""
    item = w.getPlotItem()
    legend = pg.LegendItem(colCount=columns, horSpacing=18, verSpacing=-6)
    item.layout.addItem(legend, 4, 1)
    item.layout.setAlignment(legend, pg.QtCore.Qt.AlignmentFlag.AlignLeft)
    # As wide as its entries, not the plot: names sit together at the left.
    legend.setSizePolicy(pg.QtWidgets.QSizePolicy.Policy.Maximum,
                         pg.QtWidgets.QSizePolicy.Policy.Maximum)
    item.legend = legend            # curves made with name= join it
    return legend


def label_axes(w: pg.PlotWidget, left: str, bottom: str) -> None:
    """Name what the axes count, in words ("frames", "time"), not field names."""
    item = w.getPlotItem()
    if left:
        item.setLabel("left", left)
    if bottom:
        item.setLabel("bottom", bottom)


def time_plot(title: str, unit: str = "") -> pg.PlotWidget:
    """A time chart: date axis, x pan and zoom, peak downsampling, clipped to view."""
    w = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
    w.setTitle(title)
    label_axes(w, unit, "time")
    item = w.getPlotItem()
    item.setClipToView(True)
    item.setDownsampling(auto=True, mode="peak")
    item.showGrid(x=True, y=True, alpha=0.15)
    w.setMouseEnabled(x=True, y=False)
    item.enableAutoRange(y=True)
    item.setAutoVisible(y=True)
    w.setMinimumHeight(theme.scaled(PLOT_HEIGHT))
    legend_below(w)
    return w


MIN_SPAN = 10.0            # a time chart shows at least this many seconds


def show_span(plot: pg.PlotWidget, first: float, last: float) -> None:
    """Show `first` to `last` (at least the latest MIN_SPAN seconds) on a time chart."""
    plot.getPlotItem().getViewBox().setXRange(min(first, last - MIN_SPAN), last + 5, padding=0)


def scrolling(grid) -> QScrollArea:
    """`grid` in a vertical scroll area: charts keep a readable height in a short dock."""
    inner = QWidget()
    inner.setLayout(grid)
    grid.setContentsMargins(0, 0, 0, 0)
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(pg.QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(inner)
    return area


def style_plot(w: pg.PlotWidget) -> None:
    """Background, axes, title and legend text in the theme's chart colours."""
    bg, fg = theme.chrome("PLOT_BG"), theme.chrome("PLOT_FG")
    w.setBackground(bg)
    item = w.getPlotItem()
    for name in ("left", "bottom"):
        axis = item.getAxis(name)
        axis.setPen(pg.mkPen(fg))
        axis.setTextPen(pg.mkPen(fg))
    item.titleLabel.setText(item.titleLabel.text, color=fg)
    legend = item.legend
    if legend is not None:
        back = pg.mkColor(bg)
        back.setAlpha(200)       # the legend stays readable over a curve
        legend.setBrush(pg.mkBrush(back))
        legend.setLabelTextColor(fg)
        for _sample, label in legend.items:
            label.setText(label.text, color=fg)


class SupervisorCharts(QWidget):
    """Health, licence and usage charts; feed with `apply(answer)` from fetch_metrics."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.series = {k: Series(k) for k in SUPERVISOR_SERIES}
        self.plots: dict[str, pg.PlotWidget] = {k: time_plot(t, UNITS[k])
                                                for k, (t, _) in HEALTH.items()}
        self.licences = time_plot("Worker licences in use against installed", "licences")
        self.usage = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
        self.usage.setTitle("Slot-hours per project per day")
        label_axes(self.usage, "slot-hours", "day")
        self.usage.setMouseEnabled(x=True, y=False)
        self.usage.getPlotItem().showGrid(x=False, y=True, alpha=0.15)
        legend_below(self.usage, 6)
        self.usage.setMinimumHeight(theme.scaled(PLOT_HEIGHT))
        first = self.plots["cpu"]
        for w in self.plots.values():
            if w is not first:
                w.setXLink(first)     # the same start: one axis for all of them
        self.follow = True          # keep the latest points in view (ChartsPanel's toggle)
        self.installed: int | None = None
        self.licence_status: dict | None = None
        self.usage_days: list[tuple[dt.date, dict[str, float]]] = []
        self.errors: list[str] = []
        self.curves: dict[str, Any] = {}
        self.note = QLabel()
        self.note.setObjectName("panelCaption")
        self.note.setWordWrap(True)
        grid = QGridLayout()
        for k, key in enumerate(("cpu", "rss", "db", "rates", "backlog")):
            grid.addWidget(self.plots[key], k // 2, k % 2)
        grid.addWidget(self.licences, 2, 1)
        grid.addWidget(self.usage, 3, 0, 1, 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.note)
        layout.addWidget(scrolling(grid), 1)
        self.apply_theme()

    # -- drawing --------------------------------------------------------------------------------

    def all_plots(self) -> list[pg.PlotWidget]:
        return [*self.plots.values(), self.licences, self.usage]

    def apply_theme(self) -> None:
        fg = theme.chrome("PLOT_FG")
        for w in self.all_plots():
            w.clear()
            legend = w.getPlotItem().legend
            if legend is not None:
                legend.clear()
        self.curves = {}
        for plot_key, (_title, lines) in HEALTH.items():
            for key, name, colour, _scale in lines:
                self.curves[key] = self.plots[plot_key].plot(pen=pg.mkPen(colour, width=2),
                                                             name=name)
        dash = pg.mkPen(fg, width=1.5, style=pg.QtCore.Qt.PenStyle.DashLine)
        self.curves["installed"] = self.licences.plot(pen=dash, name="installed")
        self.curves["licences_in_use"] = self.licences.plot(
            pen=pg.mkPen(theme.FRAME_COLORS["RUNNING"], width=2), name="in use")
        over = pg.mkColor(theme.FRAME_COLORS["DEAD"])
        over.setAlpha(110)
        self._over_top = pg.PlotDataItem()
        self._over_base = pg.PlotDataItem()
        self.overage = pg.FillBetweenItem(self._over_base, self._over_top, brush=over)
        self.licences.addItem(self.overage)
        legend = self.licences.getPlotItem().legend
        legend.addItem(pg.BarGraphItem(x=[0], height=[0], width=1, brush=over), "overage")
        self._bars: list = []
        for w in self.all_plots():
            style_plot(w)
        self.redraw()

    def apply(self, answer: dict) -> None:
        """Take an answer of fetch_metrics: new points, licence status, usage, errors."""
        for key, points in (answer.get("points") or {}).items():
            if key in self.series:
                for t, v in points:
                    self.series[key].add(t, v)
        if answer.get("licences") is not None:
            self.licence_status = answer["licences"]
            self.installed = self.licence_status.get("installed")
        if answer.get("usage") is not None:
            self.usage_days = answer["usage"]
        self.errors = list(answer.get("errors") or [])
        self._update_note()
        self.redraw()

    def last_time(self, key: str) -> float | None:
        t, _ = self.series[key].arrays()
        return float(t[-1]) if len(t) else None

    def _update_note(self) -> None:
        parts = []
        st = self.licence_status
        if st is not None:
            inst = st.get("installed")
            parts.append(f"Licences: {st.get('in_use', 0)} in use of "
                         f"{'unlimited' if inst is None else inst} installed"
                         + (f", {st['overage_now']} over" if st.get("overage_now") else ""))
        if self.errors:
            parts.append("Not shown: " + "; ".join(self.errors))
        self.note.setText(" · ".join(parts) or "From the supervisor's metric history.")

    def redraw(self) -> None:
        for plot_key, (_title, lines) in HEALTH.items():
            for key, _name, _colour, scale in lines:
                t, v = with_gaps(*self.series[key].arrays())
                self.curves[key].setData(t, v * scale, connect="finite")
        self._draw_licences()
        self._draw_usage()
        if self.follow:
            self.follow_time()

    def follow_time(self) -> None:
        """Each time chart shows all of its data up to the latest point."""
        spans = {self.licences: ["licences_in_use"]}
        for plot_key, (_title, lines) in HEALTH.items():
            spans[self.plots[plot_key]] = [key for key, *_ in lines]
        for plot, keys in spans.items():
            times = [t for t in (self.series[k].arrays()[0] for k in keys) if len(t)]
            if times:
                show_span(plot, min(float(t[0]) for t in times),
                          max(float(t[-1]) for t in times))

    def _draw_licences(self) -> None:
        # No x range is set while there is no data: a range set by hand turns pyqtgraph's
        # auto-range off, and the chart would stay on that first minute for good.
        t, used = with_gaps(*self.series["licences_in_use"].arrays())
        self.curves["licences_in_use"].setData(t, used, connect="finite")
        if self.installed is None or not len(t):
            self.curves["installed"].setData([], [])
            self._over_top.setData([], [])
            self._over_base.setData([], [])
            return
        installed = np.where(np.isnan(used), np.nan, float(self.installed))
        self.curves["installed"].setData(t, installed, connect="finite")
        # The part above the installed count: between the installed line and max(use, it);
        # nothing across a gap.
        self._over_base.setData(t, np.nan_to_num(installed, nan=float(self.installed)))
        self._over_top.setData(t, np.where(np.isnan(used), float(self.installed),
                                           np.maximum(used, installed)))
        item = self.licences.getPlotItem()
        item.setAutoVisible(y=False)
        item.enableAutoRange(y=False)     # from zero, so the overage reads against the whole
        item.setYRange(0, max(float(np.nanmax(used, initial=0)), float(self.installed)) * 1.15
                       + 0.5, padding=0)

    def _draw_usage(self) -> None:
        for bar in self._bars:
            self.usage.removeItem(bar)
        self._bars = []
        legend = self.usage.getPlotItem().legend
        legend.clear()
        if not self.usage_days:
            return
        projects = sorted({p for _, day in self.usage_days for p in day})
        x = np.array([dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.timezone.utc).timestamp()
                      for d, _ in self.usage_days])
        base = np.zeros(len(x))
        for k, name in enumerate(projects):
            h = np.array([day.get(name, 0.0) for _, day in self.usage_days])
            colour = theme.PROJECT_COLOURS[k % len(theme.PROJECT_COLOURS)]
            bar = pg.BarGraphItem(x=x, height=h, y0=base, width=0.7 * 86400, brush=colour,
                                  pen=pg.mkPen(theme.chrome("PLOT_BG")))
            self.usage.addItem(bar)
            legend.addItem(bar, name)
            self._bars.append(bar)
            base = base + h
        style_plot(self.usage)
        self.usage.getPlotItem().setXRange(x[0] - 86400, x[-1] + 86400, padding=0)

    def points(self) -> dict[str, int]:
        """Data points per chart (for tests and the screenshot tour)."""
        out = {k: sum(len(self.series[s].arrays()[0]) for s, *_ in lines)
               for k, (_t, lines) in HEALTH.items()}
        out["licences"] = len(self.series["licences_in_use"].arrays()[0])
        out["usage"] = sum(int(np.count_nonzero(b.opts["height"])) for b in self._bars)
        return out
