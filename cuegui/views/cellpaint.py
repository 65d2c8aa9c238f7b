"""Painting a table's cells in one pass, as QTableView and the delegates would.

QTableView paints a cell by calling its delegate, and from Python every such call costs tens
of microseconds before the delegate does anything (the painter, a copy of the style option
and the index are wrapped for Python).  A table of 13 columns repainted after each batch
spent 10-30 ms that way.  Here the rows in the region to repaint are walked once: a row's
background is filled once, plain text cells are drawn straight from the model's `cell()`
with the text delegate's laid-out texts, and only the columns with a delegate of their own
(state pills, progress bars) call it, with an option set up as QTableView sets it up.

The result is the same pixels (a test compares the two); `paint_cells` declines (returns
False) when the view has something this does not draw: a grid, right-to-left layout, a
model without `cell()`, translucent row backgrounds.
"""

from __future__ import annotations

from qtpy.QtCore import QModelIndex, QPointF, QRect
from qtpy.QtGui import QPainter, QPalette
from qtpy.QtWidgets import QStyle, QStyleOptionViewItem

from cuegui.views.delegates import TextDelegate

_SELECTED = QStyle.StateFlag.State_Selected
_HAS_FOCUS = QStyle.StateFlag.State_HasFocus
_ACTIVE = QStyle.StateFlag.State_Active.value
_ALTERNATE = QStyleOptionViewItem.ViewItemFeature.Alternate
_NO_FEATURES = QStyleOptionViewItem.ViewItemFeature.None_
_RIGHT = 0x2          # Qt.AlignmentFlag.AlignRight
_HCENTER = 0x4        # Qt.AlignmentFlag.AlignHCenter


def paint_cells(view, event, text: TextDelegate) -> bool:
    """Paint the cells of `view` (a QTableView over a RowTableModel) that `event` asks for;
    False when this view must be painted by QTableView instead (nothing painted then)."""
    model = view.model()
    cell = getattr(model, "cell", None)
    if cell is None or view.showGrid() or view.isRightToLeft():
        return False
    option = QStyleOptionViewItem()
    view.initViewItemOption(option)
    palette = view.palette()
    group = (QPalette.ColorGroup.Active if option.state.value & _ACTIVE
             else QPalette.ColorGroup.Inactive)
    highlight = palette.brush(group, QPalette.ColorRole.Highlight)
    alternate = palette.brush(QPalette.ColorGroup.Active, QPalette.ColorRole.AlternateBase)
    if highlight.color().alpha() != 255 or alternate.color().alpha() != 255:
        return False        # one fill per row would differ from the style's and delegate's two
    rows = model.rowCount()
    rect = event.rect()
    first = view.rowAt(rect.top())
    if rows == 0 or first < 0:
        return True
    last = view.rowAt(rect.bottom())
    last = rows - 1 if last < 0 else last
    columns = _columns(view, rect, text)
    if not columns:
        return True
    painter = QPainter(view.viewport())
    try:
        _paint(view, painter, option, palette, group, highlight, alternate, first, last,
               columns, text, cell, model)
    finally:
        painter.end()
    return True


def _columns(view, rect: QRect, text: TextDelegate) -> list[tuple]:
    """(logical column, x, width, its own delegate or None) of the columns `rect` meets, left
    to right."""
    header = view.horizontalHeader()
    left = header.visualIndexAt(rect.left())
    if left < 0:
        if rect.left() >= header.length() - header.offset():
            return []
        left = 0
    right = header.visualIndexAt(rect.right())
    right = header.count() - 1 if right < 0 else right
    out = []
    for visual in range(left, right + 1):
        logical = header.logicalIndex(visual)
        if header.isSectionHidden(logical):
            continue
        width = header.sectionSize(logical)
        if width <= 0:
            continue
        delegate = view.itemDelegateForColumn(logical)
        if delegate is text:
            delegate = None
        out.append((logical, header.sectionViewportPosition(logical), width, delegate))
    return out


def _paint(view, painter: QPainter, option, palette, group, highlight, alternate,
           first: int, last: int, columns: list[tuple], text: TextDelegate, cell, model) -> None:
    selection = view.selectionModel()
    current = view.currentIndex()
    focus = (view.hasFocus() or view.viewport().hasFocus()) and current.isValid()
    focus_at = (current.row(), current.column()) if focus else None
    base_state = option.state
    highlighted = palette.color(group, QPalette.ColorRole.HighlightedText)
    plain = palette.color(QPalette.ColorGroup.Active, QPalette.ColorRole.Text)
    cell_palette = QPalette(palette)
    cell_palette.setCurrentColorGroup(QPalette.ColorGroup.Normal)
    option.palette = cell_palette
    alternating = view.alternatingRowColors()
    font = painter.font()
    font_key = font.key()
    margin = text.MARGIN
    laid_out = text.laid_out
    alignments = {c[0]: model.alignment(c[0]) for c in columns}
    x0 = columns[0][1]
    x1 = columns[-1][1] + columns[-1][2]
    root = QModelIndex()
    for row in range(first, last + 1):
        y = view.rowViewportPosition(row)
        h = view.rowHeight(row)
        if h <= 0:
            continue
        whole = selection is not None and selection.isRowSelected(row, root)
        partly = not whole and selection is not None and selection.rowIntersectsSelection(row,
                                                                                          root)
        odd = alternating and row & 1
        if whole:
            painter.fillRect(QRect(x0, y, x1 - x0, h), highlight)
        elif odd:
            painter.fillRect(QRect(x0, y, x1 - x0, h), alternate)
        for column, x, w, delegate in columns:
            selected = whole or (partly and selection.isSelected(model.index(row, column)))
            if partly:
                if selected:
                    painter.fillRect(QRect(x, y, w, h), highlight)
                elif odd:
                    painter.fillRect(QRect(x, y, w, h), alternate)
            if delegate is not None:
                # A fresh option per cell, as QTableView gives: delegates change theirs
                # (a smaller or bold font for a pill or a bar).
                opt = QStyleOptionViewItem(option)
                state = base_state
                if selected:
                    state |= _SELECTED
                if focus_at == (row, column):
                    state |= _HAS_FOCUS
                opt.state = state
                opt.features = _ALTERNATE if odd else _NO_FEATURES
                opt.rect = QRect(x, y, w, h)
                delegate.paint(painter, opt, model.index(row, column))
                continue
            shown, colour = cell(row, column)
            room = w - 2 * margin
            if not shown or room <= 0:
                continue
            painter.setPen(highlighted if selected else colour if colour is not None
                           else plain)
            static, width, height = laid_out(shown, room, font, font_key)
            align = alignments[column]
            if align & _RIGHT:
                left = x + w - margin - width
            elif align & _HCENTER:
                left = x + (w - width) // 2
            else:
                left = x + margin
            painter.drawStaticText(QPointF(left, y + (h - height) // 2), static)
