"""What a user can do to jobs, frames, dependencies and hosts: QActions for toolbars, menus and
context menus.

Each action has a rule (cuegui.permissions) that says, for the current selection and mode,
why it cannot be taken; such an action is disabled and its tooltip and status tip give the
reason.  A triggered action asks for confirmation when it cannot be undone and hands a small
call on `cuefarm.Client` to the connection worker, so the UI thread never waits on the
network.  Results and errors come back as the connection's action signals; the views follow
the supervisor's events, never the action's own guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from qtpy.QtCore import QObject
from qtpy.QtGui import QAction, QKeySequence
from qtpy.QtWidgets import QMessageBox, QWidget

from cuegui import theme

Rule = Callable[[Any], "str | None"]     # context -> None (allowed) or the reason


@dataclass(frozen=True)
class Spec:
    key: str
    text: str
    icon: str
    tip: str
    confirm: str = ""          # a question; {what} is replaced by the rows it applies to
    shortcut: str = ""
    rule: Rule | None = None


def ask(parent: QWidget | None, question: str) -> bool:
    """A modal yes/no question; No is the default so a stray Enter changes nothing."""
    buttons = QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No
    answer = QMessageBox.question(parent, "Confirm", question, buttons,
                                  QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes


def describe(kind: str, rows: list[dict], name_key: str = "name") -> str:
    """'job "comp_v3"' or '3 jobs' for confirmation questions and status messages."""
    if len(rows) == 1:
        name = rows[0].get(name_key)
        return f'{kind} "{name}"' if name is not None else f"1 {kind}"
    return f"{len(rows)} {kind}s"


class ActionGroup(QObject):
    """The QActions of one subject (jobs, frames, hosts...) with their rules.

    `context()` builds what the rules look at (selection, mode, user); `handler(key)` runs a
    triggered action.  `update()` re-evaluates every rule."""

    def __init__(self, parent: QWidget, specs: list[Spec], context: Callable[[], Any],
                 handler: Callable[[str], None]):
        super().__init__(parent)
        self.specs = {s.key: s for s in specs}
        self.context = context
        self.actions: dict[str, QAction] = {}
        for spec in specs:
            action = QAction(theme.icon(spec.icon), spec.text, parent)
            action.setObjectName(spec.key)
            if spec.shortcut:
                action.setShortcut(QKeySequence(spec.shortcut))
            action.setData(spec)
            action.triggered.connect(lambda _checked=False, k=spec.key: self._run(k, handler))
            self.actions[spec.key] = action
        self.reasons: dict[str, str | None] = {}
        self.offline: str | None = None

    def __getitem__(self, key: str) -> QAction:
        return self.actions[key]

    def __contains__(self, key: str) -> bool:
        return key in self.actions

    def values(self):
        return self.actions.values()

    def menu(self, order: list[str | None]) -> list[QAction | None]:
        return [None if k is None else self.actions[k] for k in order]

    def reason(self, key: str) -> str | None:
        """Why the action is disabled right now (None: it is enabled)."""
        return self.reasons.get(key)

    def update(self, *_args: Any, offline: str | None = None) -> None:
        """Re-evaluate every rule; `offline` (why nothing can be sent now) disables all."""
        self.offline = offline
        ctx = self.context()
        for key, action in self.actions.items():
            spec = self.specs[key]
            why = offline or (spec.rule(ctx) if spec.rule is not None else None)
            self.reasons[key] = why
            action.setEnabled(why is None)
            tip = spec.tip if why is None else f"{spec.tip}.\nNot now: {why}."
            shortcut = action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
            action.setToolTip(f"{tip}  ({shortcut})" if shortcut and why is None else tip)
            action.setStatusTip(tip.replace("\n", " "))

    def _run(self, key: str, handler: Callable[[str], None]) -> None:
        # A shortcut can fire between updates: check again.
        spec = self.specs[key]
        if self.offline or (spec.rule is not None and spec.rule(self.context()) is not None):
            return
        handler(key)
