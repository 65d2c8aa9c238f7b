"""A table view over a RowTableModel, and a panel with a toolbar and a filter field above it."""

from __future__ import annotations

import bisect
from typing import Any

from qtpy.QtCore import QByteArray, QItemSelectionModel, QSize, Qt, QTimer
from qtpy.QtGui import QColor
from qtpy.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
                            QMenu, QTableView, QToolBar, QVBoxLayout, QWidget)

from cuegui import theme
from cuegui.models.table import RowTableModel
from cuegui.views.cellpaint import paint_cells
from cuegui.views.delegates import TextDelegate


class TableView(QTableView):
    """Rows selectable as wholes, sorting by header click (the model sorts), a context menu."""

    rows_called = "rows"      # what the rows are, for the hint of a table filtered empty
    paint_cells = True        # cells painted in one pass (cellpaint), not cell by cell by Qt

    def __init__(self, model: RowTableModel, parent: QWidget | None = None):
        super().__init__(parent)
        self.setModel(model)
        # Cells are drawn from the model's rows, not through the style (see TextDelegate);
        # columns with a picture (state pills, progress bars) set their own delegates.
        self._text = TextDelegate(self)
        self.setItemDelegate(self._text)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        vh = self.verticalHeader()
        vh.hide()
        # Fixed row heights let the view skip measuring 100,000 rows; the height follows the
        # font, so a 4K screen with a large font gets taller rows, not clipped text.
        vh.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vh.setMinimumSectionSize(1)
        vh.setDefaultSectionSize(self.row_height())
        hh = self.horizontalHeader()
        hh.setHighlightSections(False)
        hh.setSectionsMovable(True)
        hh.setStretchLastSection(False)
        hh.setSortIndicatorClearable(True)
        hh.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        fm = hh.fontMetrics()
        for i, col in enumerate(model.columns):
            # Never narrower than the title (plus room for padding and the sort arrow).
            title = fm.horizontalAdvance(col.title) + fm.height()
            self.setColumnWidth(i, max(theme.scaled(col.width, self), title))
            if col.hidden:
                self.setColumnHidden(i, True)
        hh.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        hh.customContextMenuRequested.connect(self._header_menu)
        self.context_actions: list[Any] = []    # QActions and None for separators
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_menu)

    def row_height(self) -> int:
        """A row is a line of text plus a little air, in this view's font."""
        return round(theme.line_height(self) * 1.45)

    def save_state(self) -> QByteArray:
        """Column order, widths, hidden columns and sort, for QSettings."""
        return self.horizontalHeader().saveState()

    def restore_state(self, state: Any) -> None:
        """Undo save_state(); the model sorts as the restored header says."""
        hh = self.horizontalHeader()
        if state is None or not hh.restoreState(state):
            return
        column = hh.sortIndicatorSection()
        if column >= self.model().columnCount():
            column = -1
        self.table_model().sort(column, hh.sortIndicatorOrder())

    def _header_menu(self, pos) -> None:
        """Show or hide columns."""
        menu = QMenu(self)
        model = self.table_model()
        for i, col in enumerate(model.columns):
            action = menu.addAction(col.title or col.key)
            action.setCheckable(True)
            action.setChecked(not self.isColumnHidden(i))
            action.toggled.connect(lambda on, i=i: self.setColumnHidden(i, not on))
        menu.exec(self.horizontalHeader().mapToGlobal(pos))

    def stretch(self, key: str) -> None:
        """Give the column `key` whatever width the others leave."""
        section = self.table_model().column_index(key)
        self.horizontalHeader().setSectionResizeMode(section, QHeaderView.ResizeMode.Stretch)

    def table_model(self) -> RowTableModel:
        return self.model()

    def sort_by(self, key: str | None, order=Qt.SortOrder.AscendingOrder) -> None:
        """Sort by a column key (None: arrival order) and enable header-click sorting."""
        section = -1 if key is None else self.table_model().column_index(key)
        # With sorting enabled the header's indicator change sorts; enabling it sorts once.
        self.horizontalHeader().setSortIndicator(section, order)
        if not self.isSortingEnabled():
            self.setSortingEnabled(True)

    def selected_rows(self) -> list[dict]:
        """The selected rows' dicts, in display order."""
        model, chosen = self.table_model(), self.selectionModel().selectedRows()
        return [model.row(r) for r in sorted(i.row() for i in chosen)]

    def current_row(self) -> dict | None:
        index = self.currentIndex()
        # From the model itself, not through data(RowRole): Qt copies a dict it hands over
        # deeply, twice (a layer's 30,000 run times took 7 ms).
        return self.table_model().row(index.row()) if index.isValid() else None

    def select_id(self, row_id: Any) -> bool:
        """Make the row with this id current and selected; False when it is not shown."""
        pos = self.table_model().position(row_id)
        if pos is None:
            return False
        index = self.model().index(pos, 0)
        flags = (QItemSelectionModel.SelectionFlag.ClearAndSelect
                 | QItemSelectionModel.SelectionFlag.Rows)
        self.selectionModel().setCurrentIndex(index, flags)
        self.scrollTo(index)
        return True

    def empty_hint(self) -> str:
        """What an empty table says when its filters hide every row ("" when none is hidden)."""
        model = self.table_model()
        if model.rowCount() or not model.total:
            return ""
        return f"No {self.rows_called} match the filters: {model.total:,} hidden"

    def dataChanged(self, top_left, bottom_right, roles=()) -> None:
        """Repaint the changed rows in sight, not the whole range they span: a batch that
        changes rows all over a big table comes as one dataChanged from its first row to its
        last, which would repaint every visible row (tens of milliseconds for a wide table)
        when usually none or a few of them changed."""
        changed = getattr(self.model(), "changed_positions", None)
        positions = changed() if changed is not None else None
        if positions is None or not self.isVisible():
            super().dataChanged(top_left, bottom_right, roles)
            return
        first = self.rowAt(0)
        if first < 0:
            return          # no row in sight
        last = self.rowAt(self.viewport().height() - 1)
        if last < 0:
            last = self.model().rowCount() - 1
        model = top_left.model()
        right = bottom_right.column()
        for row in positions[bisect.bisect_left(positions, first):
                             bisect.bisect_right(positions, last)]:
            super().dataChanged(model.index(row, 0), model.index(row, right), roles)

    def paintEvent(self, event) -> None:
        if not (self.paint_cells and paint_cells(self, event, self._text)):
            super().paintEvent(event)
        hint = self.empty_hint()
        if hint:
            from qtpy.QtGui import QPainter
            painter = QPainter(self.viewport())
            painter.setPen(QColor(theme.chrome("CAPTION")))
            painter.drawText(self.viewport().rect().adjusted(8, 8, -8, -8),
                             Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
                             | Qt.TextFlag.TextWordWrap, hint)
            painter.end()

    def _context_menu(self, pos) -> None:
        if not self.context_actions:
            return
        menu = QMenu(self)
        menu.setToolTipsVisible(True)       # a disabled action's tooltip says why
        for action in self.context_actions:
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.exec(self.viewport().mapToGlobal(pos))


