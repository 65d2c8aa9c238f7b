"""The log panel: a window onto one frame attempt's log, live while it runs.

The connection worker sends pieces (cuegui.logfollow.LogPiece): the tail when a log opens, new
bytes while the window reaches the end of a running attempt, earlier or later pages on demand,
and a fresh window around a search match.  Text goes into the editor in slices of SLICE
characters, one per turn of the event loop, so a megabyte page never freezes the window.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

from qtpy.QtCore import QRegularExpression, QSize, Qt, QTimer, Signal
from qtpy.QtGui import (QColor, QFontDatabase, QKeySequence, QTextCharFormat, QTextCursor,
                         QTextDocument)
from qtpy.QtWidgets import (QCheckBox, QComboBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                            QSizePolicy, QTextEdit, QToolButton, QVBoxLayout, QWidget)

from cuegui import theme
from cuegui.logfollow import ERROR_PATTERN, LogPiece

SLICE = 128 * 1024
MAX_HIGHLIGHTS = 2000
HEADER_RULE = "=" * 78


def split_text(text: str, size: int = SLICE) -> list[str]:
    """Slices of about `size` characters, cut after a newline where there is one."""
    out, start = [], 0
    while start < len(text):
        end = start + size
        if end < len(text):
            cut = text.rfind("\n", start, end)
            end = cut + 1 if cut > start else end
        out.append(text[start:end])
        start = end
    return out


def human_size(n: int) -> str:
    """1536 -> '1.5 KB'."""
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _button(icon: str, tip: str) -> QToolButton:
    b = QToolButton()
    b.setIcon(theme.icon(icon))
    size = theme.scaled(16)
    b.setIconSize(QSize(size, size))
    b.setToolTip(tip)
    b.setAutoRaise(True)
    return b


class LogPanel(QWidget):
    """Shows the pieces of the log opened last; pieces for other frames are ignored.

    Signals ask the window (and through it the connection worker) for more: `page_wanted`
    ("earlier", "later", "tail"), `find_wanted` (pattern, byte offset), `attempt_wanted`."""

    page_wanted = Signal(str)
    find_wanted = Signal(str, int)
    attempt_wanted = Signal(object)        # attempt number

    def __init__(self, parent=None):
        super().__init__(parent)
        self.frame_id: Any = None
        self.frame: dict = {}
        self.start = self.end = self.size = 0
        self.following = False
        self.running = False
        self._queue: deque = deque()       # ("text", mode, str) | ("focus", line)
        self._asked_earlier = False
        self._pattern = ""
        self.caption = QLabel("No log open: double-click a frame")
        self.caption.setObjectName("panelCaption")
        self.attempts = QComboBox()
        self.attempts.setToolTip("Which attempt's log to show")
        self.attempts.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.attempts.setMinimumContentsLength(len("Try 9 of 9"))
        self.attempts.activated.connect(self._attempt_chosen)
        self.follow = QCheckBox("Follow")
        self.follow.setChecked(True)
        self.follow.setToolTip("Keep the end of the log in view as it grows")
        self.wrap = QCheckBox("Wrap")
        self.wrap.setToolTip("Wrap long lines at the panel's width")
        self.wrap.toggled.connect(self._wrap_toggled)
        self.matches = QLabel()
        self.matches.setObjectName("panelCaption")
        self.matches.setToolTip("Matches of the search in the loaded part of the log")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search log")
        self.search.setClearButtonEnabled(True)
        self.search.setMinimumWidth(theme.scaled(120, self))
        self.search.setMaximumWidth(theme.scaled(240, self))
        self.search.returnPressed.connect(self.find_next)
        self.search.textChanged.connect(self._pattern_changed)
        self.prev_button = _button("find-prev", "Previous match (Shift+F3)")
        self.next_button = _button("find-next", "Next match (F3); past the loaded part, the "
                                                "whole log is searched")
        self.error_button = _button("error", "Jump to the first error line of the whole log")
        self.error_button.setText("First error")
        self.earlier_button = _button("earlier", "To the top: scroll there, loading the page "
                                                 "before when the top is not loaded")

        self.later_button = _button("later", "Load the page after")

        self.tail_button = _button("tail", "Go to the end and follow")
        self.error_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.prev_button.clicked.connect(self.find_previous)
        self.next_button.clicked.connect(self.find_next)
        self.error_button.clicked.connect(self.first_error)
        self.earlier_button.clicked.connect(self.to_top)
        self.later_button.clicked.connect(lambda: self._want_page("later"))
        self.tail_button.clicked.connect(lambda: self._want_page("tail"))
        self.text = QPlainTextEdit()
        self.text.setObjectName("logText")
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        fixed = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        fixed.setPointSizeF(self.font().pointSizeF())     # as large as the rest of the text
        self.text.setFont(fixed)
        self.text.setPlaceholderText("The log of a frame shows here.")
        self.text.verticalScrollBar().valueChanged.connect(self._scrolled)
        self.where = QLabel()
        self.where.setObjectName("panelCaption")
        # The caption (job / layer / frame, attempt, host) has a row of its own and wraps
        # rather than lose its end; the rest may be cut rather than widen the dock.
        self.caption.setWordWrap(True)
        self.caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Minimum)
        self.where.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.where.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        head = QVBoxLayout()
        head.setContentsMargins(6, 4, 6, 4)
        head.setSpacing(2)
        head.addWidget(self.caption)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.attempts)
        top.addWidget(self.follow)
        top.addWidget(self.wrap)
        top.addStretch(1)
        head.addLayout(top)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 0, 6, 2)
        for w in (self.search, self.matches, self.prev_button, self.next_button,
                  self.error_button):
            bar.addWidget(w)
        bar.addWidget(self.where, 1)
        for w in (self.earlier_button, self.later_button, self.tail_button):
            bar.addWidget(w)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(head)
        layout.addLayout(bar)
        layout.addWidget(self.text)
        self._feeder = QTimer(self, interval=0)
        self._feeder.timeout.connect(self._feed)
        self._update_buttons()

    # -- pieces from the connection ---------------------------------------------------------------

    def expect(self, frame: dict) -> None:
        """A log for `frame` was asked for: clear and wait for its pieces."""
        self.frame_id, self.frame = frame.get("id"), dict(frame)
        label = frame.get("frames") or frame.get("number")
        self.caption.setText(f"{frame.get('layer')} / frame {label}: loading...")
        self._queue.clear()
        self.text.clear()
        self.start = self.end = self.size = 0
        # A new log starts followed, whatever the last one's search or error jump did.
        self.follow.setChecked(True)
        self._highlight()

    def _title(self, piece: LogPiece) -> str:
        """Frame, host and attempt first (what tells one log from another), then the job
        and layer: a narrow dock cuts the end, not the part that matters."""
        f = self.frame or {}
        label = f.get("frames") or f.get("number")
        head = [f"Frame {label}" if label is not None else piece.title]
        if piece.host:
            head.append(str(piece.host))
        if piece.attempt:
            head.append(f"attempt {piece.attempt}")
        where = " / ".join(str(x) for x in (f.get("job"), f.get("layer")) if x)
        return "  ·  ".join(head) + (f"  —  {where}" if where and label is not None else "")

    def show_piece(self, piece: LogPiece) -> None:
        """Apply a piece: replace, append or prepend text; errors show in the caption."""
        if piece.frame_id != self.frame_id:
            return
        self.caption.setText(self._title(piece))
        self.caption.setToolTip(piece.title)
        self._set_attempts(piece.attempt, piece.latest)
        if piece.error:
            self.caption.setText(f"{self._title(piece)}  ·  {piece.error}")
            if piece.reset:
                self._queue.clear()
                self.text.clear()
                self.text.setPlaceholderText(piece.error)
                self.start = self.end = self.size = 0
            self._update_buttons()
            return
        if piece.reset:
            self._queue.clear()
            self.text.clear()
        self.start, self.end, self.size = piece.start, piece.end, piece.size
        self.following = piece.following
        self.running = piece.running
        if piece.mode == "prepend":
            # Slices go in last first, each at the top, so they end up in order.
            for part in reversed(split_text(piece.text)):
                self._queue.append(("text", "prepend", part))
            self._asked_earlier = False
        else:
            for part in split_text(piece.text):
                self._queue.append(("text", "append", part))
        if piece.focus_line is not None:
            self._queue.append(("focus", piece.focus_line))
        self._update_buttons()
        self._feed()
        if self._queue:
            self._feeder.start()

    def _feed(self) -> None:
        """Insert one slice of queued text (or apply a queued focus)."""
        if not self._queue:
            self._feeder.stop()
            return
        op = self._queue.popleft()
        if op[0] == "focus":
            self.focus_line(op[1])
            return
        _, mode, text = op
        bar = self.text.verticalScrollBar()
        doc = self.text.document()
        cursor = QTextCursor(doc)
        if mode == "prepend":
            before, blocks = bar.value(), doc.blockCount()
            cursor.movePosition(QTextCursor.MoveOperation.Start)
            cursor.insertText(text)
            bar.setValue(before + doc.blockCount() - blocks)
            return
        at_end = bar.value() >= bar.maximum() - 2
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(text)
        if self.following and (self.follow.isChecked() or at_end) and not self._has_focus_op():
            bar.setValue(bar.maximum())

    def _has_focus_op(self) -> bool:
        return any(op[0] == "focus" for op in self._queue)

    @property
    def busy(self) -> bool:
        """True while queued text is still going into the editor."""
        return bool(self._queue)

    def contents(self) -> str:
        return self.text.toPlainText()

    # -- navigation ---------------------------------------------------------------------------------

    def focus_line(self, line: int) -> None:
        """Bring a line of the window into view and mark it."""
        block = self.text.document().findBlockByNumber(max(0, line))
        if not block.isValid():
            return
        self.follow.setChecked(False)
        cursor = QTextCursor(block)
        cursor.select(QTextCursor.SelectionType.LineUnderCursor)
        self.text.setTextCursor(cursor)
        self.text.centerCursor()
        self._highlight()

    def _regex(self, pattern: str) -> QRegularExpression:
        return QRegularExpression(pattern, QRegularExpression.PatternOption.CaseInsensitiveOption)

    def find_next(self, backward: bool = False) -> bool:
        """Select the next (previous) match of the search text; past the loaded part, ask the
        worker to search the whole log.  True when found in the loaded part."""
        text = self.search.text()
        if not text:
            return False
        flags = QTextDocument.FindFlag.FindBackward if backward else QTextDocument.FindFlag(0)
        found = self.text.find(self._regex(re.escape(text)), flags)
        if not found and self.start == 0 and self.end >= self.size:
            # The whole log is loaded: go round from the other end.
            self.text.moveCursor(QTextCursor.MoveOperation.End if backward
                                 else QTextCursor.MoveOperation.Start)
            found = self.text.find(self._regex(re.escape(text)), flags)
        if found:
            self.follow.setChecked(False)
            self.text.centerCursor()
            self._highlight()
            return True
        if self.start > 0 or self.end < self.size:
            self.caption.setText(f"Searching the whole log for {text!r}...")
            self.find_wanted.emit(re.escape(text), 0)
        return False

    def find_previous(self) -> bool:
        return self.find_next(backward=True)

    def first_error(self) -> bool:
        """Jump to the first line that looks like an error (past the worker's header).  True
        when it is in the loaded part; otherwise the worker searches the whole log."""
        if self.start == 0:
            doc = self.text.document()
            cursor = QTextCursor(doc)
            rule = doc.find(HEADER_RULE, 0)
            if not rule.isNull():
                second = doc.find(HEADER_RULE, rule)
                if not second.isNull():
                    cursor = second
            found = doc.find(self._regex(ERROR_PATTERN), cursor)
            if not found.isNull():
                self.focus_line(found.blockNumber())
                return True
            if self.end >= self.size:
                self.caption.setText("No error lines in this log")
                return False
        self.caption.setText("Searching the whole log for the first error...")
        self.find_wanted.emit(ERROR_PATTERN, 0)
        return False

    def to_top(self) -> None:
        """Scroll to the top of the log, loading the page before when the top of the
        window is not the start of the log."""
        self.follow.setChecked(False)
        if self.start > 0 and not self._asked_earlier:
            self._asked_earlier = True          # scrolling up must not ask a second time
            self._want_page("earlier")
        self.text.verticalScrollBar().setValue(0)

    def _wrap_toggled(self, on: bool) -> None:
        mode = (QPlainTextEdit.LineWrapMode.WidgetWidth if on
                else QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setLineWrapMode(mode)

    def _pattern_changed(self, text: str) -> None:
        self._pattern = text
        self._highlight()

    def _highlight(self) -> None:
        """Mark every match of the search text (up to a limit) and the current line."""
        marks = []
        doc = self.text.document()
        if self._pattern:
            regex = self._regex(re.escape(self._pattern))
            fmt = QTextCharFormat()
            fmt.setBackground(QColor(theme.chrome("MATCH")))
            cursor = QTextCursor(doc)
            while len(marks) < MAX_HIGHLIGHTS:
                cursor = doc.find(regex, cursor)
                if cursor.isNull():
                    break
                sel = QTextEdit.ExtraSelection()
                sel.cursor, sel.format = cursor, fmt
                marks.append(sel)
        current = QTextEdit.ExtraSelection()
        current.format.setBackground(QColor(theme.chrome("CURRENT_MATCH")))
        current.format.setForeground(QColor("#15171a"))
        current.cursor = self.text.textCursor()
        count = len(marks)
        if current.cursor.hasSelection():
            marks.append(current)
        self.text.setExtraSelections(marks)
        self._count_matches(marks[:count], current.cursor)

    def _count_matches(self, found: list, current: QTextCursor) -> None:
        """"3 of 12" (the selected match of all in the loaded part), "no matches", or
        nothing without a search."""
        if not self._pattern:
            self.matches.setText("")
            return
        n = len(found)
        more = "+" if n >= MAX_HIGHLIGHTS else ""
        if not n:
            self.matches.setText("no matches" + (" loaded" if self.start > 0
                                                 or self.end < self.size else ""))
            return
        at = next((i + 1 for i, sel in enumerate(found)
                   if current.hasSelection()
                   and sel.cursor.selectionStart() == current.selectionStart()), None)
        self.matches.setText(f"{at} of {n}{more}" if at else f"{n}{more} matches")

    def highlighted(self) -> int:
        """How many marks are shown (search matches and the current one)."""
        return len(self.text.extraSelections())

    # -- paging -----------------------------------------------------------------------------------

    def _want_page(self, where: str) -> None:
        if where == "tail":
            self.follow.setChecked(True)
        self.page_wanted.emit(where)

    def _scrolled(self, value: int) -> None:
        # Scrolling to the top of the window fetches the page before it.
        if value == 0 and self.start > 0 and not self._asked_earlier and not self._queue \
                and self.text.document().blockCount() > 1:
            self._asked_earlier = True
            self.page_wanted.emit("earlier")

    def _update_buttons(self) -> None:
        has = self.frame_id is not None and self.size > 0
        self.earlier_button.setEnabled(has)
        self.later_button.setEnabled(has and self.end < self.size)
        self.tail_button.setEnabled(has and not self.following)
        for b in (self.error_button, self.prev_button, self.next_button):
            b.setEnabled(has)
        if has:
            whole = self.start == 0 and self.end >= self.size
            shown = (f"all {human_size(self.size)}" if whole else
                     f"{human_size(self.start)}-{human_size(self.end)} of "
                     f"{human_size(self.size)}")
            self.where.setText(shown + ("  ·  live" if self.following and self.running
                                        else ""))
            self.where.setToolTip(f"bytes {self.start:,} to {self.end:,} of {self.size:,}")
        else:
            self.where.setText("")

    def _set_attempts(self, attempt: int | None, latest: int | None) -> None:
        latest = latest or attempt or 0
        want = [(n, f"Try {n} of {latest}") for n in range(latest, 0, -1)]
        have = [(self.attempts.itemData(i), self.attempts.itemText(i))
                for i in range(self.attempts.count())]
        if want != have:
            self.attempts.blockSignals(True)
            self.attempts.clear()
            for n, label in want:
                self.attempts.addItem(label, n)
            self.attempts.blockSignals(False)
        if attempt:
            self.attempts.setCurrentIndex(max(0, self.attempts.findData(attempt)))
        self.attempts.setEnabled(latest > 1)

    def _attempt_chosen(self, index: int) -> None:
        number = self.attempts.itemData(index)
        if number is not None:
            self.attempt_wanted.emit(number)

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_F3:
            self.find_next(backward=bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier))
            return
        if event.matches(QKeySequence.StandardKey.Find):
            self.search.setFocus()
            return
        super().keyPressEvent(event)
