"""How a RowTableModel changes shape: row-by-row signals for a few rows, one layout change for
many, and large work run in steps on the UI thread (see ordering)."""

from __future__ import annotations

import bisect
import gc
import itertools
import logging
import time
from typing import Any

from qtpy.QtCore import QModelIndex

from cuegui.models import ordering

log = logging.getLogger(__name__)

# Work over a large model runs this long per turn of the event loop (with the step under way
# when it is up, and the paint that follows, about one frame of animation).
STEP_SECONDS = 0.008

# Above this many rows coming, going or moving, one layout change replaces row-by-row signals.
# A row moved by its own signals costs in proportion to the rows held (0.03 ms at 10,000 rows,
# 0.2 ms at 100,000), a layout change about 0.5 and 2.5 ms whatever it moves: at 64, one
# batch of a 100,000-frame job held the UI thread 13 ms.
BULK_THRESHOLD = 16

# A batch of fewer rows on a model of fewer than `async_threshold` rows is applied at once.
INLINE_ROWS = 1000

_gc_holds = 0


def _hold_gc() -> None:
    """No cyclic garbage collection while large work is under way: every collection of the
    young generation would walk the hundred-thousand-entry lists being built (20 ms each
    time, 100 ms for a full one), and the work makes no reference cycles."""
    global _gc_holds
    if _gc_holds == 0:
        gc.disable()
    _gc_holds += 1


def _release_gc() -> None:
    """The work is done: keep what it built out of the collector's sight (it holds no
    cycles; refcounting frees it) and collect as usual again."""
    global _gc_holds
    _gc_holds = max(0, _gc_holds - 1)
    if _gc_holds == 0:
        gc.freeze()
        gc.enable()



def _nothing() -> ordering.Steps:
    """Steps that are done at once: a turn of the event loop before the queue goes on."""
    return None
    yield


_slice_began = 0.0


def _slice_start() -> float:
    """When the current slice of the UI thread's time began: now, unless a slice began
    less than STEP_SECONDS ago (another model's, run just before in the same turn of the
    event loop): then that one's start, so that the models share one slice per turn instead
    of taking one each."""
    global _slice_began
    now = time.perf_counter()
    if now - _slice_began >= STEP_SECONDS:
        _slice_began = now
    return _slice_began


def _slice(steps: ordering.Steps, start: float) -> None:
    """Run `steps` for one slice of time from `start`: at least one step, however busy the
    machine; a step announced HEAVY (taking a result over, with its signals and the repaint
    they cause) waits for the next slice unless this one is still mostly unused.  Raises
    StopIteration when the steps are done."""
    deadline = start + STEP_SECONDS
    half = start + STEP_SECONDS / 2
    mark = next(steps)
    while True:
        now = time.perf_counter()
        if now >= deadline or (mark is ordering.HEAVY and now > half):
            return
        mark = next(steps)


def _first(pair: tuple) -> Any:
    return pair[0]


def _ready(result: ordering.Prepared) -> ordering.Steps:
    """Steps done already, returning `result`."""
    return result
    yield


