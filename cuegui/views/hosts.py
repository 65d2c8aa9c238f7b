"""The hosts panel: hosts above the frames running on the selected one."""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QLabel, QSplitter, QTabWidget, QVBoxLayout, QWidget

from cuegui import theme
from cuegui.models.frames import HostFramesModel
from cuegui.models.hosts import HostsModel
from cuegui.views.delegates import StateDelegate
from cuegui.views.table import TablePanel, TableView


class HostsView(TableView):
    def __init__(self, model: HostsModel | None = None, parent=None):
        super().__init__(model or HostsModel(), parent)
        m = self.table_model()
        self._state = StateDelegate(theme.HOST_COLORS, self, quiet=frozenset({"UP"}))
        self._lock = StateDelegate(theme.LOCK_COLORS, self, quiet=frozenset({"OPEN"}))
        self.setItemDelegateForColumn(m.column_index("state"), self._state)
        self.setItemDelegateForColumn(m.column_index("lock"), self._lock)
        self.sort_by("name")


class HostFramesView(TableView):
    def __init__(self, parent=None):
        super().__init__(HostFramesModel(), parent)
        self.stretch("job")
        self.sort_by("started_at")


class HostsPanel(TablePanel):
    """The hosts table; below it (in `self.outer`) the frames running on the selected host."""

    def __init__(self, parent=None):
        super().__init__(HostsView(), "Filter hosts", parent)
        self.frames_view = HostFramesView()
        self.frames_caption = QLabel("Select a host to see what runs on it")
        self.frames_caption.setObjectName("panelCaption")
        below = QWidget()
        lay = QVBoxLayout(below)
        lay.setContentsMargins(0, 2, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.frames_caption)
        lay.addWidget(self.frames_view)
        # Move the table into a splitter shared with the running frames.
        layout = self.layout()
        layout.removeWidget(self.view)
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.setObjectName("hostsSplitter")
        self.splitter.addWidget(self.view)
        # The selected host's running frames, and beside them its history and comments.
        self.tabs = QTabWidget()
        self.tabs.setObjectName("hostTabs")
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(below, "Running")
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        layout.addWidget(self.splitter)
        self.host: dict | None = None
        m = self.frames_view.table_model()
        for signal in (m.rowsInserted, m.rowsRemoved, m.modelReset):
            signal.connect(lambda *_: self.show_host(self.host))

    def show_host(self, host: dict | None) -> None:
        self.host = host
        if host is None:
            self.frames_caption.setText("Select a host to see what runs on it")
        else:
            n = self.frames_view.table_model().rowCount()
            self.frames_caption.setText(f"Running on {host.get('name')}: {n} frame"
                                        f"{'' if n == 1 else 's'}")
