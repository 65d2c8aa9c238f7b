"""Saved views: named job filters (owner, status, user, project, text), kept per user.

A view is the jobs panel's `filter_state()` under a name.  Views live in the user's settings
(QSettings is per user), written as soon as one is saved or deleted, so a crash loses none.
The combo switches between them; once the filters are changed by hand the combo says so
("View: custom") instead of naming a view the list no longer matches.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from qtpy.QtCore import QSettings, Signal
from qtpy.QtWidgets import (QComboBox, QHBoxLayout, QInputDialog, QMenu, QToolButton,
                            QWidget)

log = logging.getLogger(__name__)

KEY = "views/jobs"              # {name: filter state}, as JSON
CURRENT = "views/jobs_current"  # the view last switched to
CUSTOM = "View: custom"
MAX_NAME = 64


def check_name(name: str | None) -> tuple[str | None, str]:
    """(the name to save under, "") or (None, why it cannot be used)."""
    name = (name or "").strip()
    if not name:
        return None, "a view needs a name"
    if len(name) > MAX_NAME:
        return None, f"a view's name is at most {MAX_NAME} characters"
    if any(ord(c) < 32 for c in name):
        return None, "a view's name cannot hold control characters"
    return name, ""


def ask_name(parent: QWidget, suggestion: str) -> str | None:
    """Ask for a view's name (None: cancelled)."""
    text, ok = QInputDialog.getText(parent, "Save view", "Name of this view:", text=suggestion)
    return text if ok else None


class SavedViews(QWidget):
    """The combo of saved views and a menu (save current as..., delete) for `panel` (a
    JobsPanel).  `settings` None keeps views for this session only.  `message(text, error)`
    reports what happened; `ask(parent, suggestion)` asks for a name (tests answer it)."""

    message = Signal(str, bool)

    def __init__(self, panel, settings: QSettings | None = None,
                 ask: Callable[[QWidget, str], str | None] = ask_name,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.panel = panel
        self.settings = settings
        self.ask = ask
        self.views: dict[str, dict[str, Any]] = self._load()
        self.combo = QComboBox()
        self.combo.setObjectName("savedViews")
        self.combo.setToolTip("Switch to a saved set of job filters")
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.button = QToolButton()
        self.button.setText("Views")
        self.button.setToolTip("Save the current filters as a view, or delete one")
        self.button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(self.button)
        self.save_action = menu.addAction("Save current as...", self.save_current)
        self.delete_action = menu.addAction("Delete this view", self.delete_current)
        self.button.setMenu(menu)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.combo)
        layout.addWidget(self.button)
        self._switching = False
        self._fill()
        self.combo.activated.connect(self._activated)
        panel.filters_changed.connect(self._filters_changed)
        panel.filter.textChanged.connect(self._filters_changed)

    # -- storage --------------------------------------------------------------------------------

    def _load(self) -> dict[str, dict[str, Any]]:
        if self.settings is None:
            return {}
        raw = self.settings.value(KEY)
        try:
            views = json.loads(raw) if raw else {}
        except (TypeError, ValueError):
            log.info("ignoring unreadable saved views")
            return {}
        if not isinstance(views, dict):
            return {}
        return {str(k): v for k, v in views.items() if isinstance(v, dict)}

    def _store(self) -> None:
        if self.settings is None:
            return
        self.settings.setValue(KEY, json.dumps(self.views, sort_keys=True))
        self.settings.setValue(CURRENT, self.current() or "")
        self.settings.sync()

    # -- the combo ------------------------------------------------------------------------------

    def _fill(self, select: str | None = None) -> None:
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItem(CUSTOM, None)
        for name in sorted(self.views, key=str.casefold):
            self.combo.addItem(f"View: {name}", name)
        index = self.combo.findData(select) if select else 0
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)
        # The combo fits its longest name; tell the filter row it has grown.
        self.combo.updateGeometry()
        self.delete_action.setEnabled(self.current() is not None)

    def current(self) -> str | None:
        """The name of the view shown (None: filters set by hand)."""
        return self.combo.currentData()

    def names(self) -> list[str]:
        return sorted(self.views, key=str.casefold)

    # -- user intent ----------------------------------------------------------------------------

    def switch(self, name: str) -> bool:
        """Apply the view `name`; False (and a message) when there is none."""
        state = self.views.get(name)
        if state is None:
            self.message.emit(f"No saved view called {name!r}", True)
            self._fill()
            return False
        self._switching = True
        try:
            self.panel.set_filter_state(state)
        finally:
            self._switching = False
        self._fill(name)
        if self.settings is not None:
            self.settings.setValue(CURRENT, name)
        return True

    def save_as(self, name: str | None) -> bool:
        """Save the current filters as `name` (replacing a view of that name)."""
        checked, why = check_name(name)
        if checked is None:
            self.message.emit(f"View not saved: {why}", True)
            return False
        replaced = checked in self.views
        self.views[checked] = self.panel.filter_state()
        self._fill(checked)
        self._store()
        self.message.emit(f"View {checked!r} {'replaced' if replaced else 'saved'}", False)
        return True

    def save_current(self) -> bool:
        name = self.ask(self, self.current() or "")
        if name is None:
            return False
        return self.save_as(name)

    def delete(self, name: str) -> bool:
        if self.views.pop(name, None) is None:
            self.message.emit(f"No saved view called {name!r}", True)
            return False
        self._fill()
        self._store()
        self.message.emit(f"View {name!r} deleted", False)
        return True

    def delete_current(self) -> bool:
        name = self.current()
        if name is None:
            self.message.emit("Choose a saved view to delete", True)
            return False
        return self.delete(name)

    def restore_current(self) -> None:
        """Show the view last switched to, if it still exists and matches the filters."""
        if self.settings is None:
            return
        name = self.settings.value(CURRENT)
        if name and name in self.views and self.views[name] == self.panel.filter_state():
            self._fill(str(name))

    def _activated(self, index: int) -> None:
        name = self.combo.itemData(index)
        if name is not None:
            self.switch(name)
        else:
            self.delete_action.setEnabled(False)

    def _filters_changed(self) -> None:
        if self._switching:
            return
        name = self.current()
        if name is not None and self.views.get(name) != self.panel.filter_state():
            self._fill()
