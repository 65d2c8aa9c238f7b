"""How heavy each layer of a job is (run times, peak memory, core-hours, and a histogram of
the selected layer's run times), and a host's history (load, memory, running frames)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QHBoxLayout, QLabel, QSplitter, QVBoxLayout, QWidget

from cuegui import format as fmt
from cuegui import theme
from cuegui.models.table import RIGHT, Column, RowTableModel, field
from cuegui.views.supcharts import PLOT_HEIGHT, style_plot
from cuegui.views.table import TableView

BARS = "#5fa8e0"


def _dur(key: str):
    return lambda r: "" if r.get(key) is None else fmt.duration(r[key])


def memory_text(nbytes: int | None) -> str:
    """Bytes as people read them: MB below a gigabyte, GB above."""
    if not nbytes:
        return ""
    mb = nbytes / 2**20
    return f"{mb:.0f} MB" if mb < 1024 else f"{fmt.gigabytes(mb)} GB"


class LayerStatsModel(RowTableModel):
    """One row per layer: id is the layer id."""

    columns = [
        field("layer", "Layer", width=92),
        field("succeeded", "Done", width=42, align=RIGHT,
              header_tip="Attempts that succeeded"),
        field("failed", "Fail", width=38, align=RIGHT, header_tip="Attempts that failed"),
        field("avg", "Avg", width=56, align=RIGHT, text=_dur("avg"),
              header_tip="Average run time of the succeeded attempts"),
        field("min", "Min", width=56, align=RIGHT, text=_dur("min"),
              header_tip="Shortest run time of the succeeded attempts"),
        field("max", "Max", width=56, align=RIGHT, text=_dur("max"),
              header_tip="Longest run time of the succeeded attempts"),
        Column("peak_rss", "Peak", lambda r: r.get("peak_rss") or 0, width=60,
               align=RIGHT, text=lambda r: memory_text(r.get("peak_rss")),
               header_tip="Peak memory: the highest of any attempt"),
        field("core_hours", "Core-h", width=56, align=RIGHT,
              text=lambda r: f"{r.get('core_hours') or 0:.2f}",
              header_tip="Core-hours: slots held times run time, every ended attempt"),
    ]


def histogram(times: list[float], bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts) of run times; one bar for times all alike."""
    data = np.asarray(times, dtype=float)
    if data.size == 0:
        return np.array([0.0, 1.0]), np.array([0])
    lo, hi = float(data.min()), float(data.max())
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(data, bins=min(bins, max(1, data.size)), range=(lo, hi))
    return edges, counts


