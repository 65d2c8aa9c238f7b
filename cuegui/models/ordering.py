"""Sort keys and list surgery for RowTableModel, free of Qt.

A model keeps its visible rows in ascending key order together with a parallel list of the
keys, so a row is found with `bisect` on plain tuples (compared in C, no key function per
probe).  A descending view is the same list read backwards.  Keys end with the row id, so they
are unique and a key names exactly one position.

Work over a whole model (a load, a resync, a sort, a filter, a large batch) is written as
generators that yield every few thousand rows: the model runs them on the UI thread a few
milliseconds per turn of the event loop, so the window keeps painting.  (A helper thread would
not do: every Qt callback into Python, thousands per repaint, would wait for the GIL.)
`run()` drives one to the end at once, for small models.
"""

from __future__ import annotations

import bisect
import heapq
from typing import Any, Callable, Generator

STEP = 2000           # rows handled between two yields
SLICE = 8192          # rows per sort call (one C call of a few milliseconds)

Steps = Generator[None, None, Any]


def run(steps: Steps) -> Any:
    """Drive a generator to the end; return what it returns."""
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value


def normal(value: Any) -> tuple:
    """A sortable form of a raw value: None last (ascending), text case-insensitive."""
    if value is None:
        return (1, 0)
    if isinstance(value, str):
        return (0, value.casefold())
    return (0, value)


def key_function(value: Callable[[dict], Any] | None, arrival: Any
                 ) -> Callable[[dict], tuple]:
    """The key of a row: the column's raw value (None: arrival order), then the id."""
    if value is None:
        return lambda r: (arrival[r["id"]], r["id"])

    def key(r: dict) -> tuple:
        v = value(r)
        if v is None:
            return (1, 0, r["id"])
        if isinstance(v, str):
            return (0, v.casefold(), r["id"])
        return (0, v, r["id"])
    return key


def mapped(items: list, fn: Callable) -> Steps:
    """[fn(x) for x in items], yielding every STEP items."""
    out: list = []
    for start in range(0, len(items), STEP):
        out.extend(fn(x) for x in items[start:start + STEP])
        yield
    return out


def order_of(keys: list) -> Steps:
    """Positions of `keys` in ascending order: slices sorted in C, then merged."""
    if len(keys) <= SLICE:
        return sorted(range(len(keys)), key=keys.__getitem__)
    runs_: list[list[int]] = []
    for start in range(0, len(keys), SLICE):
        runs_.append(sorted(range(start, min(start + SLICE, len(keys))),
                            key=keys.__getitem__))
        yield
    merged = heapq.merge(*runs_, key=keys.__getitem__)
    out: list[int] = []
    while len(out) < len(keys):
        out.extend(next(merged) for _ in range(min(STEP, len(keys) - len(out))))
        yield
    return out


def sorted_pairs_steps(rows: list[dict], key: Callable[[dict], tuple]) -> Steps:
    keys = yield from mapped(rows, key)
    order = yield from order_of(keys)
    out_rows = yield from mapped(order, rows.__getitem__)
    out_keys = yield from mapped(order, keys.__getitem__)
    return out_rows, out_keys


def sorted_pairs(rows: list[dict], key: Callable[[dict], tuple]) -> tuple[list, list]:
    """(rows, keys) of `rows` in ascending key order."""
    return run(sorted_pairs_steps(rows, key))