class TablePanel(QWidget):
    """A header row (caption, toolbar, filter field) above a TableView."""

    def __init__(self, view: TableView, placeholder: str = "Filter", parent=None):
        super().__init__(parent)
        self.view = view
        self.caption = QLabel()
        self.caption.setObjectName("panelCaption")
        self.toolbar = QToolBar()
        self.toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonIconOnly)
        size = theme.scaled(18, self)
        self.toolbar.setIconSize(QSize(size, size))
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(placeholder)
        self.filter.setClearButtonEnabled(True)
        self.filter.setMaximumWidth(theme.scaled(220, self))
        # Filtering 100,000 rows per keystroke is wasteful; wait for a pause in typing.
        self._debounce = QTimer(self, singleShot=True, interval=150)
        self._debounce.timeout.connect(self._apply_filter)
        self.filter.textChanged.connect(self._debounce.start)
        top = QHBoxLayout()
        top.setContentsMargins(4, 2, 4, 2)
        top.setSpacing(6)
        top.addWidget(self.toolbar)
        top.addWidget(self.caption, 1)
        self.filters = QHBoxLayout()      # panels put their own filter widgets here
        self.filters.setSpacing(6)
        top.addLayout(self.filters)
        top.addWidget(self.filter)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(top)
        layout.addWidget(view)

    def _apply_filter(self) -> None:
        self.view.table_model().set_filter(self.filter.text())