class Structure:
    """Mixed into RowTableModel: its structural steps and its work in steps."""

    _changed_positions: list[int] | None = None

    # -- structural steps ---------------------------------------------------------------------

    def _restructure(self, leaving: list[tuple], moves: list[tuple[tuple, tuple, dict]],
                     entering: list[tuple[tuple, dict]]) -> None:
        if len(leaving) + len(moves) + len(entering) > BULK_THRESHOLD:
            self._bulk(leaving, moves, entering)
            return
        self._few(leaving, moves, entering)

    def _few(self, leaving: list[tuple], moves: list[tuple[tuple, tuple, dict]],
             entering: list[tuple[tuple, dict]]) -> None:
        """Row-by-row signals: no layout change for a few rows."""
        self._remove(leaving)
        for was, now, row in moves:
            self._move(was, now, row)
        for k, row in entering:
            self._insert(k, row)

    # -- batches ----------------------------------------------------------------------------

    def _batch_steps(self, rows: list[dict], deleted: list | None) -> ordering.Steps:
        """Apply a batch (`deleted` None: `rows` are everything, a resync): sort it out
        against the model in steps, store it, show the rows changed in place, then move,
        add and drop rows: one by one for a few, in one layout change planned in steps for
        many.  The model is whole between any two steps."""
        if deleted is None:
            everything = rows        # the model's own copy (replace_all)
            rows, deleted = yield from ordering.diff_steps(self._all, everything)
            self._dispose(everything)
            del everything
        batch = yield from ordering.batch_steps(self, rows, deleted, self._sort_value(),
                                                self._matches, self._next_arrival)
        del rows
        yield from self._store(batch)
        if batch.structural > BULK_THRESHOLD:
            yield
            plan = yield from ordering.plan_steps(self._rows, self._keys, batch.leaving,
                                                  batch.moves, batch.entering,
                                                  self._descending, self._key_of)
            yield ordering.HEAVY
            self._commit(plan)
            self._dispose(plan.placed, plan.entering, plan.departing, plan.departing_keys,
                          plan.gone)
        elif batch.structural:
            yield ordering.HEAVY
            self._few(batch.leaving, batch.moves, batch.entering)
        # What the batch was made of goes in slices too.
        self._dispose(batch.moves, batch.in_place, batch.entering, batch.leaving,
                      batch.stored, batch.arrival)
        return None

    def _store(self, batch: ordering.Batch) -> ordering.Steps:
        """Keep a batch's rows, in steps; rows changed without moving show their new values."""
        step = ordering.STEP
        items = iter(batch.stored.items())
        for _ in range(0, len(batch.stored), step):
            self._all.update(itertools.islice(items, step))
            yield
        for rid in batch.gone:
            del self._all[rid]
            del self._arrival[rid]
        self._arrival.update(batch.arrival)
        self._next_arrival = batch.next_arrival
        if batch.in_place:
            keys, rows = self._keys, self._rows
            batch.in_place.sort(key=_first)      # searched in ascending order: faster
            positions = yield from ordering.searched(keys, [k for k, _ in batch.in_place])
            replaced = []
            for start in range(0, len(positions), step):
                for pos, (_, row) in zip(positions[start:start + step],
                                         batch.in_place[start:start + step]):
                    replaced.append(rows[pos])
                    rows[pos] = row
                yield
            self._dispose(replaced)
            if self._descending:
                n = len(rows) - 1
                positions = [n - p for p in reversed(positions)]
            self._emit_changed(positions)
        values = iter(batch.stored.values())
        for _ in range(0, len(batch.stored), step):
            self._stored(list(itertools.islice(values, step)), ())
            yield
        if batch.gone:
            self._stored((), batch.gone)

    def _emit_changed(self, positions: list[int]) -> None:
        """One dataChanged over the rows at these view positions (ascending), for every
        listener; views read the positions themselves (`changed_positions`) and repaint
        just the changed rows they show instead of everything between the first and the
        last."""
        self._changed_positions = positions
        try:
            self.dataChanged.emit(self.index(positions[0], 0),
                                  self.index(positions[-1], len(self.columns) - 1))
        finally:
            self._changed_positions = None

    def changed_positions(self) -> list[int] | None:
        """While a dataChanged over several rows is emitted: the view positions
        (ascending) of the rows that did change between its first and last; else None
        (every row in the range may have changed)."""
        return self._changed_positions

    def _stored(self, rows, gone: list) -> None:
        """Rows were stored (new or changed) and ids deleted: for models keeping figures
        over their rows."""

    def _replaced(self) -> None:
        """Every row was replaced (a reset): for models keeping figures over their rows."""

    def _run_batch(self, steps: ordering.Steps, size: int) -> None:
        """Run a batch's steps: at once for a small batch on a small model, else its first
        slice now and the rest from the event loop."""
        if size >= self.async_threshold:
            self._start(steps)
        elif size < INLINE_ROWS and len(self._all) < self.async_threshold:
            ordering.run(steps)
        else:
            try:
                _slice(steps, _slice_start())
            except StopIteration:
                return
            self._start(steps)

    def _remove(self, keys: list[tuple]) -> None:
        positions = [self._view(bisect.bisect_left(self._keys, k)) for k in keys]
        for first, last in ordering.runs(positions):
            self.beginRemoveRows(QModelIndex(), first, last)
            a, b = sorted((self._internal(first), self._internal(last)))
            for r in self._rows[a:b + 1]:
                del self._key_of[r["id"]]
            del self._rows[a:b + 1]
            del self._keys[a:b + 1]
            self.endRemoveRows()

    def _insert(self, key: tuple, row: dict) -> None:
        pos = bisect.bisect_left(self._keys, key)
        view = self._view(pos, len(self._rows) + 1)
        self.beginInsertRows(QModelIndex(), view, view)
        self._rows.insert(pos, row)
        self._keys.insert(pos, key)
        self._key_of[row["id"]] = key
        self.endInsertRows()

    def _move(self, was: tuple, now: tuple, row: dict) -> None:
        src = bisect.bisect_left(self._keys, was)
        old_row = self._rows.pop(src)
        del self._keys[src]
        dst = bisect.bisect_left(self._keys, now)
        vs, vd = self._view(src, len(self._rows) + 1), self._view(dst, len(self._rows) + 1)
        self._rows.insert(src, old_row)        # as it was, for beginMoveRows
        self._keys.insert(src, was)
        if vs == vd:
            self._rows[src], self._keys[src] = row, now
            self._key_of[row["id"]] = now
            self.dataChanged.emit(self.index(vs, 0), self.index(vs, len(self.columns) - 1))
            return
        self.beginMoveRows(QModelIndex(), vs, vs, QModelIndex(), vd + 1 if vd > vs else vd)
        del self._rows[src]
        del self._keys[src]
        self._rows.insert(dst, row)
        self._keys.insert(dst, now)
        self._key_of[row["id"]] = now
        self.endMoveRows()
        self.dataChanged.emit(self.index(vd, 0), self.index(vd, len(self.columns) - 1))

    def _bulk(self, leaving: list[tuple], moves: list[tuple[tuple, tuple, dict]],
              entering: list[tuple[tuple, dict]]) -> None:
        self._commit(ordering.plan_changes(self._rows, self._keys, leaving, moves, entering,
                                           self._descending))

    def _commit(self, plan: ordering.Plan) -> None:
        """Carry out a plan: append newcomers, reorder once, drop leavers as one block."""
        desc = self._descending
        if plan.entering:
            n = len(self._rows)
            self.beginInsertRows(QModelIndex(), n, n + len(plan.entering) - 1)
            if desc:      # the view's end is the front of the lists
                self._rows[0:0] = plan.entering[::-1]
                self._keys[0:0] = [None] * len(plan.entering)
            else:
                self._rows.extend(plan.entering)
                self._keys.extend([None] * len(plan.entering))
            self.endInsertRows()
        self.layoutAboutToBeChanged.emit()
        old, ids = self._persistent()
        key_of = self._key_of
        kept, total = plan.kept, len(plan.rows)
        slot = {}       # where persistent rows that leave sit meanwhile: after the kept rows
        if old:
            departing = plan.departing_keys
            for rid in ids:
                k = key_of.get(rid)
                if k is not None:
                    j = bisect.bisect_left(departing, k)
                    if j < len(departing) and departing[j] == k:
                        slot[rid] = kept + j
        if plan.key_of is not None:
            self._dispose(key_of)
            key_of = self._key_of = plan.key_of
        else:
            for rid in plan.gone:
                del key_of[rid]
            for k, row in plan.placed:
                key_of[row["id"]] = k
        self._dispose(self._rows, self._keys)
        self._rows, self._keys = plan.rows, plan.keys
        if old:
            lo, hi = (total - kept, total) if desc else (0, kept)
            new = []
            for rid, idx in zip(ids, old):
                if rid in slot:
                    view = slot[rid]
                else:
                    k = key_of.get(rid)
                    if k is None:
                        new.append(QModelIndex())
                        continue
                    internal = bisect.bisect_left(self._keys, k, lo, hi)
                    view = total - 1 - internal if desc else internal
                new.append(self.index(view, idx.column()))
            self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()
        departing = total - kept
        if departing:
            self.beginRemoveRows(QModelIndex(), kept, total - 1)
            if desc:
                del self._rows[:departing]
                del self._keys[:departing]
            else:
                del self._rows[kept:]
                del self._keys[kept:]
            self.endRemoveRows()

    # -- letting go ------------------------------------------------------------------------

    def _dispose(self, *things) -> None:
        """Let go of lists and dicts the model no longer uses a slice at a time: dropping a
        list of 50,000 replaced row dicts at once frees them all there and then, tens of
        milliseconds of the UI thread.  The model must hold no other reference to them."""
        self._litter.extend(t for t in things if t)
        if self._litter and not self._sweeper.isActive():
            self._sweeper.start()

    def _sweep(self) -> None:
        deadline = _slice_start() + STEP_SECONDS
        litter = self._litter
        first = True
        while litter and (first or time.perf_counter() < deadline):
            first = False
            thing = litter[-1]
            if isinstance(thing, dict):
                for _ in range(min(len(thing), ordering.STEP)):
                    thing.popitem()
            else:
                del thing[-ordering.STEP:]
            if not thing:
                litter.pop()
        if not litter:
            self._sweeper.stop()

    # -- large loads off the UI thread ----------------------------------------------------------

    def _spec(self) -> tuple:
        return (self._sort_column, self._filter, self._predicate)

    @staticmethod
    def _as_plan(steps: ordering.Steps) -> ordering.Steps:
        """Steps returning a Plan, as steps returning a Prepared carrying it."""
        out = ordering.Prepared()
        out.plan = yield from steps
        return out

    def _start(self, steps: ordering.Steps) -> None:
        """Run `steps` a few milliseconds per turn of the event loop; operations arriving
        meanwhile wait in order (the steps read the model's state, which must hold still
        between them)."""
        self._busy = steps
        _hold_gc()
        self.loading_changed.emit(True)
        self._stepper.start()

    def _step(self) -> None:
        steps = self._busy
        if steps is None:
            self._stepper.stop()
            return
        start = _slice_start()
        try:
            _slice(steps, start)
        except StopIteration as done:
            if done.value is not None and time.perf_counter() > start + STEP_SECONDS / 2:
                # Taking a result over (a layout change, and what waited) is a slice of its
                # own: on the next turn, after a paint.
                self._busy = _ready(done.value)
                return
            self._stepper.stop()
            self._prepared(done.value)
        except Exception:  # noqa: BLE001 - a bug must not leave the model stuck
            log.exception("preparing rows failed")
            self._stepper.stop()
            self._prepared(None)

    def finish_loading(self) -> None:
        """Run the work under way to the end now (tests and scripts that cannot wait)."""
        while self._busy is not None:
            self._step()

    def _prepared(self, result: ordering.Prepared | None) -> None:
        """Stepped work is done: take its result over, then run what waited for it, in
        order, for a slice of time (the rest goes on from the event loop)."""
        self._busy = None
        deadline = _slice_start() + STEP_SECONDS
        if result is not None:
            self._take(result)
        while self._queue and self._busy is None:
            if time.perf_counter() > deadline:
                self._busy = _nothing()
                self._stepper.start()
                return      # still loading: the gc hold and the signal carry over
            op = self._queue.pop(0)
            if op[0] == "apply":
                self.apply(op[1], op[2])
            elif op[0] == "replace":
                self.replace_all(op[1])
            elif op[0] == "reset":
                self.reset(op[1])
            elif op[0] == "sort":
                self.sort(op[1], op[2])
            else:
                self._refilter()
        _release_gc()       # after the lists built by the commit above, too
        if self._busy is None:
            self.loading_changed.emit(False)

    def _take(self, result: ordering.Prepared) -> None:
        if result.plan is not None:
            self._commit(result.plan)
        elif result.sorted:
            self.layoutAboutToBeChanged.emit()
            old, ids = self._persistent()
            self._sort_column, self._sort_order = result.spec
            self._dispose(self._rows, self._keys, self._key_of)
            self._rows, self._keys, self._key_of = result.rows, result.keys, result.key_of
            self._restore(old, ids)
            self.layoutChanged.emit()
        else:
            self._swap(result)

    def _swap(self, p: ordering.Prepared) -> None:
        self.beginResetModel()
        self._dispose(self._all, self._arrival, self._rows, self._keys, self._key_of)
        self._all, self._arrival, self._next_arrival = p.all, p.arrival, p.next_arrival
        self._rows, self._keys, self._key_of = p.rows, p.keys, p.key_of
        self.endResetModel()
        self._replaced()
        if p.spec != self._spec():
            # The user sorted or filtered while the rows were prepared: catch up.
            self._refilter()
            self.sort(self._sort_column, self._sort_order)
