"""How a table keeps the UI thread free on big changes: only the changed rows in sight are
repainted, taking a result over waits for a slice of its own, the id index a big plan
brings matches the rows, and what the model lets go of in slices is its own."""

from __future__ import annotations

import random

import pytest
from qtpy.QtCore import QEvent, QObject, QRect
from qtpy.QtGui import QRegion

from cuegui.models import FramesModel, ordering, structure
from cuegui.views.table import TableView
from cuegui import format as fmt
from tests import rows
from tests.cuegui.test_slices import ASC, DESC, WAIT, changes, frames, in_order, loaded

pytestmark = pytest.mark.qt_log_level_fail("WARNING")


@pytest.fixture
def still_clock(monkeypatch):
    """A running frame's run time grows with the clock; hold it so the orders can be read."""
    monkeypatch.setattr(fmt, "now", lambda: rows.NOW)


class PaintedRegion(QObject):
    """Gathers what a widget is asked to repaint (a Qt event filter)."""

    def __init__(self):
        super().__init__()
        self.region = QRegion()
        self.paints = 0

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.region = self.region.united(event.region())
            self.paints += 1
        return False


def _row_rect(view: TableView, position: int) -> QRect:
    """The row's rectangle less a pixel or two at its edges (Qt repaints a row with a pixel
    to spare)."""
    return QRect(0, view.rowViewportPosition(position) + 2, view.viewport().width(),
                 view.rowHeight(position) - 4)


def shown_and_watched(qtbot, model) -> tuple[TableView, "PaintedRegion"]:
    """A view of `model` on screen, its first paints done, and what it paints from now on."""
    view = TableView(model)
    view.resize(700, 300)
    view.show()
    qtbot.waitExposed(view)
    seen = PaintedRegion()
    view.viewport().installEventFilter(seen)
    qtbot.wait(50)                       # the first paints are done
    seen.region, seen.paints = QRegion(), 0
    return view, seen


def test_a_batch_repaints_the_changed_row_in_sight_and_no_other(qtbot, still_clock):
    """Rows changed in place far apart (one in sight, one far below) repaint the one in
    sight, not every row between them."""
    model = loaded(qtbot, FramesModel(), frames(300))
    view, seen = shown_and_watched(qtbot, model)
    last = view.rowAt(view.viewport().height() - 1)
    assert last > 4
    ids = model.ids()
    model.apply([{"id": ids[2], "host": "elsewhere"}, {"id": ids[250], "host": "elsewhere"}])
    assert model.row(2)["host"] == "elsewhere" and model.position(ids[250]) == 250
    qtbot.waitUntil(lambda: seen.paints > 0, timeout=WAIT)
    qtbot.wait(20)
    assert seen.region.intersects(_row_rect(view, 2))
    for unchanged in (0, 1, 3, last):
        assert not seen.region.intersects(_row_rect(view, unchanged)), unchanged


def test_a_batch_in_a_descending_view_repaints_the_row_where_it_shows(qtbot, still_clock):
    model = loaded(qtbot, FramesModel(), frames(300))
    model.sort(model.column_index("frame"), DESC)
    view, seen = shown_and_watched(qtbot, model)
    ids = model.ids()                    # display order: highest frame first
    model.apply([{"id": ids[3], "reason": "x"}, {"id": ids[200], "reason": "y"}])
    qtbot.waitUntil(lambda: seen.paints > 0, timeout=WAIT)
    qtbot.wait(20)
    assert seen.region.intersects(_row_rect(view, 3))
    assert not seen.region.intersects(_row_rect(view, 1))


class SteppedClock:
    """A perf_counter that moves on `step` seconds each time it is read."""

    def __init__(self, step: float):
        self.now, self.step = 100.0, step

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def test_a_heavy_step_waits_for_a_slice_of_its_own(monkeypatch):
    """Steps announced HEAVY (taking work over, with its signals and repaint) run at the
    start of a slice, not after most of one is gone; light steps fill a slice."""
    clock = SteppedClock(structure.STEP_SECONDS / 6)
    monkeypatch.setattr(structure, "time", clock)
    done: list[tuple[int, str]] = []
    slice_no = 0

    def steps():
        for i in range(4):
            done.append((slice_no, f"light {i}"))
            yield
        yield ordering.HEAVY
        done.append((slice_no, "heavy"))
        for i in range(8):
            yield
            done.append((slice_no, f"after {i}"))

    g = steps()
    with pytest.raises(StopIteration):
        while True:
            slice_no += 1
            structure._slice(g, clock.perf_counter())
    assert [s for s, what in done if what.startswith("light")] == [1, 1, 1, 1]
    assert (2, "heavy") in done                       # the first thing of the next slice
    assert max(s for s, _ in done) > 2                # and light steps fill slices again


