"""The Why panel: the supervisor's reasons a job or frame is not running (Client.why)."""

from __future__ import annotations

import html
from typing import Any

from qtpy.QtCore import QSize, Qt, QTimer, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QToolButton, QVBoxLayout, QWidget

from cuegui import theme

REFRESH_MS = 2000     # at most this often while the subject keeps changing


class WhyPanel(QWidget):
    """Asks with `why_wanted(job_id, layer, frame)`; the window answers with `show_answer`."""

    why_wanted = Signal(object, object, object)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.subject: tuple | None = None       # (job_id, layer, frame)
        self.answer: dict | None = None
        self.caption = QLabel("Select a job or frame and choose Why not running? (Ctrl+Shift+Y)")
        self.caption.setObjectName("panelCaption")
        self.caption.setWordWrap(True)
        self.refresh = QToolButton()
        self.refresh.setIcon(theme.icon("refresh"))
        size = theme.scaled(16)
        self.refresh.setIconSize(QSize(size, size))
        self.refresh.setToolTip("Ask again")
        self.refresh.setAutoRaise(True)
        self.refresh.clicked.connect(self.ask)
        self.reasons = QLabel()
        self.reasons.setObjectName("whyReasons")
        self.reasons.setWordWrap(True)
        self.reasons.setTextFormat(Qt.TextFormat.RichText)
        self.reasons.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.reasons.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.reasons)
        top = QHBoxLayout()
        top.setContentsMargins(6, 4, 6, 4)
        top.addWidget(self.caption, 1)
        top.addWidget(self.refresh)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(scroll, 1)
        self._again = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._again.timeout.connect(self.ask)

    def explain(self, job_id: Any, layer: str | None = None, frame: int | None = None) -> None:
        """Ask about a job (or one of its frames)."""
        self.subject = (job_id, layer, frame)
        self.reasons.setText("Asking the supervisor...")
        self.ask()

    def ask(self) -> None:
        if self.subject is not None:
            self.why_wanted.emit(*self.subject)

    def subject_changed(self, job_id: Any) -> None:
        """The subject's job changed: ask again soon (not on every event)."""
        if self.subject is not None and self.subject[0] == job_id and self.isVisible() \
                and not self._again.isActive():
            self._again.start()

    def show_answer(self, subject: tuple, answer: dict) -> None:
        if subject != self.subject:
            return
        self.answer = answer
        job_id, layer, frame = subject
        what = f"job {answer.get('job')} (#{job_id})"
        if frame is not None:
            what = f"frame {frame} of layer {layer} in " + what
        self.caption.setText(f"Why {what} is not running  ·  status {answer.get('status')}")
        items = "".join(f"<li>{html.escape(str(r))}</li>" for r in answer.get("reasons") or [])
        self.reasons.setText(f"<ul>{items}</ul>" if items else "No reasons given.")

    def show_error(self, subject: tuple, message: str) -> None:
        if subject == self.subject:
            self.reasons.setText(html.escape(message))

    def text(self) -> str:
        return self.reasons.text()
