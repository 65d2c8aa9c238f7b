"""Item delegates: a state pill, the job progress bar and a frame's progress bar."""

from __future__ import annotations

from qtpy.QtCore import QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPalette, QPen
from qtpy.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from cuegui import theme
from cuegui.models.table import RowRole, SortRole


class _Painted(QStyledItemDelegate):
    def background(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        """Selection and alternate-row background, without the text.

        Filled directly from the palette: going through the style (initStyleOption and
        CE_ItemViewItem) asks the model for a dozen roles per cell, which dominated repaints
        of large tables."""
        state = option.state
        if state & QStyle.StateFlag.State_Selected:
            group = (QPalette.ColorGroup.Active if state & QStyle.StateFlag.State_Active
                     else QPalette.ColorGroup.Inactive)
            painter.fillRect(option.rect, option.palette.brush(group,
                                                               QPalette.ColorRole.Highlight))
        elif option.features & QStyleOptionViewItem.ViewItemFeature.Alternate:
            painter.fillRect(option.rect, option.palette.alternateBase())


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
        painter.setPen(theme.text_on(fill))
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
            painter.setPen(theme.text_on(QColor(colour)))
            painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
        painter.setClipping(False)
    painter.restore()


class ProgressDelegate(_Painted):
    """A job's frames as one bar: succeeded, eaten, dead and running shares of frames_total."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        self.background(painter, option, index)
        job = index.data(RowRole) or {}
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
