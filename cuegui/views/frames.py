"""The frames panel: the frames of the selected job, filtered by state."""

from __future__ import annotations

from typing import Any

from qtpy.QtWidgets import QHBoxLayout, QLabel, QToolButton

from cuegui import theme
from cuegui.models.frames import FramesModel
from cuegui.views.delegates import FrameProgressDelegate, StateDelegate
from cuegui.views.table import TablePanel, TableView

STATES = ("WAITING", "DEPEND", "RUNNING", "SUCCEEDED", "DEAD", "EATEN")
# The job row's counter for each frame state.
COUNTERS = {"WAITING": "waiting", "DEPEND": "depend", "RUNNING": "running",
            "SUCCEEDED": "succeeded", "DEAD": "dead", "EATEN": "eaten"}


class FramesView(TableView):
    """Frames in the supervisor's order (layer, then number) until a header is clicked."""

    rows_called = "frames"

    def __init__(self, model: FramesModel | None = None, parent=None):
        super().__init__(model or FramesModel(), parent)
        self._state = StateDelegate(theme.FRAME_COLORS, self)
        self._progress = FrameProgressDelegate(self)
        self.setItemDelegateForColumn(self.table_model().column_index("state"), self._state)
        self.setItemDelegateForColumn(self.table_model().column_index("progress"),
                                      self._progress)
        self.sort_by(None)


class FramesPanel(TablePanel):
    """Frames with a toggle per state (all off: every state), each showing its count."""

    def __init__(self, parent=None, view: FramesView | None = None):
        super().__init__(view or FramesView(), "Filter frames", parent)
        self.state_buttons: dict[str, QToolButton] = {}
        # The state toggles get their own row under the toolbar: they need the width.
        row = QHBoxLayout()
        row.setContentsMargins(4, 0, 4, 2)
        row.setSpacing(4)
        shown = QLabel("Show:")
        shown.setObjectName("panelCaption")
        row.addWidget(shown)
        self.layout().insertLayout(1, row)
        for state in STATES:
            button = QToolButton()
            button.setCheckable(True)
            button.setAutoRaise(True)
            button.setToolTip(f"Show only {state.lower()} frames (several may be on)")
            button.toggled.connect(self._states_changed)
            row.addWidget(button)
            self.state_buttons[state] = button
        row.addStretch(1)
        self.apply_theme()
        self.show_job(None)

    def apply_theme(self) -> None:
        """State-coloured toggle text, made readable on the current theme's background."""
        for state, button in self.state_buttons.items():
            colour = theme.state_text(theme.FRAME_COLORS, state).name()
            button.setStyleSheet(f"QToolButton {{ color: {colour}; }} "
                                 f"QToolButton:checked {{ border: 1px solid {colour}; }}")

    def show_job(self, job: dict | None) -> None:
        """Name the job whose frames are shown, and show its count of frames in each state."""
        if job is None:
            self.caption.setText("No job selected")
        else:
            text = f"{job.get('name')}  ·  {job.get('frames_total', 0)} frames"
            model = self.view.table_model()
            if model.paging:
                text += f"  ·  loading, {model.total:,} so far"
            self.caption.setText(text)
        for state, button in self.state_buttons.items():
            count = (job or {}).get(COUNTERS[state]) or 0
            button.setText(f"{state.title()} {count}")

    def checked_states(self) -> set[str]:
        return {s for s, b in self.state_buttons.items() if b.isChecked()}

    def set_checked_states(self, states: Any) -> None:
        for s, b in self.state_buttons.items():
            b.setChecked(s in (states or ()))

    def _states_changed(self, *_args: Any) -> None:
        states = self.checked_states()
        model = self.view.table_model()
        model.set_predicate((lambda r: r.get("state") in states) if states else None)
