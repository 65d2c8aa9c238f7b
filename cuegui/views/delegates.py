"""Item delegates: plain text, a state pill, the job progress bar and a frame's progress bar."""

from __future__ import annotations

import functools
import math

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFontMetrics, QPainter, QPalette, QPen, QStaticText, QTransform
from qtpy.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from cuegui import theme
from cuegui.models.table import RowRole, RowTableModel, SortRole


@functools.lru_cache(maxsize=256)
def _text_on(fill: str) -> QColor:
    """theme.text_on, remembered per colour (it is asked for every painted cell)."""
    return theme.text_on(QColor(fill))


# Flags as plain ints: Python enum operators cost microseconds, and painting a table does
# a few per cell.
_SELECTED = QStyle.StateFlag.State_Selected.value
_ACTIVE = QStyle.StateFlag.State_Active.value
_ALTERNATE = QStyleOptionViewItem.ViewItemFeature.Alternate.value
_RIGHT = Qt.AlignmentFlag.AlignRight.value
_HCENTER = Qt.AlignmentFlag.AlignHCenter.value
_HIGHLIGHT = QPalette.ColorRole.Highlight
_HIGHLIGHTED_TEXT = QPalette.ColorRole.HighlightedText
_TEXT = QPalette.ColorRole.Text
_GROUP_ACTIVE, _GROUP_INACTIVE = QPalette.ColorGroup.Active, QPalette.ColorGroup.Inactive