def merge_steps(base_rows: list, base_keys: list, extra: list[tuple[tuple, dict]]) -> Steps:
    """Merge (key, row) pairs into sorted lists: O(n) copying in C, O(k log n) searching."""
    if not extra:
        return base_rows, base_keys
    extra_keys = yield from mapped(extra, lambda p: p[0])
    order = yield from order_of(extra_keys)
    extra = yield from mapped(order, extra.__getitem__)
    if len(extra) * 16 > len(base_rows):
        # Many rows: two sorted runs, merged in one pass.
        keys = base_keys + (yield from mapped(extra, lambda p: p[0]))
        every = base_rows + (yield from mapped(extra, lambda p: p[1]))
        n = len(base_keys)
        merged = heapq.merge(range(n), range(n, len(keys)), key=keys.__getitem__)
        pos: list[int] = []
        while len(pos) < len(keys):
            pos.extend(next(merged) for _ in range(min(STEP, len(keys) - len(pos))))
            yield
        out_rows = yield from mapped(pos, every.__getitem__)
        out_keys = yield from mapped(pos, keys.__getitem__)
        return out_rows, out_keys
    rows: list = []
    keys = []
    prev = 0
    for i, (k, row) in enumerate(extra):
        pos_ = bisect.bisect_left(base_keys, k, prev)
        rows.extend(base_rows[prev:pos_])
        keys.extend(base_keys[prev:pos_])
        rows.append(row)
        keys.append(k)
        prev = pos_
        if i % STEP == STEP - 1:
            yield
    rows.extend(base_rows[prev:])
    keys.extend(base_keys[prev:])
    return rows, keys


def merge(base_rows: list, base_keys: list, extra: list[tuple[tuple, dict]]
          ) -> tuple[list, list]:
    return run(merge_steps(base_rows, base_keys, extra))


def without_steps(rows: list, keys: list, ids: set, positions: list[int] | None = None
                  ) -> Steps:
    """New lists without the rows whose ids are in `ids` (at `positions`, when known: then
    the copying is a few slices in C)."""
    if not ids:
        return list(rows), list(keys)
    if positions is not None:
        out_rows: list = []
        out_keys: list = []
        prev = 0
        for pos in sorted(positions):
            out_rows.extend(rows[prev:pos])
            out_keys.extend(keys[prev:pos])
            prev = pos + 1
        out_rows.extend(rows[prev:])
        out_keys.extend(keys[prev:])
        return out_rows, out_keys
    keep: list[int] = []
    for start in range(0, len(rows), STEP):
        keep.extend(i for i in range(start, min(start + STEP, len(rows)))
                    if rows[i]["id"] not in ids)
        yield
    out_rows = yield from mapped(keep, rows.__getitem__)
    out_keys = yield from mapped(keep, keys.__getitem__)
    return out_rows, out_keys


def without(rows: list, keys: list, ids: set, positions: list[int] | None = None
            ) -> tuple[list, list]:
    return run(without_steps(rows, keys, ids, positions))


def key_index(rows: list[dict], keys: list[tuple]) -> Steps:
    """{id: key} of the rows, in steps."""
    out: dict = {}
    for start in range(0, len(rows), STEP):
        out.update(zip((r["id"] for r in rows[start:start + STEP]), keys[start:start + STEP]))
        yield
    return out


