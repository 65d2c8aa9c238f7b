"""Tables painted in one pass (cuegui.views.cellpaint) look exactly as QTableView paints them
cell by cell through the delegates: same pixels, with selections, alternate rows, colours,
elided text, pills and bars, hidden, moved and scrolled columns, in every kind of table."""

from __future__ import annotations

import random

import pytest
from qtpy.QtCore import QItemSelectionModel, Qt
from qtpy.QtGui import QImage

from cuegui import format as fmt
from cuegui.models import FramesModel, HostsModel, JobsModel
from cuegui.views.frames import FramesView
from cuegui.views.hosts import HostsView
from cuegui.views.jobs import JobsView
from tests import rows
from tests.cuegui.test_slices import frames

pytestmark = pytest.mark.qt_log_level_fail("WARNING")


@pytest.fixture(autouse=True)
def still_clock(monkeypatch):
    monkeypatch.setattr(fmt, "now", lambda: rows.NOW)


def _jobs() -> list[dict]:
    rng = random.Random(3)
    out = []
    for i in range(1, 60):
        total = rng.choice([4, 50, 1000])
        done = rng.randint(0, total)
        out.append(rows.job(i, name=f"shot{i:03d}_lighting_final_version_{'x' * (i % 9)}",
                            frames_total=total, succeeded=done, waiting=total - done,
                            dead=rng.choice([0, 0, 2]), comments=rng.choice([0, 0, 3]),
                            state=rng.choice(["ACTIVE", "FINISHED"]),
                            status=rng.choice(["running", "waiting", "paused"])))
    return out


def _view(qtbot, kind: str):
    if kind == "frames":
        model = FramesModel()
        model.show_job(1, [{**f, "progress": (i * 7) % 100} for i, f in enumerate(frames(80))])
        view = FramesView(model)
    elif kind == "jobs":
        model = JobsModel()
        model.apply(_jobs())
        view = JobsView(model)
    else:
        model = HostsModel()
        model.apply([rows.host(i, lock=["OPEN", "LOCKED"][i % 2],
                               state=["UP", "DOWN"][i % 3 == 0]) for i in range(1, 40)])
        view = HostsView(model)
    view.resize(640, 330)
    view.show()
    qtbot.waitExposed(view)
    return view


def _both(view) -> tuple[QImage, QImage]:
    """The viewport painted by QTableView, and in one pass."""
    images = []
    for one_pass in (False, True):
        view.paint_cells = one_pass
        images.append(view.viewport().grab().toImage())
    view.paint_cells = True
    return images[0], images[1]


def _same(view) -> None:
    by_qt, one_pass = _both(view)
    assert by_qt.size() == one_pass.size()
    assert by_qt == one_pass


@pytest.mark.parametrize("kind", ["frames", "jobs", "hosts"])
def test_one_pass_paints_what_qt_paints(qtbot, kind):
    view = _view(qtbot, kind)
    model = view.table_model()
    _same(view)
    # A selection of several rows, one of them current, the view focused.
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for r in (1, 2, 5):
        view.selectionModel().select(model.index(r, 0), flags)
    view.selectionModel().setCurrentIndex(model.index(2, 1),
                                          QItemSelectionModel.SelectionFlag.NoUpdate)
    view.setFocus()
    _same(view)
    # A single selected cell (not a whole row), sorted the other way.
    view.selectionModel().select(model.index(7, 2), QItemSelectionModel.SelectionFlag.Select)
    view.sortByColumn(1, Qt.SortOrder.DescendingOrder)
    _same(view)
    # Columns moved, hidden, narrowed (elided text) and scrolled.
    header = view.horizontalHeader()
    header.moveSection(0, 3)
    view.setColumnHidden(2, True)
    view.setColumnWidth(1, 30)
    _same(view)
    view.horizontalScrollBar().setValue(view.horizontalScrollBar().maximum() // 2)
    view.verticalScrollBar().setValue(3)
    _same(view)


def test_one_pass_gives_way_where_it_would_differ(qtbot):
    """A grid is Qt's to draw: the one-pass painting declines and the pixels stay Qt's."""
    view = _view(qtbot, "frames")
    view.setShowGrid(True)
    _same(view)
