"""The jobs panel: the jobs table under filters by owner, status, user, project and text."""

from __future__ import annotations

from typing import Any, Callable

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import QCheckBox, QComboBox, QMenu, QToolButton

from cuegui import theme
from cuegui.models.jobs import JobsModel
from cuegui.views.delegates import ProgressDelegate, StateDelegate
from cuegui.views.table import TablePanel, TableView

STATUSES = ("running", "waiting", "paused", "failing", "dependency", "finished", "killed")
ALL = "All"


class StayOpenMenu(QMenu):
    """A menu of check boxes that stays open while several are ticked (a plain QMenu closes
    on the first click)."""

    def mouseReleaseEvent(self, event) -> None:
        action = self.activeAction()
        if action is not None and action.isCheckable() and action.isEnabled():
            action.trigger()
            return
        super().mouseReleaseEvent(event)

    def keyPressEvent(self, event) -> None:
        action = self.activeAction()
        if (event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter)
                and action is not None and action.isCheckable() and action.isEnabled()):
            action.trigger()
            return
        super().keyPressEvent(event)


class JobsView(TableView):
    """Jobs, newest first; status as a pill and progress as a bar of frame shares."""

    rows_called = "jobs"

    def __init__(self, model: JobsModel | None = None, parent=None):
        super().__init__(model or JobsModel(), parent)
        m = self.table_model()
        self._status = StateDelegate(theme.JOB_COLORS, self, icons=theme.JOB_ICONS)
        self._progress = ProgressDelegate(self)
        self.setItemDelegateForColumn(m.column_index("status"), self._status)
        self.setItemDelegateForColumn(m.column_index("progress"), self._progress)
        self.stretch("name")
        self.sort_by("id", Qt.SortOrder.DescendingOrder)


class JobsPanel(TablePanel):
    """The jobs table with its filters; `user` is whose jobs "Mine" shows."""

    filters_changed = Signal()

    def __init__(self, user: str = "", parent=None):
        super().__init__(JobsView(), "Filter jobs", parent)
        self.user = user
        self.mine = QCheckBox("Mine")
        self.mine.setToolTip(f"Only jobs submitted by {user}")
        self.status_button = QToolButton()
        self.status_button.setText("Status: all")
        self.status_button.setToolTip("Show jobs in these states")
        self.status_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.status_menu = StayOpenMenu(self.status_button)
        self.status_actions = {}
        for status in STATUSES:
            action = self.status_menu.addAction(status)
            action.setCheckable(True)
            action.setChecked(True)
            action.toggled.connect(self._changed)
            self.status_actions[status] = action
        self.status_button.setMenu(self.status_menu)
        self.user_box = self._combo("User", "Only jobs of this user")
        self.project_box = self._combo("Project", "Only jobs of this project")
        for widget in (self.mine, self.status_button, self.user_box, self.project_box):
            self.filters.addWidget(widget)
        self.mine.toggled.connect(self._changed)
        # The user and project lists follow the data, at most once a second.
        self._choices = QTimer(self, singleShot=True, interval=1000)
        self._choices.timeout.connect(self.update_choices)
        model = self.view.table_model()
        for signal in (model.rowsInserted, model.modelReset, model.layoutChanged):
            signal.connect(lambda *_: self._choices.start() if not self._choices.isActive()
                           else None)

    def _combo(self, what: str, tip: str) -> QComboBox:
        box = QComboBox()
        box.setProperty("what", what)
        box.addItem(f"{what}: {ALL}", None)
        box.setToolTip(tip)
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        box.currentIndexChanged.connect(self._changed)
        return box

    # -- state ----------------------------------------------------------------------------------

    def statuses(self) -> set[str]:
        return {s for s, a in self.status_actions.items() if a.isChecked()}

    def filter_state(self) -> dict[str, Any]:
        """The filters as plain values (for QSettings)."""
        return {"mine": self.mine.isChecked(), "statuses": sorted(self.statuses()),
                "user": self.user_box.currentData(), "project": self.project_box.currentData(),
                "text": self.filter.text()}

    def set_filter_state(self, state: dict[str, Any]) -> None:
        """Undo filter_state(); unknown users and projects are kept as choices."""
        self.mine.setChecked(bool(state.get("mine")))
        statuses = state.get("statuses")
        if isinstance(statuses, (list, tuple)):
            for s, a in self.status_actions.items():
                a.setChecked(s in statuses)
        for box, key in ((self.user_box, "user"), (self.project_box, "project")):
            value = state.get(key)
            if value:
                if box.findData(value) < 0:
                    self._add_choice(box, value)
                box.setCurrentIndex(box.findData(value))
            else:
                box.setCurrentIndex(0)
        text = state.get("text")
        if isinstance(text, str):
            self.filter.setText(text)
            self._apply_filter()
        self._changed()

    def update_choices(self) -> None:
        """Offer the users and projects present in the data."""
        rows = self.view.table_model().all_rows()
        users, projects = set(), set()
        for r in rows:
            users.add(r.get("user"))
            projects.add(r.get("project"))
        for box, values in ((self.user_box, users), (self.project_box, projects)):
            have = {box.itemData(i) for i in range(1, box.count())}
            for value in sorted(v for v in values - have if v):
                self._add_choice(box, value)

    @staticmethod
    def _add_choice(box: QComboBox, value: Any) -> None:
        """A choice reads "User: ann", so the combo still says what it filters once set."""
        box.addItem(f"{box.property('what')}: {value}", value)

    def predicate(self) -> Callable[[dict], bool] | None:
        mine = self.user if self.mine.isChecked() else None
        statuses = self.statuses()
        every = statuses >= set(STATUSES)
        user, project = self.user_box.currentData(), self.project_box.currentData()
        if mine is None and every and user is None and project is None:
            return None

        def keep(job: dict) -> bool:
            return ((mine is None or job.get("user") == mine)
                    and (every or job.get("status") in statuses)
                    and (user is None or job.get("user") == user)
                    and (project is None or job.get("project") == project))
        return keep

    def _changed(self, *_args: Any) -> None:
        statuses = self.statuses()
        self.status_button.setText("Status: all" if len(statuses) == len(STATUSES)
                                   else f"Status: {len(statuses)} of {len(STATUSES)}")
        self.view.table_model().set_predicate(self.predicate())
        self.filters_changed.emit()