class LayerStatsPanel(QWidget):
    """A job's layers with their statistics above a histogram of the selected layer's frame
    run times."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.job_id: Any = None
        self.caption = QLabel()
        self.caption.setObjectName("panelCaption")
        self.view = TableView(LayerStatsModel())
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.sort_by(None)
        self.model: LayerStatsModel = self.view.table_model()
        self.plot = pg.PlotWidget()
        self.plot.setMinimumHeight(theme.scaled(PLOT_HEIGHT))
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.getPlotItem().showGrid(x=False, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "run time (s)")
        self.plot.setLabel("left", "frames")
        self.bars: pg.BarGraphItem | None = None
        self.shown_layer: str | None = None
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.view)
        split.addWidget(self.plot)
        split.setSizes([200, 200])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.caption)
        lay.addWidget(split, 1)
        self.view.selectionModel().currentRowChanged.connect(lambda *_: self._show_histogram())
        self.apply_theme()
        self.show_stats(None, [])

    def apply_theme(self) -> None:
        style_plot(self.plot)
        self._show_histogram()

    def show_stats(self, job_id: Any, rows: list[dict]) -> None:
        """A job's layer statistics (rows carry `runtimes`); None: no job selected."""
        keep = self.view.current_row()
        self.job_id = job_id
        self.model.replace_all([{**r, "id": r["layer_id"]} for r in rows])
        if job_id is None:
            self.caption.setText("Select a job to see how heavy each layer is")
        else:
            total = sum(r.get("core_hours") or 0 for r in rows)
            heavy = max(rows, key=lambda r: r.get("core_hours") or 0, default=None)
            more = (f"; the heaviest is {heavy['layer']}" if heavy and total > 0 else "")
            self.caption.setText(f"Layers of job {job_id}: {total:.2f} core-hours{more}")
        if rows:
            wanted = keep["id"] if keep and self.model.position(keep["id"]) is not None \
                else max(rows, key=lambda r: r.get("core_hours") or 0)["layer_id"]
            self.view.select_id(wanted)
        self._show_histogram()

    def _show_histogram(self) -> None:
        row = self.view.current_row()
        item = self.plot.getPlotItem()
        if self.bars is not None:
            item.removeItem(self.bars)
            self.bars = None
        if row is None:
            self.shown_layer = None
            item.setTitle("Frame run times", color=theme.chrome("PLOT_FG"))
            return
        times = row.get("runtimes") or []
        if not times:
            self.shown_layer = row["layer"]
            item.setTitle(f"{row['layer']}: no frame has finished yet",
                          color=theme.chrome("PLOT_FG"))
            item.setXRange(0, 1)
            item.setYRange(0, 1)
            return
        edges, counts = histogram(times)
        self.bars = pg.BarGraphItem(x0=edges[:-1], x1=edges[1:], height=counts,
                                    brush=pg.mkBrush(BARS), pen=pg.mkPen(theme.chrome("PLOT_BG")))
        item.addItem(self.bars)
        self.shown_layer = row["layer"]
        item.setTitle(f"Run times of {row['layer']}: {len(times)} frame"
                      f"{'' if len(times) == 1 else 's'}", color=theme.chrome("PLOT_FG"))
        item.enableAutoRange()


class HostHistoryPanel(QWidget):
    """One host's load, memory in use and running frames over the kept hours."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.host: str | None = None
        self.points: list[dict] = []
        self.caption = QLabel()
        self.caption.setObjectName("panelCaption")
        self.plots = {}
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.caption)
        # Side by side: the panel is wide and short (below the hosts table).
        row = QHBoxLayout()
        row.setSpacing(4)
        lay.addLayout(row, 1)
        for key, title in (("load", "Load"), ("memory_used_mb", "Memory in use (GB)"),
                           ("running", "Frames running")):
            w = pg.PlotWidget(axisItems={"bottom": pg.DateAxisItem(orientation="bottom")})
            w.setTitle(title)
            w.setMouseEnabled(x=True, y=False)
            w.getPlotItem().showGrid(x=True, y=True, alpha=0.15)
            w.setMinimumHeight(theme.scaled(120))
            w.getPlotItem().getViewBox().setLimits(yMin=0)
            self.plots[key] = w
            row.addWidget(w, 1)
        first = self.plots["load"]
        for w in self.plots.values():
            if w is not first:
                w.setXLink(first)
        self.apply_theme()
        self.show_history(None, [])

    def apply_theme(self) -> None:
        for w in self.plots.values():
            style_plot(w)
        self._draw()

    def show_history(self, host: str | None, points: list[dict]) -> None:
        self.host, self.points = host, list(points)
        if host is None:
            self.caption.setText("Select a host to see its history")
        elif not points:
            self.caption.setText(f"No history of {host} yet: a point is kept every step "
                                 "while it reports")
        else:
            span = points[-1]["t"] - points[0]["t"]
            self.caption.setText(f"History of {host}: {len(points)} points over "
                                 f"{fmt.duration(span)}")
        self._draw()

    def _draw(self) -> None:
        colours = {"load": "#e8c547", "memory_used_mb": "#a57de0", "running": "#4cb860"}
        t = np.array([p["t"] for p in self.points], dtype=float)
        for key, w in self.plots.items():
            w.clear()
            if not self.points:
                continue
            y = np.array([p[key] for p in self.points], dtype=float)
            if key == "memory_used_mb":
                y = y / 1024.0
            w.plot(t, y, pen=pg.mkPen(colours[key], width=1.5),
                   stepMode=None, fillLevel=0, brush=pg.mkBrush(colours[key] + "40"))
