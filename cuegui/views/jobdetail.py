"""The job detail panel: a job's layers, its dependency picture and its frames."""

from __future__ import annotations

import html
from typing import Any

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QLabel, QSizePolicy, QSplitter, QVBoxLayout, QWidget

from cuegui import format as fmt
from cuegui import theme
from cuegui.models.layers import LayersModel
from cuegui.views.delegates import ProgressDelegate
from cuegui.views.depgraph import DependencyGraph
from cuegui.views.frames import FramesPanel
from cuegui.views.table import TableView

DEPS_REFRESH_MS = 1500    # at most this often while a job's layers keep changing


class LayersView(TableView):
    def __init__(self, model: LayersModel | None = None, parent=None):
        super().__init__(model or LayersModel(), parent)
        self._progress = ProgressDelegate(self)
        self.setItemDelegateForColumn(self.table_model().column_index("progress"),
                                      self._progress)
        self.sort_by(None)


def summary(job: dict | None, hidden: bool = False) -> str:
    """One line about a job for the panel's caption; `hidden`: the jobs list's filters hide
    it (it stays shown here)."""
    if job is None:
        return "No job selected: pick one in the jobs list"
    parts = [f"<b>{job.get('name')}</b>", f"#{job.get('id')}", str(job.get("user") or ""),
             str(job.get("project") or ""), str(job.get("status") or ""),
             f"priority {job.get('priority')}"]
    if job.get("started_at"):
        parts.append("elapsed " + fmt.duration(fmt.span(job["started_at"], job.get("finished_at"))))
    if job.get("slots_used"):
        parts.append(f"{job['slots_used']} slots")
    if job.get("flagged"):
        colour = theme.state_text(theme.JOB_COLORS, "flagged").name()
        parts.append(f"<span style='color:{colour}'><b>&#9873; paused by the supervisor: "
                     f"{html.escape(str(job['flagged']))}</b></span>")
    if hidden:
        parts.append("<i>hidden by the jobs list's filters</i>")
    return "  ·  ".join(p for p in parts if p)


class JobDetailPanel(QWidget):
    """Layers and dependency graph side by side above the frames; `want_dependencies` asks the
    window to fetch a job's dependencies again (they change as layers finish)."""

    want_dependencies = Signal(object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.job_id: Any = None
        self.caption = QLabel()
        self.caption.setObjectName("panelCaption")
        self.caption.setTextFormat(Qt.TextFormat.RichText)
        # A long caption (a flagged job's reason) wraps within the panel; it never sets the
        # panel's width, which would stay wide after it is gone.
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.layers_view = LayersView()
        self.layers_model: LayersModel = self.layers_view.table_model()
        self.graph = DependencyGraph()
        self.frames_panel = FramesPanel()
        top = QSplitter(Qt.Orientation.Horizontal)
        top.setObjectName("jobTopSplitter")
        top.addWidget(self.layers_view)
        top.addWidget(self.graph)
        # The layers' columns (progress, range, chunk, slots, memory, ...) need the width
        # more than the graph, which scrolls and reads at a glance.
        top.setStretchFactor(0, 3)
        top.setStretchFactor(1, 1)
        top.setSizes([750, 250])
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("jobSplitter")
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.frames_panel)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setSizes([200, 300])
        self.top_splitter = top
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.caption)
        layout.addWidget(self.splitter, 1)
        self._deps_timer = QTimer(self, singleShot=True, interval=DEPS_REFRESH_MS)
        self._deps_timer.timeout.connect(lambda: self.job_id is not None
                                         and self.want_dependencies.emit(self.job_id))
        self.graph.layer_activated.connect(self._layer_activated)
        self.show_job(None)

    def show_job(self, job: dict | None, hidden: bool = False) -> None:
        """Caption and frame counts for the job shown (None: nothing selected)."""
        self.caption.setText(summary(job, hidden))
        self.frames_panel.show_job(job)

    def load(self, job_id: Any, layers: list[dict], deps: list[dict]) -> None:
        """A newly selected job's layers and dependencies (frames go to the frames model)."""
        self.job_id = job_id
        self.layers_model.show_job(job_id, layers)
        self.graph.show_job(job_id, self.layers_model.rows(), deps)

    def layers_changed(self) -> None:
        """The layers model changed: redraw the graph and refetch dependencies soon."""
        self.graph.update_layers(self.layers_model.rows())
        self.refresh_dependencies_soon()

    def refresh_dependencies_soon(self) -> None:
        if not self._deps_timer.isActive():
            self._deps_timer.start()

    def _layer_activated(self, name: str) -> None:
        """Double-clicking a layer box selects the layer and filters the frames by its name."""
        layer = self.layers_model.by_name(name)
        if layer is not None:
            self.layers_view.select_id(layer["id"])
        self.frames_panel.filter.setText(name)
