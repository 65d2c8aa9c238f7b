"""Table models: Qt's model tester, in-place updates, sorting on raw values, persistent indexes."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qtpy.QtCore import QPersistentModelIndex, Qt

from cuegui.models import FramesModel, HostsModel, IdRole, JobsModel, LayersModel, SortRole
from cuegui.models import structure
from cuegui.models import table as table_mod
from cuegui.models.frames import HostFramesModel
from cuegui.models.hosts import lock_text
from cuegui import theme
from cuegui.models.jobs import time_left
from cuegui.views.depgraph import layer_colour
from cuegui.models.layers import dependency_text
from tests import rows

# Qt's QAbstractItemModelTester reports problems as warnings: make them fail the test.
pytestmark = pytest.mark.qt_log_level_fail("WARNING")

ASC, DESC = Qt.SortOrder.AscendingOrder, Qt.SortOrder.DescendingOrder


class SignalLog:
    """Records the structural and data signals a model emits."""

    def __init__(self, model):
        self.changed: list[tuple[int, int]] = []
        self.inserted: list[tuple[int, int]] = []
        self.removed: list[tuple[int, int]] = []
        self.moved: list[tuple[int, int, int]] = []
        self.layouts = 0
        self.resets = 0
        model.dataChanged.connect(lambda a, b, *_: self.changed.append((a.row(), b.row())))
        model.rowsInserted.connect(lambda _p, a, b: self.inserted.append((a, b)))
        model.rowsRemoved.connect(lambda _p, a, b: self.removed.append((a, b)))
        model.rowsMoved.connect(lambda _p, a, b, _d, r: self.moved.append((a, b, r)))
        model.layoutChanged.connect(lambda *_: setattr(self, "layouts", self.layouts + 1))
        model.modelReset.connect(lambda: setattr(self, "resets", self.resets + 1))


def filled(model_cls, n=20):
    model = model_cls()
    make = {JobsModel: rows.job, FramesModel: rows.frame, HostsModel: rows.host,
            LayersModel: rows.layer,
            HostFramesModel: lambda i, **kw: rows.frame(i, host="render01", state="RUNNING",
                                                          **kw)}[model_cls]
    if model_cls in (FramesModel, LayersModel):
        model.show_job(1, [make(i) for i in range(1, n + 1)])
    elif model_cls is HostFramesModel:
        model.show_host("render01", [make(i) for i in range(1, n + 1)])
    else:
        model.apply([make(i) for i in range(1, n + 1)])
    return model, make


def churn(model, make, n=20):
    """Every kind of change, with a tester watching."""
    update = {"id": 3, "state": "RUNNING", "status": "running", "lock": "LOCKED",
              "running": 4, "priority": 99, "slots_used": 16, "slots_total": 0}
    model.apply([make(n + 1), make(n + 2), update])
    for col in range(model.columnCount()):
        model.sort(col, ASC)
        model.sort(col, DESC)
    model.apply([{"id": 5, "priority": -4, "running": 9, "number": 1000, "name": "zzz"}],
                deleted=[1, 2, n + 1])
    model.apply([make(i) for i in range(100, 100 + table_mod.BULK_THRESHOLD + 5)])
    model.set_filter("1")
    model.apply([make(1001), {"id": 7, "name": "job_1x", "layer": "l1", "host": "h1"}])
    model.set_filter("")
    model.sort(-1, ASC)
    model.replace_all([make(i) for i in range(50, 60)])


@pytest.mark.parametrize("model_cls", [JobsModel, FramesModel, HostsModel, LayersModel,
                                       HostFramesModel])
@pytest.mark.parametrize("force_py", [False, True], ids=["qt_tester", "py_tester"])
def test_models_pass_the_model_tester(qtmodeltester, model_cls, force_py):
    model, make = filled(model_cls)
    qtmodeltester.check(model, force_py=force_py)
    churn(model, make)
    assert model.rowCount() == 10


def test_new_rows_are_inserted_not_reset():
    model, _ = filled(JobsModel, 5)
    model.sort(model.column_index("id"), ASC)
    log = SignalLog(model)
    model.apply([rows.job(7), rows.job(6)])
    assert log.inserted == [(5, 5), (5, 5)]     # 7 after 5, then 6 before 7
    assert model.ids() == [1, 2, 3, 4, 5, 6, 7]
    assert log.resets == 0 and log.layouts == 0


def test_changed_rows_emit_one_coalesced_data_changed():
    model, _ = filled(JobsModel, 10)
    model.sort(model.column_index("id"), ASC)
    log = SignalLog(model)
    model.apply([{"id": 3, "running": 2}, {"id": 8, "running": 5}, {"id": 5, "waiting": 1}])
    assert log.changed == [(2, 7)]
    assert model.get(3)["running"] == 2 and model.get(3)["name"] == "job_003"
    assert not (log.inserted or log.removed or log.moved or log.resets or log.layouts)


def test_unchanged_rows_emit_nothing():
    model, _ = filled(JobsModel, 5)
    log = SignalLog(model)
    model.apply([rows.job(2), rows.job(4)])
    model.replace_all([rows.job(i) for i in range(1, 6)])
    assert not (log.changed or log.inserted or log.removed or log.resets or log.layouts)


def test_deleted_rows_are_removed_in_runs():
    model, _ = filled(JobsModel, 10)
    model.sort(model.column_index("id"), ASC)
    log = SignalLog(model)
    model.apply([], deleted=[3, 4, 5, 9, 42])
    assert log.removed == [(8, 8), (2, 4)]
    assert model.ids() == [1, 2, 6, 7, 8, 10]
    assert log.resets == 0


def test_replace_all_updates_in_place():
    model, _ = filled(JobsModel, 6)
    log = SignalLog(model)
    model.replace_all([rows.job(i, running=1 if i == 2 else 0) for i in (1, 2, 3, 7)])
    assert sorted(model.ids()) == [1, 2, 3, 7]
    assert log.removed and log.inserted and log.changed
    assert log.resets == 0


def test_sorting_uses_raw_values_not_text():
    model = JobsModel()
    model.apply([rows.job(1, priority=100), rows.job(2, priority=5), rows.job(3, priority=40)])
    model.sort(model.column_index("priority"), ASC)
    assert [r["priority"] for r in model.rows()] == [5, 40, 100]     # text order: 100, 40, 5
    model.sort(model.column_index("priority"), DESC)
    assert [r["priority"] for r in model.rows()] == [100, 40, 5]


def test_frames_sort_on_bytes_and_missing_values_last():
    model = FramesModel()
    model.show_job(1, [rows.frame(1, peak_rss=900 * 2**20), rows.frame(2, peak_rss=80 * 2**20),
                       rows.frame(3, peak_rss=0), rows.frame(4, exit_status=None),
                       rows.frame(5, exit_status=1), rows.frame(6, exit_status=0)])
    model.sort(model.column_index("peak_rss"), ASC)
    assert model.ids()[-2:] == [2, 1]
    model.sort(model.column_index("exit_status"), ASC)
    assert model.ids()[:2] == [6, 5]                       # 0, 1, then the unknown ones
    assert model.index(0, model.column_index("exit_status")).data(SortRole) == 0


def test_hosts_slots_read_used_over_total_and_sort_raw():
    model = HostsModel()
    model.apply([rows.host(1, slots_used=16, slots_total=0, lock="LOCKED"),
                 rows.host(2, slots_used=0, slots_total=24), rows.host(3, slots_used=2)])
    col = model.column_index("slots")
    model.sort(col, ASC)
    assert [model.index(r, col).data() for r in range(3)] == ["0/24", "2/16", "16/0"]


def test_persistent_indexes_survive_sorts():
    model, _ = filled(JobsModel, 30)
    rng = random.Random(4)
    model.apply([{"id": i, "priority": rng.randint(0, 9), "running": rng.randint(0, 5)}
                 for i in range(1, 31)])
    watched = {rid: QPersistentModelIndex(model.index(model.position(rid), 2))
               for rid in (1, 7, 19, 30)}
    for key in ("priority", "running", "name", "id", "submitted_at"):
        for order in (ASC, DESC):
            model.sort(model.column_index(key), order)
            for rid, pidx in watched.items():
                assert pidx.isValid() and pidx.column() == 2
                assert pidx.data(IdRole) == rid
                assert pidx.row() == model.position(rid)


def test_a_changed_sort_key_moves_the_row_and_its_index():
    model, _ = filled(JobsModel, 10)
    model.sort(model.column_index("priority"), DESC)
    model.apply([{"id": i, "priority": i * 10} for i in range(1, 11)])
    assert model.ids() == list(range(10, 0, -1))
    pidx = QPersistentModelIndex(model.index(model.position(3), 0))
    log = SignalLog(model)
    model.apply([{"id": 3, "priority": 95}])
    assert model.ids() == [10, 3, 9, 8, 7, 6, 5, 4, 2, 1]
    assert log.moved == [(7, 7, 1)] and log.resets == 0 and log.layouts == 0
    assert pidx.row() == 1 and pidx.data(IdRole) == 3


def test_many_new_rows_in_a_sorted_model_keep_order_and_selection():
    model, _ = filled(JobsModel, 10)
    model.sort(model.column_index("name"), DESC)
    pidx = QPersistentModelIndex(model.index(model.position(4), 1))
    model.apply([rows.job(i, name=f"job_{i:03d}") for i in range(11, 500)])
    names = [r["name"] for r in model.rows()]
    assert names == sorted(names, reverse=True) and len(names) == 499
    assert pidx.data(IdRole) == 4


def test_filter_hides_and_reveals_rows_in_place():
    model, _ = filled(JobsModel, 12)
    model.sort(model.column_index("id"), ASC)
    log = SignalLog(model)
    model.set_filter("JOB_01")           # case-insensitive: job_010 .. job_012
    assert model.ids() == [10, 11, 12]
    model.apply([{"id": 3, "name": "job_013"}, {"id": 11, "name": "other"}])
    assert model.ids() == [3, 10, 12]
    assert model.total == 12
    model.set_filter("")
    assert model.ids() == list(range(1, 13))
    assert log.resets == 0


def test_frames_model_resets_only_when_the_job_changes():
    model = FramesModel()
    log = SignalLog(model)
    model.show_job(1, [rows.frame(i, job_id=1) for i in range(1, 6)])
    assert log.resets == 1
    model.show_job(1, [rows.frame(i, job_id=1, state="RUNNING" if i == 2 else "WAITING")
                       for i in range(1, 6)])
    assert log.resets == 1 and log.changed == [(1, 1)]
    model.apply_job(2, [rows.frame(99, job_id=2)])          # another job's frame: ignored
    model.apply_job(1, [rows.frame(98, job_id=2)])          # mislabelled: ignored too
    assert model.ids() == [1, 2, 3, 4, 5]
    model.show_job(2, [rows.frame(7, job_id=2)])
    assert log.resets == 2 and model.ids() == [7]


def test_display_text():
    jobs = JobsModel()
    jobs.apply([rows.job(1, frames_total=8, succeeded=6, eaten=1, dead=1, waiting=0)])
    assert jobs.index(0, jobs.column_index("progress")).data() == "75% · 1 eaten"
    assert jobs.index(0, jobs.column_index("progress")).data(SortRole) == 0.75
    frames = FramesModel()
    frames.show_job(1, [rows.frame(1, peak_rss=512 * 2**20, frames="1-9x2", runtime=3725.0)])
    assert frames.index(0, frames.column_index("peak_rss")).data() == "512"
    assert frames.index(0, frames.column_index("frame")).data() == "1-9x2"
    assert frames.index(0, frames.column_index("runtime")).data() == "1:02:05"


# -- a model against a plain reference, over random operations --------------------------------

KEYS = ["id", "name", "priority", "running", "status"]
ops = st.lists(st.one_of(
    st.tuples(st.just("upsert"), st.lists(st.tuples(st.integers(1, 40), st.integers(0, 5),
                                                     st.sampled_from(["a", "B", "c", None])),
                                           max_size=80)),
    st.tuples(st.just("delete"), st.lists(st.integers(1, 40), max_size=10)),
    st.tuples(st.just("sort"), st.sampled_from(KEYS + [None]), st.booleans()),
    st.tuples(st.just("filter"), st.sampled_from(["", "1", "job_02", "zz"])),
    st.tuples(st.just("replace"), st.lists(st.integers(1, 40), max_size=40, unique=True)),
), max_size=25)


def _reference(rows_by_id, arrival, sort_key, descending, text):
    def key(r):
        if sort_key is None:
            return (arrival[r["id"]],)
        return (*table_mod._normal(r.get(sort_key)), r["id"])
    shown = [r for r in rows_by_id.values()
             if not text or text in r["name"].casefold() or text in r["project"]
             or text in r["user"] or text in (r["status"] or "").casefold()]
    return [r["id"] for r in sorted(shown, key=key, reverse=descending and sort_key is not None)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_model_matches_a_reference_under_random_changes(qtmodeltester, operations):
    model = JobsModel()
    qtmodeltester.check(model, force_py=True)
    ref: dict = {}
    arrival: dict = {}         # id -> order of first arrival (unsorted display order)
    counter = iter(range(10**6))
    sort_key, descending, text = None, False, ""
    for op in operations:
        if op[0] == "upsert":
            batch = [{"id": i, "priority": p, "status": s, "running": p * 2} for i, p, s in op[1]]
            full = []
            for r in batch:
                if r["id"] not in ref:
                    arrival[r["id"]] = next(counter)
                    r = {**rows.job(r["id"]), **r}
                ref[r["id"]] = {**ref.get(r["id"], {}), **r}
                full.append(r)
            model.apply(full)
        elif op[0] == "delete":
            model.apply([], deleted=op[1])
            for i in op[1]:
                ref.pop(i, None)
                arrival.pop(i, None)
        elif op[0] == "sort":
            sort_key, descending = op[1], op[2]
            col = -1 if sort_key is None else model.column_index(sort_key)
            model.sort(col, DESC if descending else ASC)
        elif op[0] == "filter":
            text = op[1]
            model.set_filter(text)
        else:
            keep = [ref[i] if i in ref else rows.job(i) for i in op[1]]
            for r in keep:
                if r["id"] not in ref:
                    arrival[r["id"]] = next(counter)
            model.replace_all(keep)
            ref = {r["id"]: dict(r) for r in keep}
            arrival = {i: arrival[i] for i in ref}
        assert model.ids() == _reference(ref, arrival, sort_key, descending, text)
        assert {i: model.get(i) for i in ref} == ref


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops)
def test_bulk_paths_match_the_reference(qtmodeltester, monkeypatch, operations):
    """The same reference check with the bulk threshold at 2, so nearly every batch goes
    through the one-layout-change path (newcomers appended, merge, leavers dropped at the end)."""
    monkeypatch.setattr(structure, "BULK_THRESHOLD", 2)
    test_model_matches_a_reference_under_random_changes.hypothesis.inner_test(
        qtmodeltester, operations)


def test_a_predicate_filters_with_the_text_filter():
    model, _ = filled(JobsModel, 12)
    model.sort(model.column_index("id"), DESC)
    log = SignalLog(model)
    model.set_predicate(lambda r: r["id"] % 2 == 0)
    assert model.ids() == [12, 10, 8, 6, 4, 2]
    model.set_filter("job_01")
    assert model.ids() == [12, 10]
    model.apply([{"id": 11, "priority": 3}, {"id": 4, "name": "job_014"}])
    assert model.ids() == [12, 10, 4]
    model.set_predicate(None)
    assert model.ids() == [12, 11, 10, 4]
    assert model.total == 12 and log.resets == 0


def test_bulk_changes_keep_selected_rows(qtmodeltester):
    """Hundreds of rows moving, coming and going in one batch: one layout change, and
    persistent indexes (a selection) stay on their rows."""
    model, _ = filled(JobsModel, 300)
    qtmodeltester.check(model, force_py=True)
    model.sort(model.column_index("priority"), DESC)
    watched = {rid: QPersistentModelIndex(model.index(model.position(rid), 1))
               for rid in (7, 150, 299)}
    gone = QPersistentModelIndex(model.index(model.position(20), 0))
    log = SignalLog(model)
    rng = random.Random(7)
    model.apply([{"id": i, "priority": rng.randint(0, 100)} for i in range(1, 301)]
                + [rows.job(i) for i in range(400, 480)], deleted=range(10, 40))
    assert log.layouts == 1 and log.resets == 0
    assert log.inserted == [(300, 379)] and log.removed == [(350, 379)]
    prios = [r["priority"] for r in model.rows()]
    assert prios == sorted(prios, reverse=True) and model.rowCount() == 350
    for rid, pidx in watched.items():
        assert pidx.isValid() and pidx.data(IdRole) == rid and pidx.row() == model.position(rid)
    assert not gone.isValid()


# Milliseconds a load prepared on the helper thread may take before the test gives up: long
# enough for a machine busy with other tests (a bound against hanging, not a speed goal).
LOAD_WAIT = 60_000


def test_large_loads_are_prepared_off_the_ui_thread(qtbot, qtmodeltester, monkeypatch):
    """At the async threshold a reset, a resync, a sort and a filter change are prepared on a
    helper thread; batches arriving meanwhile wait and are applied after, in order."""
    monkeypatch.setattr(FramesModel, "async_threshold", 100)
    model = FramesModel()
    qtmodeltester.check(model, force_py=True)
    states = []
    model.loading_changed.connect(states.append)
    log = SignalLog(model)
    frames = [rows.frame(i) for i in range(1, 401)]
    with qtbot.waitSignal(model.loading_changed, timeout=LOAD_WAIT,
                          check_params_cb=lambda on: not on):
        model.show_job(1, frames)
        assert model.loading and model.rowCount() == 0
        model.apply_job(1, [{"id": 5, "state": "RUNNING"}])     # waits for the load
    assert model.rowCount() == 400 and model.get(5)["state"] == "RUNNING"
    assert log.resets == 1
    pidx = QPersistentModelIndex(model.index(model.position(300), 0))
    with qtbot.waitSignal(model.loading_changed, timeout=LOAD_WAIT,
                          check_params_cb=lambda on: not on):
        model.sort(model.column_index("frame"), DESC)
    assert model.ids()[:3] == [400, 399, 398] and pidx.data(IdRole) == 300
    with qtbot.waitSignal(model.loading_changed, timeout=LOAD_WAIT,
                          check_params_cb=lambda on: not on):
        model.set_predicate(lambda r: r["number"] <= 20)
    assert model.rowCount() == 20 and not pidx.isValid()
    resync = [rows.frame(i, state="SUCCEEDED" if i <= 10 else "WAITING")
              for i in range(1, 381)]
    with qtbot.waitSignal(model.loading_changed, timeout=LOAD_WAIT,
                          check_params_cb=lambda on: not on):
        model.show_job(1, resync)                 # the same job: a resync, in place
    assert model.total == 380 and model.get(5)["state"] == "SUCCEEDED"
    assert model.rowCount() == 20 and log.resets == 1
    # A large batch: changes in place, rows coming and going, planned off the UI thread.
    model.set_predicate(None)
    model.sort(model.column_index("state"), ASC)
    qtbot.waitUntil(lambda: not model.loading, timeout=LOAD_WAIT)
    batch = [{"id": i, "state": "DEAD"} for i in range(1, 141)] + \
        [rows.frame(i, state="RUNNING") for i in range(3000, 3020)]
    with qtbot.waitSignal(model.loading_changed, timeout=LOAD_WAIT,
                          check_params_cb=lambda on: not on):
        model.apply(batch, deleted=[360, 361])
        model.apply([{"id": 3000, "state": "EATEN"}])          # held back, then applied
    assert model.total == 398 and model.get(3)["state"] == "DEAD"
    assert model.get(3000)["state"] == "EATEN" and model.rowCount() == 398
    order = [table_mod._normal(r["state"]) + (r["id"],) for r in model.rows()]
    assert order == sorted(order) and log.resets == 1
    assert states[0] is True and states[-1] is False


def test_a_killed_job_shows_what_was_eaten_not_100_percent():
    killed = rows.job(1, state="FINISHED", status="killed", killed=True, frames_total=4,
                      waiting=0, eaten=4)
    jobs, layers = JobsModel(), LayersModel()
    jobs.apply([killed])
    layers.show_job(1, [rows.layer(1, frames_total=4, waiting=0, eaten=4)])
    for model in (jobs, layers):
        cell = model.index(0, model.column_index("progress"))
        assert cell.data() == "0% · 4 eaten" and cell.data(SortRole) == 0.0
    assert layer_colour(layers.rows()[0]) == theme.FRAME_COLORS["EATEN"]
    assert layer_colour(rows.layer(2, waiting=0, succeeded=10)) == theme.FRAME_COLORS["SUCCEEDED"]
    # Still running: the share alone (the bar's eaten segment and the tooltip say the rest).
    jobs.apply([{**killed, "state": "ACTIVE", "eaten": 1, "succeeded": 1, "running": 2}])
    assert jobs.index(0, jobs.column_index("progress")).data() == "25%"
    assert "1 eaten" in jobs.index(0, jobs.column_index("progress")).data(
        Qt.ItemDataRole.ToolTipRole)


def _frames_of_a_job_near_its_end(now: float) -> list[dict]:
    """100 frames of 240 s: 96 succeeded, the last 4 started 30 s ago."""
    done = [rows.frame(i, state="SUCCEEDED", runtime=240.0) for i in range(1, 97)]
    running = [rows.frame(i, state="RUNNING", started_at=now - 30) for i in range(97, 101)]
    return done + running


def test_job_time_left_counts_what_running_frames_still_need(monkeypatch):
    from cuegui import format as fmt
    monkeypatch.setattr(fmt, "now", lambda: rows.NOW)
    # 96 frames done in 8:30, 4 left: the pace so far said ~0:21; they need 3:30 more.
    job = rows.job(1, started_at=rows.NOW - 510, frames_total=100, succeeded=96, running=4,
                   waiting=0)
    layer = rows.layer(1, name="render", frames_total=100, succeeded=96, running=4, waiting=0)
    frames = _frames_of_a_job_near_its_end(rows.NOW)
    model = JobsModel()
    model.apply([job])
    left = model.index(0, model.column_index("left"))
    assert left.data() == ""            # not selected: no run times to go by, no guess
    assert "select the job" in left.data(Qt.ItemDataRole.ToolTipRole)
    model.set_detail(1, [layer], frames)
    assert time_left(job, model.detail) == pytest.approx(210)
    assert left.data() == "~3:30"
    # Four more waiting behind them: another 240 s over the four frames running.
    more = {**job, "frames_total": 104, "waiting": 4}
    model.set_detail(1, [{**layer, "waiting": 4}], frames)
    assert time_left(more, model.detail) == pytest.approx(210 + 240)
    assert time_left({**job, "state": "PAUSED"}, model.detail) is None


def test_a_job_that_cannot_run_is_blocked_not_a_growing_number(monkeypatch):
    from cuegui import format as fmt
    clock = [rows.NOW]
    monkeypatch.setattr(fmt, "now", lambda: clock[0])
    # Half done, then held back by a licence limit: nothing runs, 5 wait.
    job = rows.job(1, started_at=rows.NOW - 100, frames_total=10, succeeded=5, waiting=5)
    model = JobsModel()
    model.apply([job])
    model.set_detail(1, [rows.layer(1, succeeded=5, waiting=5)],
                     [rows.frame(i, state="SUCCEEDED", runtime=20.0) for i in range(1, 6)])
    left = model.index(0, model.column_index("left"))
    for later in (0, 3600):
        clock[0] = rows.NOW + later
        assert left.data() == "blocked"
        assert "Why" in left.data(Qt.ItemDataRole.ToolTipRole)
    assert time_left(job, model.detail) is None
    # Blocked jobs sort after every job with a figure.
    assert left.data(SortRole) == float("inf")


def test_layer_and_host_text():
    layer = rows.layer(1, depends_on=["sim", {"layer": "fx", "per_frame": True},
                                      {"job": 12, "layer": "comp"}, {"job": 13}])
    assert dependency_text(layer) == "sim, fx (per frame), job 12/comp, job 13"
    assert lock_text(rows.host(1, lock="LOCKED", lock_kind="schedule")) == "LOCKED (schedule)"
    assert lock_text(rows.host(1, lock="OPEN", drain="stay")) == "DRAINING"
    assert lock_text(rows.host(1)) == "OPEN"
    partial = rows.host(1, lock="LOCKED", lock_kind="manual", lock_slots=2)
    assert lock_text(partial) == "PARTIAL (2 open)"
    assert lock_text({**partial, "lock_slots": None}) == "LOCKED (manual)"


def test_host_frames_follow_the_host():
    model = HostFramesModel()
    model.show_host("r1", [rows.frame(1, host="r1", state="RUNNING"),
                           rows.frame(2, host="r2", state="RUNNING")])
    assert model.ids() == [1]
    model.apply_host("r1", [rows.frame(3, host="r1", state="RUNNING"),
                            rows.frame(1, host="r1", state="SUCCEEDED")])
    assert model.ids() == [3]
    model.apply_host("r2", [rows.frame(4, host="r2", state="RUNNING")])    # not shown
    assert model.ids() == [3]


def test_the_flag_tip_gives_the_fix_that_works():
    from cuefarm.states import SAME_REFUSAL
    from cuegui.models.jobs import status_tip
    own = status_tip({"state": "PAUSED", "flagged": f"{SAME_REFUSAL} (w1): refused: user x"})
    assert "fix it, then resume it" in own and "bad hosts" not in own
    hosts = status_tip({"state": "PAUSED", "flagged": "paused: every UP host that can run "
                                                      "this job failed it (bad hosts: w1)"})
    assert "Clear its bad hosts and resume it" in hosts
