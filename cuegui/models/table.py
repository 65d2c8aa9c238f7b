"""A table model of row dicts keyed by id, updated in place and sorted in Python.

Every table in cuegui (jobs, layers, frames, hosts) is one of these with its own columns.  The
model is built for farms with 100,000-frame jobs and a stream of small change batches:

- visible rows are kept in ascending sort-key order next to a list of their keys (the chosen
  column's raw value, or arrival order, then the id), so a row's position is a `bisect` on
  plain tuples; a descending view reads the same lists backwards;
- a batch changes rows in place: one coalesced dataChanged over the rows changed in place
  (with their positions, `changed_positions()`, so views repaint only those in sight),
  begin/end insert, remove and move for a few rows that come, go or move; for many, new rows
  are appended, the order rebuilt in one layout change (a merge, not a re-sort) and departing
  rows removed as one block at the end, so selections and persistent indexes stay on their rows;
- a batch is worked through a few milliseconds per turn of the event loop (see ordering):
  a small one at once, a larger one in slices (the rows sorted out, then stored and shown
  changed in place, then the new order planned and taken over), the model whole between
  any two; a load, sort or filter over tens of thousands of rows is prepared the same way and
  taken over at once, at the start of a slice of its own; all models share one slice of
  time per turn (structure.STEP_SECONDS, less than a frame of animation with the paint that
  follows); operations arriving meanwhile wait and are applied in order after it;
- painting reads a cell's text and colour straight from the row (`cell()`), not role by
  role, a row at a time (cuegui.views.cellpaint);
- replaced rows and the lists a large change leaves behind are let go of in slices too
  (freeing 50,000 row dicts at once would hold the UI thread for tens of milliseconds);
- sorting and filtering live here, not in a QSortFilterProxyModel (which spent 37 s sorting
  100,000 rows through its Python data() calls).
"""

from __future__ import annotations

import bisect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from qtpy.QtCore import QAbstractTableModel, QModelIndex, Qt, QTimer, Signal
from qtpy.QtGui import QColor

from cuegui.models import ordering
from cuegui.models.structure import BULK_THRESHOLD, Structure  # noqa: F401 - re-exported
from cuegui.models.ordering import normal as _normal  # noqa: F401 - tests use it

log = logging.getLogger(__name__)

# Data roles beyond Qt's own.  SortRole gives the raw value a column sorts on.
SortRole = Qt.ItemDataRole.UserRole + 1
RowRole = Qt.ItemDataRole.UserRole + 2     # the whole row dict
IdRole = Qt.ItemDataRole.UserRole + 3      # the row's id

LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
CENTER = Qt.AlignmentFlag.AlignCenter

_DISPLAY = int(Qt.ItemDataRole.DisplayRole.value)
_ALIGN = int(Qt.ItemDataRole.TextAlignmentRole.value)
_FOREGROUND = int(Qt.ItemDataRole.ForegroundRole.value)
_TOOLTIP = int(Qt.ItemDataRole.ToolTipRole.value)
_SERVED = frozenset({_DISPLAY, _ALIGN, _FOREGROUND, _TOOLTIP, int(SortRole), int(RowRole),
                     int(IdRole)})

_FLAGS = (Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
          | Qt.ItemFlag.ItemNeverHasChildren)



