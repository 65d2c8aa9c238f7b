"""Batches applied in slices from the event loop, sorted views kept sorted, and the run-time
figures a frames model keeps as its frames change."""

from __future__ import annotations

import random

import pytest
from qtpy.QtCore import QPersistentModelIndex, Qt, QTimer

from cuegui import format as fmt
from cuegui.models import FramesModel, IdRole, JobsModel, structure
from cuegui.models.estimate import layer_runs
from cuegui.models.table import _normal
from tests import rows

pytestmark = pytest.mark.qt_log_level_fail("WARNING")

ASC, DESC = Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder
STATES = ["WAITING", "DEPEND", "RUNNING", "SUCCEEDED", "DEAD", "EATEN"]
WAIT = 60_000       # ms before a wait gives up: a bound against hanging, not a speed goal


def frames(n: int, seed: int = 1) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(1, n + 1):
        state = rng.choice(STATES)
        ran = state not in ("WAITING", "DEPEND")
        out.append(rows.frame(
            i, layer=rng.choice(["sim", "render", "comp"]), state=state,
            host=f"render{rng.randint(1, 30):02d}" if ran else None, attempt=int(ran),
            started_at=rows.NOW - rng.randint(10, 900) if ran else None,
            runtime=float(rng.randint(10, 900)) if state in ("SUCCEEDED", "DEAD") else None,
            peak_rss=rng.randint(0, 40) * 2**26, cpu_time=float(rng.randint(0, 500)),
            exit_status=rng.choice([None, 0, 1]), retries=rng.randint(0, 2),
            reason=rng.choice(["", "exit status 1", "Killed by a wrangler"])))
    return out


