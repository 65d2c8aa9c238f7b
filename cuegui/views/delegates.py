"""Item delegates: a state pill and the job progress bar."""

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


class ProgressDelegate(_Painted):
    """A job's frames as one bar: succeeded, eaten, dead and running shares of frames_total."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index) -> None:
        self.background(painter, option, index)
        job = index.data(RowRole) or {}
        total = job.get("frames_total") or 0
        rect = QRectF(option.rect).adjusted(4, 4, -4, -4)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.chrome("TROUGH")))
        painter.drawRoundedRect(rect, 3, 3)
        # Segments left to right, then the trough: (left, right, colour).
        segments = []
        x = rect.left()
        if total:
            done = 0
            for key, colour in theme.PROGRESS_COLORS.items():
                count = job.get(key) or 0
                if not count:
                    continue
                done += count
                # Cumulative edges, so rounding never leaves a gap or an overlap.
                right = rect.left() + rect.width() * min(done, total) / total
                segments.append((x, right, colour))
                x = right
        segments.append((x, rect.right(), theme.chrome("TROUGH")))
        painter.setClipRect(rect)
        for left, right, colour in segments[:-1]:
            painter.setBrush(QColor(colour))
            painter.drawRect(QRectF(left, rect.top(), right - left, rect.height()))
        painter.setClipping(False)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(QColor(0, 0, 0, 90), 1))
        painter.drawRoundedRect(rect, 3, 3)
        text = index.data() or ""
        if text:
            font = option.font
            font.setPointSizeF(max(7.0, font.pointSizeF() - 1))
            font.setBold(True)
            painter.setFont(font)
            # Each part of the text in the colour that reads on the segment under it.
            for left, right, colour in segments:
                if right <= left:
                    continue
                painter.setClipRect(QRectF(left, rect.top(), right - left, rect.height()))
                painter.setPen(theme.text_on(QColor(colour)))
                painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
            painter.setClipping(False)
        painter.restore()
