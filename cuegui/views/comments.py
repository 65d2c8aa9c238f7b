"""Comments on a job or a host: the panel that lists them and takes a new one, and the small
speech-bubble mark (with the count) in the jobs and hosts tables."""

from __future__ import annotations

import html
from typing import Any

from qtpy.QtCore import QPointF, QRectF, Qt, Signal
from qtpy.QtGui import QColor, QKeySequence, QPainter, QPainterPath, QShortcut
from qtpy.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPlainTextEdit,
                            QPushButton, QStyle, QStyledItemDelegate, QStyleOptionViewItem,
                            QVBoxLayout, QWidget)

from cuegui import format as fmt
from cuegui import theme

MAX_TEXT = 10_000           # the supervisor's limit (cuefarm.protocol.MAX_COMMENT)
BUBBLE = "#5fa8e0"


def count_text(row: dict) -> str:
    n = row.get("comments") or 0
    return str(n) if n else ""


def count_tip(row: dict) -> str:
    n = row.get("comments") or 0
    return f"{n} comment{'' if n == 1 else 's'}: see the Comments tab" if n else ""


class CommentMarkDelegate(QStyledItemDelegate):
    """A speech bubble and the number of comments; nothing for none."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        text = index.data(Qt.ItemDataRole.DisplayRole) or ""
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget is not None else None
        if style is not None:
            style.drawControl(style.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        if not text:
            return
        r = option.rect
        h = max(8.0, r.height() * 0.55)
        w = h * 1.25
        x = r.left() + 4.0
        y = r.top() + (r.height() - h) / 2 - 1
        path = QPainterPath()
        path.addRoundedRect(QRectF(x, y, w, h * 0.8), h * 0.2, h * 0.2)
        tail = QPainterPath()
        tail.moveTo(QPointF(x + w * 0.25, y + h * 0.75))
        tail.lineTo(QPointF(x + w * 0.2, y + h * 1.05))
        tail.lineTo(QPointF(x + w * 0.5, y + h * 0.75))
        tail.closeSubpath()
        path = path.united(tail)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(BUBBLE))
        painter.drawPath(path)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.setPen(option.palette.highlightedText().color() if selected
                       else option.palette.text().color())
        painter.drawText(QRectF(x + w + 4, r.top(), r.width() - w - 8, r.height()),
                         int(Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft), text)
        painter.restore()


class CommentsPanel(QWidget):
    """The comments on one job or host, oldest first, and a box to add one.  `add_wanted`
    (text) and `delete_wanted` (comment id) ask the window to act; one's own comments may be
    deleted, an admin's mode deletes any."""

    add_wanted = Signal(str)
    delete_wanted = Signal(int)

    def __init__(self, noun: str, parent=None):
        super().__init__(parent)
        self.noun = noun                     # "job" or "host"
        self.subject: Any = None             # the job id or host name shown
        self.user = ""
        self.admin = False
        self.rows: list[dict] = []
        self.caption = QLabel()
        self.caption.setObjectName("panelCaption")
        self.caption.setWordWrap(True)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setAlternatingRowColors(True)
        self.list.setSpacing(2)
        self.list.setSelectionMode(QListWidget.SelectionMode.SingleSelection)
        self.list.currentItemChanged.connect(lambda *_: self._update_buttons())
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText(f"Write a comment on this {noun}...")
        self.editor.setMaximumHeight(theme.scaled(72, self))
        self.editor.textChanged.connect(self._update_buttons)
        self.add_button = QPushButton("Add comment")
        self.add_button.setToolTip("Ctrl+Return")
        self.add_button.clicked.connect(self._add)
        send = QShortcut(QKeySequence("Ctrl+Return"), self.editor)
        send.setContext(Qt.ShortcutContext.WidgetShortcut)
        send.activated.connect(lambda: self.add_button.isEnabled() and self._add())
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self._delete)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.setObjectName("commentError")
        buttons = QHBoxLayout()
        buttons.addWidget(self.error, 1)
        buttons.addWidget(self.delete_button)
        buttons.addWidget(self.add_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.setSpacing(3)
        lay.addWidget(self.caption)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.editor)
        lay.addLayout(buttons)
        self.show_subject(None)

    def set_user(self, user: str, admin: bool) -> None:
        self.user, self.admin = user, admin
        self._update_buttons()

    def show_subject(self, subject: Any, title: str = "") -> None:
        """Show the comments of another job or host (None: nothing selected)."""
        if subject != self.subject:
            self.rows = []
            self.list.clear()
            self.error.clear()
        self.subject = subject
        self.caption.setText(f"Comments on {title}" if subject is not None
                             else f"Select a {self.noun} to read and write its comments")
        self.editor.setEnabled(subject is not None)
        self._update_buttons()

    def show_comments(self, subject: Any, rows: list[dict]) -> None:
        """The comments of `subject` as the supervisor lists them (ignored if another subject
        is shown now)."""
        if subject != self.subject:
            return
        current = self.list.currentItem()
        keep = current.data(Qt.ItemDataRole.UserRole)["id"] if current is not None else None
        self.rows = list(rows)
        self.list.clear()
        for r in rows:
            item = QListWidgetItem(f"{r['author']}  ·  {fmt.full_time(r['created_at'])}\n"
                                   f"{r['text']}")
            item.setData(Qt.ItemDataRole.UserRole, r)
            item.setToolTip(html.escape(f"#{r['id']} by {r['author']}"))
            self.list.addItem(item)
            if r["id"] == keep:
                self.list.setCurrentItem(item)
        if rows and keep is None:
            self.list.scrollToBottom()
        self._update_buttons()

    def failed(self, message: str) -> None:
        self.error.setText(f"<span style='color:{theme.chrome('ERROR_FIELD')}'>"
                           f"{html.escape(message)}</span>")

    def added(self) -> None:
        self.editor.clear()
        self.error.clear()

    def _text(self) -> str:
        return self.editor.toPlainText().strip()

    def _update_buttons(self) -> None:
        text = self._text()
        too_long = len(text) > MAX_TEXT
        self.add_button.setEnabled(self.subject is not None and bool(text) and not too_long)
        self.add_button.setToolTip(f"At most {MAX_TEXT:,} characters ({len(text):,} now)"
                                   if too_long else "Ctrl+Return")
        item = self.list.currentItem()
        row = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        mine = row is not None and (row["author"] == self.user or self.admin)
        self.delete_button.setEnabled(mine)
        self.delete_button.setToolTip(
            "" if mine or row is None
            else f"{row['author']}'s comment: only its author or an admin may delete it")

    def _add(self) -> None:
        text = self._text()
        if self.subject is not None and text:
            self.error.clear()
            self.add_wanted.emit(text)

    def _delete(self) -> None:
        item = self.list.currentItem()
        if item is not None:
            self.error.clear()
            self.delete_wanted.emit(item.data(Qt.ItemDataRole.UserRole)["id"])