def _text(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Column:
    """One column: `value` is the raw value it sorts on, `text` what it displays.

    `width` is in pixels at a 16-pixel line height; views scale it with the font."""

    key: str
    title: str
    value: Callable[[dict], Any]
    text: Callable[[dict], str] | None = None
    width: int = 80
    align: Qt.AlignmentFlag = LEFT
    tooltip: Callable[[dict], str] | None = None
    color: Callable[[dict], QColor | None] | None = None
    filterable: bool = False         # searched by the text filter
    header_tip: str = ""
    hidden: bool = False             # hidden until the user shows it (header menu)

    def display(self, row: dict) -> str:
        return self.text(row) if self.text is not None else _text(self.value(row))


def field(key: str, title: str, **kw: Any) -> Column:
    """A column showing one field of the row as is."""
    return Column(key, title, lambda r, k=key: r.get(k), **kw)


class RowTableModel(Structure, QAbstractTableModel):
    """Rows (dicts with a unique `id`) under a fixed list of columns; see the module docstring.

    The model owns the row dicts it is given and never changes them: an update makes a new
    merged dict, so rows handed out by `get()` or `rows()` are safe to keep."""

    columns: list[Column] = []
    # Inputs of at least this many rows are prepared off the UI thread (tests lower it).
    async_threshold = 5_000
    loading_changed = Signal(bool)      # True while a large load is being prepared

    def __init__(self, parent=None):
        super().__init__(parent)
        self._rows: list[dict] = []          # visible rows, ascending key order
        self._keys: list[tuple] = []         # their keys
        self._key_of: dict[Any, tuple] = {}  # id -> key, visible rows only
        self._all: dict[Any, dict] = {}      # every row by id, filtered out or not
        self._arrival: dict[Any, int] = {}   # id -> arrival number (the unsorted order)
        self._next_arrival = 0
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder
        self._filter = ""
        self._predicate: Callable[[dict], bool] | None = None
        self._filter_columns = [c for c in self.columns if c.filterable]
        self._align = [int(c.align.value if hasattr(c.align, "value") else c.align)
                       for c in self.columns]
        self._busy: ordering.Steps | None = None   # large work under way, in steps
        self._queue: list[tuple] = []        # operations waiting for it
        self._stepper = QTimer(self, interval=0)
        self._stepper.timeout.connect(self._step)
        self._litter: list = []              # lists and dicts let go of in slices
        self._sweeper = QTimer(self, interval=0)
        self._sweeper.timeout.connect(self._sweep)

    # -- Qt model interface -------------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.columns)

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        return _FLAGS if index.isValid() else Qt.ItemFlag.NoItemFlags

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # Painting one cell asks for about seven roles; answer the unused ones first and
        # cheaply (this method runs thousands of times per repaint).
        if role not in _SERVED:
            return None
        n = len(self._rows)
        r = index.row()
        if r >= n or r < 0:
            return None
        row = self._rows[n - 1 - r if self._descending else r]
        col = self.columns[index.column()]
        if role == _DISPLAY:
            return col.display(row)
        if role == _ALIGN:
            return self._align[index.column()]
        if role == _FOREGROUND:
            colour = col.color(row) if col.color is not None else None
            return colour if colour is not None else self.row_foreground(row)
        if role == SortRole:
            return col.value(row)
        if role == _TOOLTIP:
            return col.tooltip(row) if col.tooltip is not None else None
        if role == RowRole:
            return row
        return row["id"]      # IdRole

    def cell(self, position: int, column: int) -> tuple[str, QColor | None]:
        """What a cell shows: its text and its text colour (None: the palette's), read
        without going through Qt's roles (the table's delegate paints every visible cell
        with this)."""
        n = len(self._rows)
        if not 0 <= position < n:
            return "", None
        row = self._rows[n - 1 - position if self._descending else position]
        col = self.columns[column]
        colour = col.color(row) if col.color is not None else None
        return col.display(row), colour if colour is not None else self.row_foreground(row)

    def alignment(self, column: int) -> int:
        """The column's text alignment (Qt.AlignmentFlag as an int)."""
        return self._align[column]

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(self.columns):
            return None
        col = self.columns[section]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.title
        if role == Qt.ItemDataRole.ToolTipRole:
            return col.header_tip or None
        if role == Qt.ItemDataRole.TextAlignmentRole:
            # Headers line up with their numbers: right-aligned columns get right titles.
            horizontal = col.align & Qt.AlignmentFlag.AlignHorizontal_Mask
            return int((horizontal | Qt.AlignmentFlag.AlignVCenter).value)
        return None

    def row_foreground(self, row: dict) -> QColor | None:
        """A text colour for a whole row (None: the palette's); columns' own colours win."""
        return None

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort on the column's raw values (column -1: arrival order); selections survive."""
        if column >= len(self.columns):
            return
        order = Qt.SortOrder(order)
        if self._busy is not None:
            self._queue.append(("sort", column, order))
            return
        same_keys = column == self._sort_column
        if not same_keys and len(self._rows) >= self.async_threshold:
            value = self.columns[column].value if column >= 0 else None
            rows, arrival = self._rows, self._arrival
            spec = (column, order)
            self._start(ordering.sort_steps(rows, value, arrival, spec, self._key_of))
            return
        self.layoutAboutToBeChanged.emit()
        old, ids = self._persistent()
        self._sort_column, self._sort_order = column, order
        if not same_keys:        # only the direction changed: the lists read backwards
            self._rows, self._keys = ordering.sorted_pairs(self._rows, self._key())
            self._key_of = {r["id"]: k for r, k in zip(self._rows, self._keys)}
        self._restore(old, ids)
        self.layoutChanged.emit()

    # -- reading ------------------------------------------------------------------------------

    def row(self, position: int) -> dict:
        """The row dict shown at `position`."""
        return self._rows[self._internal(position)]

    def rows(self) -> list[dict]:
        """The visible rows in display order (a copy of the list, not of the dicts)."""
        return self._rows[::-1] if self._descending else list(self._rows)

    def all_rows(self) -> Iterable[dict]:
        """Every row, shown or filtered out, in no particular order."""
        return self._all.values()

    def get(self, row_id: Any) -> dict | None:
        """A row by id, whether the filter shows it or not."""
        return self._all.get(row_id)

    def ids(self) -> list[Any]:
        return [r["id"] for r in self.rows()]

    def position(self, row_id: Any) -> int | None:
        """The display position of a row, or None when it is absent or filtered out."""
        key = self._key_of.get(row_id)
        if key is None:
            return None
        return self._view(bisect.bisect_left(self._keys, key))

    def column_index(self, key: str) -> int:
        for i, col in enumerate(self.columns):
            if col.key == key:
                return i
        raise KeyError(key)

    @property
    def total(self) -> int:
        """How many rows the model holds, including those the filter hides."""
        return len(self._all)

    @property
    def loading(self) -> bool:
        """True while a large load is prepared off the UI thread."""
        return self._busy is not None

    @property
    def sort_column(self) -> int:
        return self._sort_column

    @property
    def sort_order(self) -> Qt.SortOrder:
        return self._sort_order

    # -- positions ----------------------------------------------------------------------------

    @property
    def _descending(self) -> bool:
        return self._sort_column >= 0 and self._sort_order == Qt.SortOrder.DescendingOrder

    def _internal(self, view_row: int) -> int:
        return len(self._rows) - 1 - view_row if self._descending else view_row

    def _view(self, internal: int, n: int | None = None) -> int:
        n = len(self._rows) if n is None else n
        return n - 1 - internal if self._descending else internal

    def _sort_value(self) -> Callable[[dict], Any] | None:
        """The raw value of the sort column (None: arrival order)."""
        return self.columns[self._sort_column].value if self._sort_column >= 0 else None

    def _key(self, arrival: dict | None = None) -> Callable[[dict], tuple]:
        value = self._sort_value()
        return ordering.key_function(value, self._arrival if arrival is None else arrival)

    def _matches(self, row: dict) -> bool:
        if self._predicate is not None and not self._predicate(row):
            return False
        if not self._filter:
            return True
        return self._filter in "\0".join(c.display(row) for c in self._filter_columns).casefold()

    def _persistent(self) -> tuple[list, list]:
        old = self.persistentIndexList()
        n = len(self._rows)
        return old, [self._rows[self._internal(i.row())]["id"] if 0 <= i.row() < n else None
                     for i in old]

    def _restore(self, old: list, ids: list) -> None:
        if old:
            new = []
            for rid, idx in zip(ids, old):
                pos = self.position(rid) if rid is not None else None
                new.append(QModelIndex() if pos is None else self.index(pos, idx.column()))
            self.changePersistentIndexList(old, new)

    # -- changing -----------------------------------------------------------------------------

    def apply(self, rows: Iterable[dict], deleted: Iterable[Any] = ()) -> None:
        """Upsert `rows` (full or partial dicts with an `id`) and drop the `deleted` ids, in place.

        A batch is applied a few milliseconds at a time: what does not fit in the first
        slice goes on from the event loop, and later operations wait for it (see Structure)."""
        rows = rows if isinstance(rows, list) else list(rows)
        deleted = deleted if isinstance(deleted, list) else list(deleted)
        if self._busy is not None:
            self._queue.append(("apply", rows, deleted))
            return
        if rows or deleted:
            self._run_batch(self._batch_steps(rows, deleted), len(rows) + len(deleted))

    def replace_all(self, rows: Iterable[dict]) -> None:
        """Make the model hold exactly `rows` (a resync), still updating in place."""
        rows = list(rows)
        if self._busy is not None:
            self._queue.append(("replace", rows))
            return
        if not self._all:
            self.reset(rows)          # nothing to keep in place: a first load
            return
        self._run_batch(self._batch_steps(rows, None), len(rows))

    def reset(self, rows: Iterable[dict] = ()) -> None:
        """Replace everything with a model reset: only for showing a different set of rows."""
        rows = list(rows)
        if self._busy is not None:
            self._queue.append(("reset", rows))
            return
        value = self._sort_value()
        first, spec = self._next_arrival, self._spec()
        steps = ordering.reset_steps(rows, value, self._matches, first, spec)
        if len(rows) >= self.async_threshold:
            self._start(steps)
        else:
            self._swap(ordering.run(steps))

    def set_filter(self, text: str) -> None:
        """Show only rows whose filterable columns contain `text` (case-insensitive)."""
        text = text.strip().casefold()
        if text == self._filter:
            return
        self._filter = text
        self._refilter()

    def set_predicate(self, predicate: Callable[[dict], bool] | None) -> None:
        """Show only rows for which `predicate(row)` is true (None: all), with the text filter."""
        self._predicate = predicate
        self._refilter()

    @property
    def filter_text(self) -> str:
        return self._filter

    def _refilter(self) -> None:
        if self._busy is not None:
            self._queue.append(("refilter",))
            return
        key = self._key()
        if len(self._all) >= self.async_threshold:
            self._start(self._as_plan(ordering.filter_steps(
                self._all, self._rows, self._keys, self._key_of, self._matches, key,
                self._descending)))
            return
        leaving = [k for r, k in zip(self._rows, self._keys) if not self._matches(r)]
        entering = [(key(r), r) for rid, r in self._all.items()
                    if rid not in self._key_of and self._matches(r)]
        self._restructure(leaving, [], entering)