def runs(positions: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of positions as (first, last), last run first (safe removal order)."""
    out: list[tuple[int, int]] = []
    for pos in sorted(set(positions), reverse=True):
        if out and out[-1][0] == pos + 1:
            out[-1] = (pos, out[-1][1])
        else:
            out.append((pos, pos))
    return out


class Plan:
    """A new arrangement of a model's visible rows, computed before any signal is sent:
    `rows`/`keys` the rows that stay or come, in order; `departing` the rows that go (with
    their keys, ascending); `entering` the newcomers; `key_of` the keys of every row shown
    afterwards."""

    __slots__ = ("rows", "keys", "departing", "departing_keys", "entering", "key_of")

    def __init__(self, rows, keys, departing, departing_keys, entering, key_of):
        self.rows, self.keys = rows, keys
        self.departing, self.departing_keys = departing, departing_keys
        self.entering, self.key_of = entering, key_of


def plan_steps(rows: list, keys: list, key_of: dict, leaving: list[tuple],
               moves: list[tuple[tuple, tuple, dict]], entering: list[tuple[tuple, dict]],
               copy: bool = False) -> Steps:
    """Plan a batch: rows leaving (by key), moving (old key, new key, row) and entering.
    `copy`: leave `key_of` alone (the model shows it while the plan is being made)."""
    few = (len(leaving) + len(moves)) * 16 <= len(rows)
    if few:
        # Leavers in ascending order, so their keys can be searched (see Plan).
        leave_at = sorted(bisect.bisect_left(keys, k) for k in leaving)
        leaving = [keys[p] for p in leave_at]
        departing = [rows[p] for p in leave_at]
        leave_ids = {r["id"] for r in departing}
        positions: list[int] | None = leave_at + [bisect.bisect_left(keys, was)
                                                  for was, _, _ in moves]
    else:
        leave_ids = set()
        for start in range(0, len(leaving), STEP):
            leave_ids.update(k[-1] for k in leaving[start:start + STEP])
            yield
        departing = []
        for start in range(0, len(rows), STEP):
            departing.extend(r for r in rows[start:start + STEP] if r["id"] in leave_ids)
            yield
        leaving = yield from mapped(departing, lambda r: key_of[r["id"]])
        positions = None
    yield
    drop = leave_ids
    if moves:
        drop = leave_ids | {row["id"] for _, _, row in moves}
    base_rows, base_keys = yield from without_steps(rows, keys, drop, positions)
    extra = (yield from mapped(moves, lambda m: (m[1], m[2]))) + entering
    new_rows, new_keys = yield from merge_steps(base_rows, base_keys, extra)
    if copy:
        key_of = dict(key_of)
        yield
    for i, rid in enumerate(leave_ids):
        del key_of[rid]
        if i % STEP == STEP - 1:
            yield
    for i, (k, row) in enumerate(extra):
        key_of[row["id"]] = k
        if i % STEP == STEP - 1:
            yield
    entering_rows = yield from mapped(entering, lambda p: p[1])
    return Plan(new_rows, new_keys, departing, leaving, entering_rows, key_of)


def plan_changes(rows: list, keys: list, key_of: dict, leaving: list[tuple],
                 moves: list[tuple[tuple, tuple, dict]], entering: list[tuple[tuple, dict]]
                 ) -> Plan:
    return run(plan_steps(rows, keys, key_of, leaving, moves, entering))


def filter_steps(all_rows: dict, rows: list, keys: list, key_of: dict, matches: Callable,
                 key: Callable[[dict], tuple]) -> Steps:
    """Plan showing exactly the rows that match (a filter changed)."""
    departing: list[dict] = []
    for start in range(0, len(rows), STEP):
        departing.extend(r for r in rows[start:start + STEP] if not matches(r))
        yield
    every = list(all_rows.values())
    entering: list[tuple[tuple, dict]] = []
    for start in range(0, len(every), STEP):
        entering.extend((key(r), r) for r in every[start:start + STEP]
                        if r["id"] not in key_of and matches(r))
        yield
    leaving = yield from mapped(departing, lambda r: key_of[r["id"]])
    return (yield from plan_steps(rows, keys, key_of, leaving, [], entering, copy=True))


class Prepared:
    """The outcome of work done in steps, for the model to take over in one go."""

    __slots__ = ("all", "arrival", "rows", "keys", "key_of", "next_arrival", "spec",
                 "sorted", "plan", "batch")

    def __init__(self) -> None:
        self.sorted = False                        # a new order of the visible rows
        self.plan: Plan | None = None              # a filter change or a large batch
        self.batch: tuple | None = None            # a large batch: rows to store, ids gone,
                                                   # new arrival numbers, next arrival


def sort_steps(rows: list[dict], value: Callable | None, arrival: dict, spec: tuple) -> Steps:
    """Visible rows in a new order."""
    out = Prepared()
    out.rows, out.keys = yield from sorted_pairs_steps(rows, key_function(value, arrival))
    out.key_of = yield from key_index(out.rows, out.keys)
    out.spec = spec
    out.sorted = True
    return out


def reset_steps(rows: list[dict], value: Callable | None, matches: Callable,
                first_arrival: int, spec: tuple) -> Steps:
    """A model's whole state built from `rows`."""
    out = Prepared()
    out.all = {}
    out.arrival = {}
    n = first_arrival
    for start in range(0, len(rows), STEP):
        for r in rows[start:start + STEP]:
            rid = r["id"]
            if rid not in out.all:
                out.arrival[rid] = n
                n += 1
            out.all[rid] = r
        yield
    out.next_arrival = n
    every = list(out.all.values())
    shown: list[dict] = []
    for start in range(0, len(every), STEP):
        shown.extend(r for r in every[start:start + STEP] if matches(r))
        yield
    out.rows, out.keys = yield from sorted_pairs_steps(shown, key_function(value, out.arrival))
    out.key_of = yield from key_index(out.rows, out.keys)
    out.spec = spec
    return out


def diff_steps(current: dict[Any, dict], rows: list[dict]) -> Steps:
    """(changed rows, ids gone): which of `rows` differ from `current`, and which current ids
    are not in `rows`.  Full rows replace: a field no longer sent becomes None, not stale."""
    keep = set()
    changed = []
    for start in range(0, len(rows), STEP):
        for r in rows[start:start + STEP]:
            rid = r["id"]
            keep.add(rid)
            old = current.get(rid)
            if old is None:
                changed.append(r)
                continue
            if old.keys() - r.keys():
                r = {**{k: None for k in old}, **r}
            if {**old, **r} != old:
                changed.append(r)
        yield
    ids = list(current)
    gone: list = []
    for start in range(0, len(ids), STEP):
        gone.extend(rid for rid in ids[start:start + STEP] if rid not in keep)
        yield
    return changed, gone


def batch_steps(state: Any, rows: list[dict], deleted: list[Any], value: Callable | None,
                matches: Callable, first_arrival: int) -> Steps:
    """Plan a large batch (upserts and deletions) against a model's current state, which the
    model keeps unchanged meanwhile.  Rows changed in place are planned as moves to the same
    key, so the whole batch is one layout change."""
    from collections import ChainMap
    current, key_of = state._all, state._key_of
    deleted_set = set(deleted)
    updates: dict[Any, dict] = {}
    for new in rows:
        rid = new["id"]
        if rid not in deleted_set:
            updates[rid] = {**updates[rid], **new} if rid in updates else new
    yield
    arrival: dict[Any, int] = {}
    key = key_function(value, ChainMap(arrival, state._arrival))
    merged_all: dict[Any, dict] = {}
    leaving: list[tuple] = []
    entering: list[tuple[tuple, dict]] = []
    moves: list[tuple[tuple, tuple, dict]] = []
    n = first_arrival
    for i, (rid, new) in enumerate(updates.items()):
        if i % STEP == STEP - 1:
            yield
        old = current.get(rid)
        if old is None:
            merged = dict(new)
            arrival[rid] = n
            n += 1
            merged_all[rid] = merged
            if matches(merged):
                entering.append((key(merged), merged))
            continue
        merged = {**old, **new}
        if merged == old:
            continue
        merged_all[rid] = merged
        was = key_of.get(rid)
        shown = matches(merged)
        if was is None:
            if shown:
                entering.append((key(merged), merged))
        elif not shown:
            leaving.append(was)
        else:
            moves.append((was, key(merged), merged))
    gone = [rid for rid in deleted_set if rid in current]
    leaving += [key_of[rid] for rid in gone if rid in key_of]
    out = Prepared()
    out.batch = (merged_all, gone, arrival, n)
    if leaving or moves or entering:
        out.plan = yield from plan_steps(state._rows, state._keys, key_of, leaving, moves,
                                         entering, copy=True)
    return out


def replace_steps(state: Any, rows: list[dict], value: Callable | None, matches: Callable,
                  first_arrival: int) -> Steps:
    """A resync: the differences from the current state, planned as one batch."""
    changed, gone = yield from diff_steps(state._all, rows)
    return (yield from batch_steps(state, changed, gone, value, matches, first_arrival))
