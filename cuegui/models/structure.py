"""How a RowTableModel changes shape: row-by-row signals for a few rows, one layout change for
many, and large work run in steps on the UI thread (see ordering)."""

from __future__ import annotations

import bisect
import gc
import logging
import time

from qtpy.QtCore import QModelIndex

from cuegui.models import ordering

log = logging.getLogger(__name__)

# Work over a large model runs this long per turn of the event loop.
STEP_SECONDS = 0.010

# Above this many rows coming, going or moving, one layout change replaces row-by-row signals.
BULK_THRESHOLD = 64

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



class Structure:
    """Mixed into RowTableModel: its structural steps and its work in steps."""

    # -- structural steps ---------------------------------------------------------------------

    def _restructure(self, leaving: list[tuple], moves: list[tuple[tuple, tuple, dict]],
                     entering: list[tuple[tuple, dict]]) -> None:
        if len(leaving) + len(moves) + len(entering) > BULK_THRESHOLD:
            if len(self._rows) >= 4 * self.async_threshold:
                # Planning over this many rows takes tens of milliseconds: do it off the UI
                # thread (the rows changed in place are already showing their new values).
                self._start(self._as_plan(ordering.plan_steps(
                    self._rows, self._keys, self._key_of, leaving, moves, entering,
                    copy=True)))
                return
            self._bulk(leaving, moves, entering)
            return
        self._remove(leaving)
        for was, now, row in moves:
            self._move(was, now, row)
        for k, row in entering:
            self._insert(k, row)

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
        self._commit(ordering.plan_changes(self._rows, self._keys, self._key_of, leaving,
                                           moves, entering))

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
        rows, keys, departing = plan.rows, plan.keys, plan.departing
        kept = len(rows)
        # Leavers sit at the view's end until the block removal below.
        if desc:
            self._rows = departing[::-1] + rows
            self._keys = plan.departing_keys[::-1] + keys
        else:
            self._rows = rows + departing
            self._keys = keys + plan.departing_keys
        old_key_of, self._key_of = self._key_of, plan.key_of
        if old:
            # Where the persistent rows that leave sit meanwhile.  Few rows are persistent:
            # find those by their old key (the leavers are in key order), or, when the plan
            # updated the keys in place (small models), by a scan.
            wanted = {rid for rid in ids if rid is not None and rid not in self._key_of}
            slot = {}
            if wanted and old_key_of is not plan.key_of:
                for rid in wanted:
                    j = bisect.bisect_left(plan.departing_keys, old_key_of[rid])
                    if j < len(departing) and departing[j]["id"] == rid:
                        slot[rid] = kept + j
            elif wanted:
                slot = {r["id"]: kept + j for j, r in enumerate(departing) if r["id"] in wanted}
            new = []
            for rid, idx in zip(ids, old):
                k = self._key_of.get(rid)
                if rid in slot:
                    view = slot[rid]
                elif k is None:
                    new.append(QModelIndex())
                    continue
                else:
                    internal = bisect.bisect_left(keys, k)
                    view = kept - 1 - internal if desc else internal
                new.append(self.index(view, idx.column()))
            self.changePersistentIndexList(old, new)
        self.layoutChanged.emit()
        if departing:
            self.beginRemoveRows(QModelIndex(), kept, kept + len(departing) - 1)
            if desc:
                del self._rows[:len(departing)]
                del self._keys[:len(departing)]
            else:
                del self._rows[kept:]
                del self._keys[kept:]
            self.endRemoveRows()

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
        """Run `steps` a few milliseconds per turn of the event loop; batches arriving
        meanwhile wait in order (the steps read the model's state, which must hold still)."""
        self._busy = steps
        _hold_gc()
        self.loading_changed.emit(True)
        self._stepper.start()

    def _step(self) -> None:
        steps = self._busy
        if steps is None:
            self._stepper.stop()
            return
        deadline = time.perf_counter() + STEP_SECONDS
        try:
            while time.perf_counter() < deadline:
                next(steps)
        except StopIteration as done:
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
        self._busy = None
        if result is None:
            pass
        elif result.batch is not None:
            merged, gone, arrival, first = result.batch
            self._all.update(merged)
            for rid in gone:
                del self._all[rid]
                del self._arrival[rid]
            self._arrival.update(arrival)
            self._next_arrival = first
            if result.plan is not None:
                self._commit(result.plan)
        elif result.plan is not None:
            self._commit(result.plan)
        elif result.sorted:
            self.layoutAboutToBeChanged.emit()
            old, ids = self._persistent()
            self._sort_column, self._sort_order = result.spec
            self._rows, self._keys, self._key_of = result.rows, result.keys, result.key_of
            self._restore(old, ids)
            self.layoutChanged.emit()
        else:
            self._swap(result)
        queue, self._queue = self._queue, []
        for op in queue:
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

    def _swap(self, p: ordering.Prepared) -> None:
        self.beginResetModel()
        self._all, self._arrival, self._next_arrival = p.all, p.arrival, p.next_arrival
        self._rows, self._keys, self._key_of = p.rows, p.keys, p.key_of
        self.endResetModel()
        if p.spec != self._spec():
            # The user sorted or filtered while the rows were prepared: catch up.
            self._refilter()
            self.sort(self._sort_column, self._sort_order)