def test_a_slice_runs_at_least_one_step_however_late(monkeypatch):
    clock = SteppedClock(1.0)           # every read of the clock is a second later
    monkeypatch.setattr(structure, "time", clock)
    done = []

    def steps():
        yield ordering.HEAVY
        done.append("heavy")
        yield
        done.append("next")
        yield

    g = steps()
    structure._slice(g, clock.perf_counter())
    structure._slice(g, clock.perf_counter())
    assert done == ["heavy"]


def _index_matches_rows(model: FramesModel) -> None:
    ids = model.ids()
    assert len(model._key_of) == len(ids)
    assert all(model.position(rid) == pos for pos, rid in enumerate(ids))


@pytest.mark.parametrize("order", [ASC, DESC])
def test_big_plans_bring_an_index_that_matches_the_rows(qtbot, monkeypatch, still_clock,
                                                        order):
    """A sort in steps, a batch moving most rows (the index copied and updated in steps), a
    filter hiding most rows and showing them again (the index made anew), a resync: every
    row's position is where it shows, selections stay on their rows."""
    monkeypatch.setattr(FramesModel, "async_threshold", 200)
    monkeypatch.setattr(structure, "STEP_SECONDS", 0.0005)
    every = frames(3000)
    model = loaded(qtbot, FramesModel(), every)
    state = model.column_index("state")
    model.sort(state, order)
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    _index_matches_rows(model)
    view = TableView(model)
    rng = random.Random(4)
    ids = [f["id"] for f in every]
    view.select_id(ids[100])
    model.apply([{"id": rid, "state": rng.choice(["DEAD", "RUNNING", "EATEN"])}
                 for rid in rng.sample(ids, 2000)], deleted=ids[:50])
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    assert in_order(model, state, order)
    _index_matches_rows(model)
    assert view.current_row()["id"] == ids[100]

    model.set_predicate(lambda r: r.get("state") == "EATEN")
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    assert 0 < model.rowCount() < model.total // 2
    _index_matches_rows(model)
    model.set_predicate(None)
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    assert model.rowCount() == model.total
    _index_matches_rows(model)
    assert in_order(model, state, order)

    model.show_job(1, [{**f, "state": "WAITING"} if f["id"] % 3 else f for f in every])
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    assert model.total == len(every)
    _index_matches_rows(model)
    assert in_order(model, state, order)


def test_what_the_model_lets_go_of_is_its_own(qtbot, monkeypatch, still_clock):
    """The lists a model is given (a resync's rows, a batch) are left as they were, and the
    rows it handed out stay whole, after it has let go of what it replaced."""
    monkeypatch.setattr(FramesModel, "async_threshold", 200)
    every = frames(2000)
    model = loaded(qtbot, FramesModel(), every)
    model.sort(model.column_index("host"), ASC)
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    handed_out = [model.get(f["id"]) for f in every[:100]]
    before = [dict(r) for r in handed_out]
    fresh = [{**f, "state": "DEAD"} if f["id"] % 4 == 0 else f for f in every]
    fresh_copy = list(fresh)
    model.show_job(1, fresh)
    rng = random.Random(8)
    batch = changes(rng, [f["id"] for f in every], 900, 50_000)
    batch_copy = list(batch)
    model.apply(batch)
    qtbot.waitUntil(lambda: not model.loading and not model._litter, timeout=WAIT)
    assert fresh == fresh_copy and all(a is b for a, b in zip(fresh, fresh_copy))
    assert batch == batch_copy
    assert [dict(r) for r in handed_out] == before
    assert in_order(model, model.column_index("host"), ASC)
    assert model.total == len(every) + 900 // 20
