"""The main window: docks for jobs, the selected job, its log, hosts, charts and Why; menus,
toolbars, status bar.

The window owns the models and applies what the connection worker sends; it never does
network I/O itself.  Layout, columns, sorting, filters, theme and mode are remembered.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace
from typing import Any

from qtpy.QtCore import QModelIndex, QSettings, QSize, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPixmap
from qtpy.QtWidgets import (QApplication, QDockWidget, QLabel, QMainWindow, QMessageBox,
                            QTabWidget, QWidget)

from cuefarm.client import current_user
from cuegui.jobnotices import JobNotices
from cuegui import permissions, settings as stored, theme
from cuegui.actions import ask
from cuegui.connection import Connection
from cuegui.hostactions import HostActions
from cuegui.jobactions import JobActions
from cuegui.menus import build_menus, build_toolbars
from cuegui.notes import Notes
from cuegui.updates import Updates
from cuegui.views.charts import ChartsPanel
from cuegui.views.dialogs import Prompts
from cuegui.views.hosts import HostsPanel
from cuegui.views.jobdetail import JobDetailPanel
from cuegui.views.jobs import JobsPanel
from cuegui.views.log import LogPanel
from cuegui.views.preview import PreviewPanel
from cuegui.views.savedviews import SavedViews
from cuegui.views.why import WhyPanel
from cuegui.wrangleactions import WrangleActions, extend_menus

log = logging.getLogger(__name__)

OFFLINE = "the supervisor is not reachable; this waits until it is back"
STATE_TEXT = {"connecting": "Connecting", "connected": "Connected",
              "reconnecting": "Reconnecting", "unreachable": "Supervisor unreachable"}


def _dot(colour: str, size: int) -> QPixmap:
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor(colour))
    p.drawEllipse(0, 0, size, size)
    p.end()
    return pix


class MainWindow(QMainWindow):
    """Shows the farm through `connection`, which must not be started yet.

    `settings` is where layout and choices are remembered (None: nothing is); `mode` is
    artist, wrangler or admin (None: the remembered one, else artist); `confirm` and `prompts`
    ask the user questions (tests answer them)."""

    def __init__(self, connection: Connection, settings: QSettings | None = None,
                 user: str | None = None, mode: str | None = None, confirm=ask,
                 prompts: Prompts | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.connection = connection
        self.settings = settings
        self.user = user or current_user()
        self.mode = mode or (stored.mode(settings) if settings is not None else None) \
            or permissions.ARTIST
        if self.mode not in permissions.MODES:
            self.mode = permissions.ARTIST
        self.role: str | None = None      # the supervisor's word, once connected
        self.theme_name = theme.current
        self.confirm = confirm
        self.prompts = prompts or Prompts(self)
        self.connection_state = "connecting"
        self.stale_since: float | None = None     # when the data shown stopped being live
        self.setWindowTitle(f"CueFarm - {connection.address}")
        self.setWindowIcon(theme.icon("cuegui"))
        self.setDockNestingEnabled(True)
        self.setTabPosition(Qt.DockWidgetArea.AllDockWidgetAreas, QTabWidget.TabPosition.North)
        self.resize(QSize(theme.scaled(1440, self), theme.scaled(900, self)))

        self.job_notices = JobNotices(self, settings)
        self.jobs_panel = JobsPanel(self.user)
        self.job_panel = JobDetailPanel()
        self.hosts_panel = HostsPanel()
        self.log_panel = LogPanel()
        self.why_panel = WhyPanel()
        self.frames_panel = self.job_panel.frames_panel
        self.jobs_view = self.jobs_panel.view
        self.frames_view = self.frames_panel.view
        self.hosts_view = self.hosts_panel.view
        self.layers_view = self.job_panel.layers_view
        self.host_frames_view = self.hosts_panel.frames_view
        self.jobs_model = self.jobs_view.table_model()
        self.frames_model = self.frames_view.table_model()
        self.hosts_model = self.hosts_view.table_model()
        self.layers_model = self.job_panel.layers_model
        self.host_frames_model = self.host_frames_view.table_model()
        self.charts_panel = ChartsPanel(self.jobs_model, self.hosts_model, self.frames_model)
        self.selected_job: Any = None
        self.selected_host: str | None = None

        self.jobs_dock = self._dock("Jobs", self.jobs_panel)
        self.hosts_dock = self._dock("Hosts", self.hosts_panel)
        self.charts_dock = self._dock("Charts", self.charts_panel)
        self.job_dock = self._dock("Job", self.job_panel)
        self.log_dock = self._dock("Log", self.log_panel)
        self.why_dock = self._dock("Why", self.why_panel)
        self.preview_panel = PreviewPanel()
        self.preview_dock = self._dock("Preview", self.preview_panel)
        self.frames_dock = self.job_dock         # the frames live in the job dock
        self._stretch_tables()
        self._default_layout()

        self.job_actions = JobActions(self)
        self.host_actions = HostActions(self)
        self.wrangle_actions = WrangleActions(self)
        # Every action group by subject: jobs, frames, deps, hosts (and the queue and layer
        # actions of wrangling).
        self.action_set = SimpleNamespace(jobs=self.job_actions.jobs,
                                          frames=self.job_actions.frames,
                                          deps=self.job_actions.deps,
                                          hosts=self.host_actions.hosts,
                                          queue=self.wrangle_actions.frames,
                                          layers=self.wrangle_actions.layers,
                                          depend=self.wrangle_actions.jobs)
        build_toolbars(self)
        self.notes = Notes(self)
        build_menus(self)
        extend_menus(self)
        self._build_status_bar()
        self.updates = Updates(self)
        self._wire()
        self._restored = settings is not None and stored.restore(self)
        if not self._restored:
            # First run: an artist sees their own jobs.
            self.jobs_panel.mine.setChecked(self.mode == permissions.ARTIST)
        # Named job filters, kept per user, switched from the jobs panel's filter row.
        self.saved_views = SavedViews(self.jobs_panel, settings)
        self.jobs_panel.filters.insertWidget(0, self.saved_views)
        self.saved_views.message.connect(self.show_message)
        self.saved_views.restore_current()
        self.update_actions()

    # -- building -------------------------------------------------------------------------------

    def _dock(self, title: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"{title.lower()}Dock")      # names for saveState/restoreState
        dock.setWidget(widget)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        return dock

    def _default_layout(self) -> None:
        top, bottom = Qt.DockWidgetArea.TopDockWidgetArea, Qt.DockWidgetArea.BottomDockWidgetArea
        self.addDockWidget(top, self.jobs_dock)
        self.tabifyDockWidget(self.jobs_dock, self.hosts_dock)
        self.tabifyDockWidget(self.hosts_dock, self.charts_dock)
        self.addDockWidget(bottom, self.job_dock)
        self.splitDockWidget(self.job_dock, self.log_dock, Qt.Orientation.Horizontal)
        # The selected frame's image under its log (split before Why joins the log's tabs:
        # splitting a tabbed dock takes it out of its tabs).
        self.splitDockWidget(self.log_dock, self.preview_dock, Qt.Orientation.Vertical)
        self.tabifyDockWidget(self.log_dock, self.why_dock)
        if getattr(self, "notes", None) is not None:
            self.notes.place_docks()
        self.jobs_dock.raise_()
        self.log_dock.raise_()
        self._size_docks()

    def _size_docks(self) -> None:
        """Share the window: the job detail gets the most room, then the jobs list (which
        shares its place with the hosts, whose running frames need rows of their own)."""
        w, h = max(self.width(), 800), max(self.height(), 600)
        self.resizeDocks([self.jobs_dock, self.job_dock], [h * 44 // 100, h * 56 // 100],
                         Qt.Orientation.Vertical)
        self.resizeDocks([self.job_dock, self.log_dock], [w * 62 // 100, w * 38 // 100],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([self.log_dock, self.preview_dock], [h * 38 // 100, h * 18 // 100],
                         Qt.Orientation.Vertical)
        # Hosts above, the selected host's running frames below: room for several of each.
        self.hosts_panel.splitter.setSizes([h * 22 // 100, h * 18 // 100])

    def _stretch_tables(self) -> None:
        """The last column of each table takes the spare width, so none ends in a blank."""
        for view in (self.hosts_view, self.host_frames_view, self.frames_view,
                     self.layers_view):
            view.horizontalHeader().setStretchLastSection(True)

    def reset_layout(self) -> None:
        """Put every dock back where it starts."""
        for dock in self.docks():
            dock.setFloating(False)
            dock.show()
        self._default_layout()

    def docks(self) -> list[QDockWidget]:
        return [self.jobs_dock, self.hosts_dock, self.charts_dock, self.job_dock, self.log_dock,
                self.why_dock, self.preview_dock, *self.notes.docks()]

    def tables(self) -> dict:
        return {"jobs": self.jobs_view, "layers": self.layers_view, "frames": self.frames_view,
                "hosts": self.hosts_view, "host_frames": self.host_frames_view}

    def splitters(self) -> dict:
        return {"job": self.job_panel.splitter, "job_top": self.job_panel.top_splitter,
                "hosts": self.hosts_panel.splitter}

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.mode_label = QLabel()
        self.counts_label = QLabel()
        self.conn_icon = QLabel()
        self.conn_label = QLabel()
        for w in (self.mode_label, self.counts_label, self.conn_icon, self.conn_label):
            bar.addPermanentWidget(w)
        self.on_state("connecting", self.connection.address)

    def _wire(self) -> None:
        conn, u = self.connection, self.updates
        conn.snapshot.connect(u.on_snapshot)
        conn.snapshot.connect(lambda snap: self.set_role(snap.supervisor.get("role")))
        conn.changes.connect(u.on_changes)
        conn.job_loaded.connect(u.on_job_loaded)
        conn.frames_page.connect(u.on_frames_page)
        conn.host_loaded.connect(u.on_host_loaded)
        conn.log_piece.connect(self.log_panel.show_piece)
        conn.state_changed.connect(self.on_state)
        conn.action_done.connect(self.on_action_done)
        conn.action_failed.connect(self.on_action_failed)
        conn.query_done.connect(u.on_query_done)
        conn.query_failed.connect(u.on_query_failed)
        self.jobs_view.selectionModel().currentRowChanged.connect(self._current_job_changed)
        for signal in (self.jobs_model.layoutChanged, self.jobs_model.rowsInserted,
                       self.jobs_model.modelReset):
            signal.connect(self._reselect_job)
        for signal in (self.jobs_model.rowsRemoved, self.jobs_model.layoutChanged):
            signal.connect(self._job_shown_or_hidden)
        self.hosts_view.selectionModel().currentRowChanged.connect(self._current_host_changed)
        self.frames_view.selectionModel().currentRowChanged.connect(self._preview_frame)
        self.frames_model.dataChanged.connect(
            lambda *_: self.preview_panel.frame and self.preview_panel.update_frame(
                self.frames_model.get(self.preview_panel.frame.get("id"))))
        self.host_frames_view.doubleClicked.connect(
            lambda index: self.open_log(index.data(Qt.ItemDataRole.UserRole + 2)))
        self.log_panel.page_wanted.connect(conn.log_page)
        self.log_panel.find_wanted.connect(conn.find_in_log)
        self.log_panel.attempt_wanted.connect(self._attempt_wanted)
        self.job_panel.want_dependencies.connect(u.fetch_dependencies)
        self.why_panel.why_wanted.connect(u.fetch_why)
        self.charts_panel.history_wanted.connect(u.fetch_history)
        self.charts_panel.metrics_wanted.connect(u.fetch_metrics)
        # Rules depend on the rows' state as well as the selection; recheck after changes.
        self._rules = QTimer(self, singleShot=True, interval=150)
        self._rules.timeout.connect(self.update_actions)
        for view in (self.jobs_view, self.frames_view, self.hosts_view, self.layers_view):
            view.selectionModel().selectionChanged.connect(self.update_actions)
            m = view.model()
            for signal in (m.modelReset, m.rowsRemoved, m.dataChanged, m.layoutChanged):
                signal.connect(self.update_actions_soon)
        self.job_panel.graph.selection_changed.connect(self.update_actions)
        # Host actions act only on hosts in view: recheck when the Hosts tab shows or hides.
        self.hosts_dock.visibilityChanged.connect(self.update_actions_soon)
        # The selected job's time left comes from its frames' run times: gather them again
        # (at most twice a second) when its frames or layers change.
        self._estimate = QTimer(self, singleShot=True, interval=500)
        self._estimate.timeout.connect(self._update_estimate)
        for m in (self.frames_model, self.layers_model):
            for signal in (m.modelReset, m.dataChanged, m.rowsInserted, m.rowsRemoved,
                           m.layoutChanged):
                signal.connect(lambda *_: self._estimate.isActive() or self._estimate.start())
        # Elapsed and runtime columns move with the clock between events; repaint the visible
        # rows once a second.  This touches no data and no network.
        self._clock = QTimer(self, interval=1000)
        self._clock.timeout.connect(self._repaint_clocks)
        self._clock.start()

    # -- connection state and results ---------------------------------------------------------

    def on_state(self, state: str, detail: str) -> None:
        was = self.connection_state
        self.connection_state = state
        if (state == "connected") != (was == "connected"):
            self._show_live(state == "connected")
        size = max(8, theme.line_height(self) * 2 // 3)
        self.conn_icon.setPixmap(_dot(theme.CONNECTION_COLORS.get(state, "#8b95a1"), size))
        self.conn_label.setText(STATE_TEXT.get(state, state))
        self.conn_label.setToolTip(detail)
        if state == "unreachable":
            self.show_message(f"Supervisor unreachable: {detail}", error=True)

    def data_views(self) -> list[QWidget]:
        """What shows the supervisor's data (greyed out while it cannot be reached)."""
        return [self.jobs_view, self.layers_view, self.frames_view, self.hosts_view,
                self.host_frames_view, self.job_panel.graph]

    def _show_live(self, live: bool) -> None:
        """Connected: data and actions live.  Not connected: the data are greyed out as of
        the moment the supervisor was lost, clocks stop and every action waits."""
        for view in self.data_views():
            view.setEnabled(live)
        self.charts_panel.set_live(live)
        if live:
            self._clock.start()
            self.stale_since = None
        else:
            self._clock.stop()
            self.stale_since = time.time()
            self.show_message(f"Supervisor not reachable: showing data as of "
                              f"{time.strftime('%H:%M:%S', time.localtime(self.stale_since))}",
                              error=True)
        self.update_actions()

    def on_action_done(self, label: str, result: Any) -> None:
        suffix = f" ({result} changed)" if isinstance(result, int) else ""
        self.show_message(f"{label}: done{suffix}")

    def on_action_failed(self, label: str, message: str) -> None:
        self.show_message(f"{label} failed: {message}", error=True)
        if not label.startswith("Load"):
            box = QMessageBox(QMessageBox.Icon.Warning, "CueFarm", f"{label} failed:\n{message}",
                              QMessageBox.StandardButton.Ok, self)
            box.setModal(False)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.show()

    # -- user intent ----------------------------------------------------------------------------

    def select_job(self, job_id: Any) -> None:
        """Show the layers and frames of `job_id` (None: none)."""
        if job_id == self.selected_job:
            return
        self.selected_job = job_id
        # A state filter chosen for one job's frames would hide another's for no reason.
        self.frames_panel.set_checked_states(())
        self.connection.select_job(job_id)
        self.update_job_caption()

    def select_host(self, name: str | None) -> None:
        """Show the frames running on host `name` (None: none)."""
        if name == self.selected_host:
            return
        self.selected_host = name
        self.connection.select_host(name)

    def open_log(self, frame: dict | None, attempt: int | None = None) -> None:
        """Show (and follow) the log of a frame's latest attempt, or of `attempt`."""
        if not frame:
            return
        job = self.jobs_model.get(frame.get("job_id"))
        if job is not None:
            frame = {**frame, "job": job.get("name")}
        if attempt is None or frame.get("id") != self.log_panel.frame_id:
            self.log_panel.expect(frame)
        self.log_dock.show()
        self.log_dock.raise_()
        self.connection.open_log(frame, attempt)

    def _attempt_wanted(self, attempt: int) -> None:
        frame = self.log_panel.frame
        if frame:
            latest = (self.frames_model.get(frame.get("id")) or frame).get("attempt")
            self.connection.open_log(frame, None if attempt == latest else attempt)

    def show_why(self, job_id: Any, layer: str | None = None, frame: int | None = None) -> None:
        self.why_dock.show()
        self.why_dock.raise_()
        self.why_panel.explain(job_id, layer, frame)

    def open_submit(self):
        """Open the submit dialog (not modal: the farm stays in view)."""
        return self.updates.open_submit()

    def set_mode(self, mode: str) -> None:
        """Switch mode, never above what the supervisor's role for this user allows."""
        if mode in permissions.MODES:
            self.mode = permissions.clamp(mode, self.role)
            self.mode_label.setText(f"{self.mode.title()} mode")
            for m, action in getattr(self, "mode_actions", {}).items():
                action.setChecked(m == self.mode)
            self.update_actions()

    def set_role(self, role: str | None) -> None:
        """The supervisor said which role this user has (None: it does not say): modes above
        it are disabled with the reason, and the current mode comes down to it if need be."""
        self.role = role
        for m, action in getattr(self, "mode_actions", {}).items():
            reason = permissions.mode_allowed(m, role)
            action.setEnabled(reason is None)
            action.setToolTip(reason or "")
        self.set_mode(self.mode)

    def set_theme(self, name: str) -> None:
        """Switch between the dark and light look."""
        app = QApplication.instance()
        theme.apply(app, name)
        self.theme_name = theme.current
        for group in vars(self.action_set).values():
            for key, action in group.actions.items():
                action.setIcon(theme.icon(group.specs[key].icon))
        self.charts_panel.apply_theme()
        self.frames_panel.apply_theme()
        self.notes.apply_theme()
        for view in (self.jobs_view, self.frames_view, self.layers_view):
            view.viewport().update()
        self.job_panel.graph.update_layers(self.layers_model.rows())
        self.on_state(self.connection_state, self.conn_label.toolTip())

    def show_message(self, text: str, error: bool = False) -> None:
        bar = self.statusBar()
        colour = theme.chrome("ERROR_FIELD")
        bar.setStyleSheet(f"QStatusBar {{ color: {colour}; }}" if error else "")
        bar.showMessage(text, 15000)

    def update_actions(self, *_args: Any) -> None:
        """Re-evaluate what may be done now (connection, selection, rows' states, mode)."""
        offline = None if self.connection_state == "connected" else OFFLINE
        for group in vars(self.action_set).values():
            group.update(offline=offline)
        self.mode_label.setText(f"{self.mode.title()} mode")

    def update_actions_soon(self, *_args: Any) -> None:
        if not self._rules.isActive():
            self._rules.start()

    # -- internals ------------------------------------------------------------------------------

    def _current_job_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        sel = self.selected_job
        if sel is not None and (sel in self.jobs_model.leaving
                                or self.jobs_model.position(sel) is None):
            # The selected job left the list (a filter hid it, or it is gone) and Qt moved
            # the current row to a neighbour the user never chose: select nothing in the
            # list, and keep showing the job while it exists.
            selection = self.jobs_view.selectionModel()
            selection.blockSignals(True)
            selection.clear()
            selection.blockSignals(False)
            self.jobs_view.viewport().update()
            self.update_actions_soon()
            if self.jobs_model.get(sel) is None:
                self.select_job(None)
            else:
                self.update_job_caption()
            return
        row = self.jobs_view.current_row() if current.isValid() else None
        self.select_job(row["id"] if row else None)

    def _job_shown_or_hidden(self, *_args: Any) -> None:
        """Rows left the list: the caption says when the job shown is one of them."""
        if self.selected_job is not None:
            self.update_job_caption()

    def _reselect_job(self, *_args: Any) -> None:
        """The job shown came back into the list (its filter was cleared): select it."""
        sel = self.selected_job
        if sel is not None and not self.jobs_view.currentIndex().isValid() \
                and self.jobs_model.position(sel) is not None:
            self.jobs_view.select_id(sel)
            self.update_job_caption()

    def _current_host_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        row = self.hosts_view.current_row() if current.isValid() else None
        self.select_host(row["name"] if row else None)
        self.hosts_panel.show_host(row)

    def _preview_frame(self, current: QModelIndex, _previous: QModelIndex) -> None:
        """Show the image of the frame made current (its layer says where it is)."""
        frame = self.frames_view.current_row() if current.isValid() else None
        layer = self.layers_model.get(frame.get("layer_id")) if frame else None
        self.preview_panel.show_frame(frame, layer)

    def update_job_caption(self) -> None:
        job = self.jobs_model.get(self.selected_job) if self.selected_job is not None else None
        hidden = job is not None and self.jobs_model.position(job["id"]) is None
        self.job_panel.show_job(job, hidden)

    def _update_estimate(self) -> None:
        job_id = self.frames_model.job_id
        layers = self.layers_model.all_rows() if self.layers_model.job_id == job_id else []
        self.jobs_model.set_detail(job_id, layers, self.frames_model.layer_runs())
        # Only the selected job's time left reads the detail: repaint its row, not the table.
        pos = self.jobs_model.position(job_id) if job_id is not None else None
        if pos is not None:
            left = self.jobs_model.column_index("left")
            self.jobs_view.update(self.jobs_model.index(pos, left))

    def update_counts(self) -> None:
        self.counts_label.setText(f"{self.jobs_model.total} jobs · {self.hosts_model.total} hosts")

    def _repaint_clocks(self) -> None:
        """Repaint only the columns whose text moves with the clock."""
        if not self.isVisible():
            return
        for view, keys in ((self.jobs_view, ("elapsed", "left")),
                           (self.frames_view, ("runtime",)),
                           (self.host_frames_view, ("runtime",))):
            port = view.viewport()
            if port.visibleRegion().isEmpty():
                continue
            for key in keys:
                col = view.table_model().column_index(key)
                if not view.isColumnHidden(col):
                    port.update(view.columnViewportPosition(col), 0, view.columnWidth(col),
                                port.height())

    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._restored and not getattr(self, "_sized", False):
            # Dock sizes only stick once the window has its real size.
            self._sized = True
            QTimer.singleShot(0, self._size_docks)

    def closeEvent(self, event) -> None:
        self._clock.stop()
        if self.settings is not None:
            stored.save(self)
        self.connection.stop()
        super().closeEvent(event)