class _Painted(QStyledItemDelegate):
    def background(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        """Selection and alternate-row background, without the text.

        Filled directly from the palette: going through the style (initStyleOption and
        CE_ItemViewItem) asks the model for a dozen roles per cell, which dominated repaints
        of large tables."""
        state = option.state.value
        if state & _SELECTED:
            group = _GROUP_ACTIVE if state & _ACTIVE else _GROUP_INACTIVE
            painter.fillRect(option.rect, option.palette.brush(group, _HIGHLIGHT))
        elif option.features.value & _ALTERNATE:
            painter.fillRect(option.rect, option.palette.alternateBase())


class TextDelegate(_Painted):
    """Plain text cells, drawn straight from the model's `cell()` (RowTableModel) with their
    text laid out once and kept (QStaticText): the style's item drawing asks the model for a
    dozen roles per cell and lays every cell's text out again on each paint, which made a
    repaint of a full table take tens of milliseconds.  Selection, alternate rows, the
    columns' alignment and colours and eliding on the right look as the style draws them."""

    MARGIN = 3              # the style's text margin on either side
    KEPT = 4096             # laid-out texts kept (a screenful is a few hundred)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._texts: dict = {}          # text or (text, width) -> (QStaticText, width, height)
        self._font_key = ""
        self._metrics: QFontMetrics | None = None

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        model = index.model()
        cell = getattr(model, "cell", None)
        if cell is None:
            super().paint(painter, option, index)
            return
        self.background(painter, option, index)
        text, colour = cell(index.row(), index.column())
        rect = option.rect
        room = rect.width() - 2 * self.MARGIN
        if not text or room <= 0:
            return
        state = option.state.value
        if state & _SELECTED:
            group = _GROUP_ACTIVE if state & _ACTIVE else _GROUP_INACTIVE
            painter.setPen(option.palette.color(group, _HIGHLIGHTED_TEXT))
        elif colour is not None:
            painter.setPen(colour)
        else:
            painter.setPen(option.palette.color(_TEXT))
        static, width, height = self._laid_out(text, room, painter.font())
        align = model.alignment(index.column())
        if align & _RIGHT:
            x = rect.x() + rect.width() - self.MARGIN - width
        elif align & _HCENTER:
            x = rect.x() + (rect.width() - width) // 2
        else:
            x = rect.x() + self.MARGIN
        painter.drawStaticText(QPointF(x, rect.y() + (rect.height() - height) // 2), static)

    def _laid_out(self, text: str, room: int, font) -> tuple[QStaticText, int, int]:
        return self.laid_out(text, room, font, font.key())

    def laid_out(self, text: str, room: int, font, key: str) -> tuple[QStaticText, int, int]:
        """`text` laid out in `font` (whose key() is `key`), elided to `room` pixels: (the
        static text, its width, its height), kept for the next paint."""
        if key != self._font_key:
            self._texts.clear()
            self._font_key, self._metrics = key, QFontMetrics(font)
        texts = self._texts
        got = texts.get(text)
        if got is None:
            got = self._make(text, text.replace("\n", " "), font)
        if got[1] <= room:
            return got
        elided = texts.get((text, room))
        if elided is None:
            short = self._metrics.elidedText(text.replace("\n", " "),
                                             Qt.TextElideMode.ElideRight, room)
            elided = self._make((text, room), short, font)
        return elided

    def _make(self, key, text: str, font) -> tuple[QStaticText, int, int]:
        if len(self._texts) >= self.KEPT:
            self._texts.clear()
        static = QStaticText(text)
        static.setTextFormat(Qt.TextFormat.PlainText)
        static.setPerformanceHint(QStaticText.PerformanceHint.AggressiveCaching)
        static.prepare(QTransform(), font)
        size = static.size()
        got = self._texts[key] = (static, math.ceil(size.width()), math.ceil(size.height()))
        return got


class StateDelegate(_Painted):
    """Draws a state as a rounded coloured pill, colour from a `theme` table.

    States in `quiet` (the normal ones, like a host being UP) are drawn as coloured text
    instead, so that on a farm of thousands of rows the exceptions are what stands out.
    """

    def __init__(self, colors: dict[str, str], parent=None, quiet: frozenset[str] = frozenset(),
                 icons: dict[str, str] | None = None):
        super().__init__(parent)
        self.colors = colors
        self.quiet = quiet
        self.icons = icons or {}        # state -> icon drawn before the text in its pill

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        state = index.data(SortRole)
        self.background(painter, option, index)
        if not state:
            return
        fill = theme.color(self.colors, str(state))
        rect = QRectF(option.rect).adjusted(3, 3, -3, -3)
        painter.save()
        if state in self.quiet:
            painter.setPen(theme.readable(fill.name(), theme.base_colour()))
            painter.drawText(rect.adjusted(3, 0, 0, 0),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                             str(index.data()))
            painter.restore()
            return
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(fill)
        radius = min(rect.height() / 2, 6)
        painter.drawRoundedRect(rect, radius, radius)
        painter.setPen(_text_on(fill.name()))
        font = option.font
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        painter.setFont(font)
        text_rect = rect
        name = self.icons.get(str(state))
        if name:
            side = rect.height() - 4
            width = painter.fontMetrics().horizontalAdvance(str(index.data()))
            left = rect.center().x() - (width + side + 3) / 2
            theme.icon(name).paint(painter, QRectF(left, rect.top() + 2, side, side).toRect())
            text_rect = rect.adjusted(side + 3, 0, 0, 0)
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter, str(index.data()))
        painter.restore()


def _bar(painter: QPainter, option: QStyleOptionViewItem, segments: list[tuple[float, str]],
         text: str) -> None:
    """A rounded bar in the cell: coloured `segments` (fraction of the width, colour) left to
    right over the trough, and `text` centred, each part of it in the colour that reads on
    what is under it."""
    rect = QRectF(option.rect).adjusted(4, 4, -4, -4)
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(theme.chrome("TROUGH")))
    painter.drawRoundedRect(rect, 3, 3)
    # (left, right, colour), then the trough; cumulative edges, so rounding never leaves a
    # gap or an overlap.
    spans = []
    x, done = rect.left(), 0.0
    for share, colour in segments:
        done = min(1.0, done + share)
        right = rect.left() + rect.width() * done
        spans.append((x, right, colour))
        x = right
    spans.append((x, rect.right(), theme.chrome("TROUGH")))
    painter.setClipRect(rect)
    for left, right, colour in spans[:-1]:
        painter.setBrush(QColor(colour))
        painter.drawRect(QRectF(left, rect.top(), right - left, rect.height()))
    painter.setClipping(False)
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.setPen(QPen(QColor(0, 0, 0, 90), 1))
    painter.drawRoundedRect(rect, 3, 3)
    if text:
        font = option.font
        font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
        font.setBold(True)
        painter.setFont(font)
        for left, right, colour in spans:
            if right <= left:
                continue
            painter.setClipRect(QRectF(left, rect.top(), right - left, rect.height()))
            painter.setPen(_text_on(colour))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.setClipping(False)
    painter.restore()


class ProgressDelegate(_Painted):
    """A job's frames as one bar: succeeded, eaten, dead and running shares of frames_total."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        self.background(painter, option, index)
        model = index.model()     # the row itself, not a copy made through data(RowRole)
        job = (model.row(index.row()) if isinstance(model, RowTableModel)
               else index.data(RowRole)) or {}
        total = job.get("frames_total") or 0
        segments = [((job.get(key) or 0) / total, colour)
                    for key, colour in theme.PROGRESS_COLORS.items()
                    if total and job.get(key)]
        _bar(painter, option, segments, index.data() or "")


class FrameProgressDelegate(_Painted):
    """A running frame's progress as a bar with its percentage; nothing for other frames
    (the model's text is empty for them)."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        self.background(painter, option, index)
        percent = index.data(SortRole)
        if percent is None:
            return
        _bar(painter, option, [(percent / 100.0, theme.FRAME_COLORS["RUNNING"])],
             index.data() or "")
