"""The audit trail of a job or a host: who asked what of the supervisor about it, from where,
when, and how it went (newest first).  Read through the connection; artists see their own
actions only (the supervisor filters)."""

from __future__ import annotations

import time
from typing import Any

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QTableWidget,
                            QTableWidgetItem, QVBoxLayout, QWidget)

COLUMNS = ("When", "Who", "From", "Action", "Outcome")
OUTCOME_COLOURS = {"refused": "#d98a3a", "failed": "#d9534f"}


def action_text(row: dict[str, Any]) -> str:
    """The request in words: its type, with its action when it has one (job_control kill)."""
    detail = row.get("detail") if isinstance(row.get("detail"), dict) else {}
    sub = detail.get("action")
    words = row.get("action", "").replace("_", " ")
    return f"{words}: {sub}" if isinstance(sub, str) else words


class AuditPanel(QWidget):
    def __init__(self, kind: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.kind = kind                  # "job" or "host"
        self.subject: Any = None
        self.setObjectName(f"{kind}Audit")
        self.title = QLabel()
        self.title.setObjectName("auditTitle")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("auditTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().setVisible(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addWidget(self.table)
        self.show_subject(None)

    def show_subject(self, subject: Any, title: str = "") -> None:
        if subject != self.subject:
            self.table.setRowCount(0)
        self.subject = subject
        self.title.setText(f"Actions on {title}" if subject is not None
                           else f"Select a {self.kind} to see who did what to it")

    def show_rows(self, subject: Any, rows: list[dict[str, Any]]) -> None:
        if subject != self.subject:
            return
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            outcome = r.get("outcome", "")
            if r.get("message"):
                outcome = f"{outcome}: {r['message']}"
            cells = (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.get("at") or 0)),
                     r.get("user", ""), r.get("address") or "-", action_text(r), outcome)
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if j == 4 and r.get("outcome") in OUTCOME_COLOURS:
                    item.setForeground(QColor(OUTCOME_COLOURS[r["outcome"]]))
                item.setTextAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(i, j, item)
        if not rows:
            self.title.setText(f"{self.title.text().split(' (')[0]} (none yet)")

    def failed(self, message: str) -> None:
        self.title.setText(f"Could not read the audit trail: {message}")