def changes(rng: random.Random, ids: list[int], n: int, first_new: int) -> list[dict]:
    """`n` partial rows changing every sortable field, and a few new frames."""
    out = []
    for rid in rng.sample(ids, n):
        state = rng.choice(STATES)
        out.append({"id": rid, "state": state, "number": rng.randint(1, 10**6),
                    "layer": rng.choice(["sim", "render", "comp", "Zeta"]),
                    "host": rng.choice([None, "render01", "Render02", "render30"]),
                    "attempt": rng.randint(0, 4),
                    "started_at": rng.choice([None, rows.NOW - rng.randint(0, 900)]),
                    "runtime": rng.choice([None, float(rng.randint(0, 900))]),
                    "peak_rss": rng.randint(0, 40) * 2**26, "cpu_time": rng.random() * 100,
                    "exit_status": rng.choice([None, 0, 1, 137]),
                    "retries": rng.randint(0, 3), "reason": rng.choice(["", "b", "A", "c"])})
    out += [rows.frame(i, state=rng.choice(STATES), number=i) for i in
            range(first_new, first_new + n // 20)]
    return out


def loaded(qtbot, model: FramesModel, job_rows: list[dict]) -> FramesModel:
    model.show_job(1, job_rows)
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    return model


def in_order(model, column: int, order) -> bool:
    """The rows read in the order the column's raw values say, ties by id."""
    value = model.columns[column].value
    keys = [(*_normal(value(r)), r["id"]) for r in model.rows()]
    return keys == sorted(keys, reverse=order == DESC)


@pytest.fixture
def still_clock(monkeypatch):
    """A running frame's run time grows with the clock; hold it so the orders can be read."""
    monkeypatch.setattr(fmt, "now", lambda: rows.NOW)


def test_a_big_batch_is_applied_in_slices_and_ends_as_a_one_shot_apply(
        qtbot, monkeypatch, still_clock):
    """A batch far bigger than a slice goes on from the event loop, a slice at a time (the
    loop runs between them); a batch arriving meanwhile waits for it; the rows, their order,
    selections and indexes end exactly as when both batches are applied at once."""
    monkeypatch.setattr(structure, "STEP_SECONDS", 0.001)
    every = frames(6000)
    sliced = loaded(qtbot, FramesModel(), every)
    one_shot = loaded(qtbot, FramesModel(), every)
    state = sliced.column_index("state")
    for model in (sliced, one_shot):
        model.sort(state, DESC)
        qtbot.waitUntil(lambda m=model: not m.loading, timeout=WAIT)
    rng = random.Random(5)
    ids = [f["id"] for f in every]
    first = changes(rng, ids, 3000, 10_001)
    gone = rng.sample(ids, 200)
    second = changes(rng, ids, 40, 20_001)
    watched = [QPersistentModelIndex(sliced.index(sliced.position(rid), 0))
               for rid in (ids[7], gone[0], ids[4000])]

    turns = []
    ticker = QTimer(interval=0)
    ticker.timeout.connect(lambda: turns.append(sliced.loading))
    ticker.start()
    sliced.apply(first, deleted=gone)
    assert sliced.loading                     # not done in one go: the rest follows
    sliced.apply(second)                      # waits for the first batch
    assert sliced.get(20_001) is None and sliced.get(10_001) is None
    qtbot.waitUntil(lambda: not sliced.loading, timeout=WAIT)
    ticker.stop()
    assert turns.count(True) >= 3             # the event loop ran between the slices

    one_shot.apply(first, deleted=gone)
    one_shot.finish_loading()
    one_shot.apply(second)
    one_shot.finish_loading()
    assert sliced.rows() == one_shot.rows()
    assert {r["id"]: r for r in sliced.all_rows()} == {r["id"]: r for r in one_shot.all_rows()}
    assert in_order(sliced, state, DESC)
    kept, deleted, other = watched
    assert kept.isValid() and kept.data(IdRole) == ids[7] and kept.row() == sliced.position(ids[7])
    assert not deleted.isValid()
    assert other.data(IdRole) == ids[4000]


@pytest.mark.parametrize("path", ["at once", "in slices"])
def test_sorted_views_stay_sorted_on_every_column(qtbot, qtmodeltester, monkeypatch, path,
                                                  still_clock):
    """Changes to the sort column itself (and rows coming and going) leave every column's
    view sorted, both ways, whether a batch is applied at once or in slices."""
    if path == "in slices":
        monkeypatch.setattr(FramesModel, "async_threshold", 100)
        monkeypatch.setattr(structure, "STEP_SECONDS", 0.0005)
    model = loaded(qtbot, FramesModel(), frames(200))
    # The model tester re-reads the whole model on every signal: it watches the columns of
    # each kind of sort key (whole numbers; text with empty values), the rest are checked
    # for order alone.
    qtmodeltester.check(model, force_py=True)
    watched = [model.column_index(k) for k in ("frame", "host")]
    others = [c for c in range(model.columnCount()) if c not in watched]
    rng = random.Random(11)
    next_id = 1000
    for column in watched + others:
        if column == others[0]:
            qtmodeltester._cleanup()      # stop watching (pytest-qt's own teardown step)
        for order in (ASC, DESC):
            model.sort(column, order)
            qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
            assert in_order(model, column, order)
            ids = [r["id"] for r in model.all_rows()]
            for size in (3, 150):           # row by row, then one layout change
                # as many rows go as come (size // 20): the model keeps its size
                model.apply(changes(rng, ids, size, next_id),
                            deleted=rng.sample(ids, size // 20))
                next_id += 100
                ids = [r["id"] for r in model.all_rows()]
                qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
                assert in_order(model, column, order), model.columns[column].key
    assert model.rowCount() == model.total


def test_jobs_sorted_by_progress_stay_sorted_as_frames_finish(qtbot):
    model = JobsModel()
    model.apply([rows.job(i, frames_total=100, succeeded=i % 50, waiting=100 - i % 50)
                 for i in range(1, 300)])
    progress = model.column_index("progress")
    model.sort(progress, DESC)
    rng = random.Random(3)
    for size in (5, 120):
        done = {i: rng.randint(0, 100) for i in rng.sample(range(1, 300), size)}
        model.apply([{"id": i, "succeeded": d, "waiting": 100 - d} for i, d in done.items()])
        assert in_order(model, progress, DESC)


def _same_runs(model: FramesModel) -> None:
    kept, fresh = model.layer_runs(), layer_runs(model.all_rows())
    assert {k for k, r in kept.items() if r.count or r.started} == set(fresh)
    for name, runs in fresh.items():
        assert kept[name].count == runs.count
        assert kept[name].total == pytest.approx(runs.total)
        assert kept[name].started == runs.started


def test_the_run_time_figures_follow_the_frames(qtbot, monkeypatch):
    """What a frames model keeps per layer for the time left equals a count from scratch
    after changes, deletions, a resync and a large load counted in steps."""
    monkeypatch.setattr(FramesModel, "async_threshold", 500)
    model = FramesModel()
    model.show_job(1, frames(300))
    _same_runs(model)
    rng = random.Random(2)
    ids = [f["id"] for f in frames(300)]
    model.apply(changes(rng, ids, 120, 5000), deleted=ids[:10])
    _same_runs(model)
    model.show_job(1, frames(280, seed=9))             # a resync in place
    _same_runs(model)
    model.show_job(2, [{**f, "job_id": 2} for f in frames(2000, seed=4)])   # in steps
    model.apply_job(2, [{"id": 5, "state": "SUCCEEDED", "runtime": 12.0}])
    qtbot.waitUntil(lambda: not model.loading, timeout=WAIT)
    qtbot.waitUntil(lambda: not model._recount.busy, timeout=WAIT)
    _same_runs(model)
    # Another job while the count of a large one is under way: only its frames count.
    model.show_job(3, [{**f, "job_id": 3, "id": f["id"] + 100_000}
                       for f in frames(60_000, seed=5)])
    qtbot.waitUntil(lambda: not model.loading and len(model._runs._of) > 0, timeout=WAIT)
    assert model._recount.busy                 # counted in part
    model.show_job(4, [{**f, "job_id": 4} for f in frames(50, seed=6)])
    qtbot.wait(300)
    _same_runs(model)
