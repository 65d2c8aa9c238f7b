"""Sort keys and list surgery for RowTableModel, free of Qt.

A model keeps its visible rows in ascending key order together with a parallel list of the
keys, so a row is found with `bisect` on plain tuples (compared in C, no key function per
probe).  A descending view is the same list read backwards.  Keys end with the row id, so they
are unique and a key names exactly one position.

Work over a whole model (a load, a resync, a sort, a filter, a batch) is written as
generators that yield every few hundred rows: the model runs them on the UI thread a few
milliseconds per turn of the event loop, so the window keeps painting.  (A helper thread would
not do: every Qt callback into Python, thousands per repaint, would wait for the GIL.)
`run()` drives one to the end at once, for small models.
"""

from __future__ import annotations

import bisect
import heapq
from sys import intern
from typing import Any, Callable, Generator

STEP = 500            # rows handled between two yields (a millisecond or two)
SLICE = 4096          # rows per sort call (one C call of a few milliseconds)
SEARCHES = 250        # binary searches between two yields (a millisecond or two)

Steps = Generator[Any, None, Any]

# Yielded before a step that carries work out rather than preparing it (a layout change and
# the repaint it causes): the model runs it at the start of a slice of its own.
HEAVY = object()


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
            # Interned: equal texts are one object, so comparing keys (thousands of binary
            # searches per batch) finds them equal without reading them.
            return (0, intern(v.casefold()), r["id"])
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


def key_index(rows: list[dict], keys: list[tuple], same_ids: dict | None = None) -> Steps:
    """{id: key} of the rows, in steps.  `same_ids`, a dict with exactly the rows' ids as
    keys, lets the index be made at its full size in one call and then only filled in (a
    dict grown id by id copies itself, 100,000 entries at once, as it grows)."""
    out: dict = {} if same_ids is None else dict.fromkeys(same_ids)
    for start in range(0, len(rows), STEP):
        out.update(zip((r["id"] for r in rows[start:start + STEP]), keys[start:start + STEP]))
        yield
    return out


def searched(keys: list, wanted: list) -> Steps:
    """[bisect_left(keys, k) for k in wanted], yielding every SEARCHES keys: a search in
    100,000 keys costs microseconds (each step down the list is a cache miss; searches in
    ascending order share their first steps, a third faster)."""
    out: list[int] = []
    find = bisect.bisect_left
    for start in range(0, len(wanted), SEARCHES):
        out.extend(find(keys, k) for k in wanted[start:start + SEARCHES])
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
    """A new arrangement of a model's visible rows, computed before any signal is sent.

    `rows`/`keys` are the model's next lists: the `kept` rows shown afterwards in ascending
    key order, and the `departing` rows (ascending, keys in `departing_keys`) at the view's
    end until they are removed as one block: after the kept rows, or before them (in
    reverse) for a view that reads the lists backwards.  `entering` are the newcomers;
    `gone` the ids no longer shown and `placed` the (key, row) pairs shown at a new key,
    for the model's id -> key index; or, when many rows change, `key_of` the whole new
    index of the kept rows (else None)."""

    __slots__ = ("rows", "keys", "kept", "departing", "departing_keys", "entering", "gone",
                 "placed", "key_of")

    def __init__(self, rows, keys, kept, departing, departing_keys, entering, gone, placed,
                 key_of=None):
        self.rows, self.keys, self.kept = rows, keys, kept
        self.departing, self.departing_keys = departing, departing_keys
        self.entering, self.gone, self.placed = entering, gone, placed
        self.key_of = key_of


def plan_steps(rows: list, keys: list, leaving: list[tuple],
               moves: list[tuple[tuple, tuple, dict]], entering: list[tuple[tuple, dict]],
               departing_first: bool = False, key_of: dict | None = None) -> Steps:
    """Plan rows leaving (by key), moving (old key, new key, row) and entering: the new
    lists are built in one pass, slices copied in C between the places that change
    (O(n) copying, O(k log n) searching for k changes).  Given the current id -> key
    index `key_of`, a plan changing many rows carries the next one (`Plan.key_of`)."""
    n = len(rows)
    if (len(leaving) + len(moves)) * 16 <= n:
        leave_at = yield from searched(keys, sorted(leaving))
        drop_at = leave_at + (yield from searched(keys, sorted(m[0] for m in moves)))
        drop_at.sort()          # two ascending runs: one merge
        yield
    else:
        # Many: one scan finds them (keys end with the row id).
        leave_ids = yield from collected(leaving, lambda k: k[-1])
        move_ids = yield from collected(moves, lambda m: m[2]["id"])
        leave_at, drop_at = [], []
        for start in range(0, n, STEP):
            for i in range(start, min(start + STEP, n)):
                rid = keys[i][-1]
                if rid in leave_ids:
                    leave_at.append(i)
                    drop_at.append(i)
                elif rid in move_ids:
                    drop_at.append(i)
            yield
    departing = yield from mapped(leave_at, rows.__getitem__)
    departing_keys = yield from mapped(leave_at, keys.__getitem__)
    extra = (yield from mapped(moves, lambda m: (m[1], m[2]))) + entering
    extra_keys = yield from mapped(extra, lambda p: p[0])
    order = yield from order_of(extra_keys)
    extra = yield from mapped(order, extra.__getitem__)
    out_rows = departing[::-1] if departing_first else []
    out_keys = departing_keys[::-1] if departing_first else []
    prev = 0            # the next old position to copy
    d, nd = 0, len(drop_at)
    done = 0            # changes handled since the last yield
    for k, row in extra:
        at = bisect.bisect_left(keys, k, prev)
        while d < nd and drop_at[d] < at:
            r = drop_at[d]
            out_rows.extend(rows[prev:r])
            out_keys.extend(keys[prev:r])
            prev = r + 1
            d += 1
            done += 1
        out_rows.extend(rows[prev:at])
        out_keys.extend(keys[prev:at])
        prev = at
        out_rows.append(row)
        out_keys.append(k)
        done += 1
        if done >= SEARCHES:
            done = 0
            yield
    while d < nd:
        r = drop_at[d]
        out_rows.extend(rows[prev:r])
        out_keys.extend(keys[prev:r])
        prev = r + 1
        d += 1
        done += 1
        if done >= STEP:
            done = 0
            yield
    out_rows.extend(rows[prev:])
    out_keys.extend(keys[prev:])
    if not departing_first:
        out_rows.extend(departing)
        out_keys.extend(departing_keys)
    entering_rows = yield from mapped(entering, lambda p: p[1])
    gone = yield from mapped(departing_keys, lambda k: k[-1])
    kept = len(out_rows) - len(departing)
    new_index = None
    if key_of is not None and (len(gone) + len(extra)) * 4 > kept:
        # Many rows go or change places: the model's next id -> key index is made here, in
        # steps, rather than by updating its own row by row when it takes the plan over.
        if len(key_of) // 2 <= kept <= len(key_of):
            # A copy never grows (growing a dict of 100,000 entries copies it at once).
            new_index = key_of.copy()
            yield
            for start in range(0, len(gone), STEP):
                for rid in gone[start:start + STEP]:
                    del new_index[rid]
                yield
            for start in range(0, len(extra), STEP):
                new_index.update((row["id"], k) for k, row in extra[start:start + STEP])
                yield
        else:
            lo = len(departing) if departing_first else 0
            new_index = yield from key_index(out_rows[lo:lo + kept], out_keys[lo:lo + kept])
    return Plan(out_rows, out_keys, kept, departing, departing_keys, entering_rows, gone,
                extra, new_index)


def plan_changes(rows: list, keys: list, leaving: list[tuple],
                 moves: list[tuple[tuple, tuple, dict]], entering: list[tuple[tuple, dict]],
                 departing_first: bool = False) -> Plan:
    return run(plan_steps(rows, keys, leaving, moves, entering, departing_first))


def collected(items: list, fn: Callable) -> Steps:
    """{fn(x) for x in items}, yielding every STEP items."""
    out: set = set()
    for start in range(0, len(items), STEP):
        out.update(fn(x) for x in items[start:start + STEP])
        yield
    return out


def filter_steps(all_rows: dict, rows: list, keys: list, key_of: dict, matches: Callable,
                 key: Callable[[dict], tuple], departing_first: bool = False) -> Steps:
    """Plan showing exactly the rows that match (a filter changed)."""
    leaving: list[tuple] = []
    for start in range(0, len(rows), STEP):
        leaving.extend(keys[i] for i in range(start, min(start + STEP, len(rows)))
                       if not matches(rows[i]))
        yield
    every = list(all_rows.values())
    entering: list[tuple[tuple, dict]] = []
    for start in range(0, len(every), STEP):
        entering.extend((key(r), r) for r in every[start:start + STEP]
                        if r["id"] not in key_of and matches(r))
        yield
    return (yield from plan_steps(rows, keys, leaving, [], entering, departing_first, key_of))


class Prepared:
    """The outcome of work done in steps, for the model to take over in one go."""

    __slots__ = ("all", "arrival", "rows", "keys", "key_of", "next_arrival", "spec",
                 "sorted", "plan")

    def __init__(self) -> None:
        self.sorted = False                        # a new order of the visible rows
        self.plan: Plan | None = None              # a filter change


def sort_steps(rows: list[dict], value: Callable | None, arrival: dict, spec: tuple,
               key_of: dict | None = None) -> Steps:
    """Visible rows in a new order (`key_of`: their current id -> key index)."""
    out = Prepared()
    out.rows, out.keys = yield from sorted_pairs_steps(rows, key_function(value, arrival))
    same = key_of if key_of is not None and len(key_of) == len(rows) else None
    out.key_of = yield from key_index(out.rows, out.keys, same)
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
    # The ids not (yet) seen in `rows`: made at its full size in one call, then only
    # shrinking (a set grown id by id would copy itself, 100,000 ids at once, as it grows).
    unseen = dict.fromkeys(current)
    changed = []
    for start in range(0, len(rows), STEP):
        for r in rows[start:start + STEP]:
            rid = r["id"]
            unseen.pop(rid, None)
            old = current.get(rid)
            if old is None:
                changed.append(r)
                continue
            if old.keys() - r.keys():
                r = {**{k: None for k in old}, **r}
            if {**old, **r} != old:
                changed.append(r)
        yield
    return changed, list(unseen)


class Batch:
    """A batch of upserts and deletions sorted out against a model's state: `stored` the
    merged rows to keep (by id), `gone` the ids deleted, `arrival` the arrival numbers of new
    ids (`next_arrival` follows them); of the visible rows, `in_place` (key, row) those that
    keep their key, `leaving` the keys of those that go, `moves` (old key, new key, row)
    those whose key changed, and `entering` (key, row) the rows that come into view."""

    __slots__ = ("stored", "gone", "arrival", "next_arrival", "in_place", "leaving", "moves",
                 "entering")

    def __init__(self) -> None:
        self.stored: dict[Any, dict] = {}
        self.gone: list = []
        self.arrival: dict[Any, int] = {}
        self.next_arrival = 0
        self.in_place: list[tuple[tuple, dict]] = []
        self.leaving: list[tuple] = []
        self.moves: list[tuple[tuple, tuple, dict]] = []
        self.entering: list[tuple[tuple, dict]] = []

    @property
    def structural(self) -> int:
        """How many visible rows come, go or move."""
        return len(self.leaving) + len(self.moves) + len(self.entering)


def batch_steps(state: Any, rows: list[dict], deleted: list[Any], value: Callable | None,
                matches: Callable, first_arrival: int) -> Steps:
    """Sort out a batch (upserts and deletions) against a model's current state, which the
    model keeps unchanged meanwhile: returns a Batch."""
    from collections import ChainMap
    current, key_of = state._all, state._key_of
    deleted_set = set(deleted)
    updates: dict[Any, dict] = {}
    for i, new in enumerate(rows):           # one entry per id, later fields win
        rid = new["id"]
        if rid not in deleted_set:
            updates[rid] = {**updates[rid], **new} if rid in updates else new
        if i % STEP == STEP - 1:
            yield
    yield
    out = Batch()
    arrival = out.arrival
    key = key_function(value, ChainMap(arrival, state._arrival))
    stored = out.stored
    in_place, leaving, moves, entering = out.in_place, out.leaving, out.moves, out.entering
    n = first_arrival
    for i, (rid, new) in enumerate(updates.items()):
        if i % STEP == STEP - 1:
            yield
        old = current.get(rid)
        if old is None:
            merged = dict(new)
            arrival[rid] = n
            n += 1
            stored[rid] = merged
            if matches(merged):
                entering.append((key(merged), merged))
            continue
        merged = {**old, **new}
        if merged == old:
            continue
        stored[rid] = merged
        was = key_of.get(rid)
        shown = matches(merged)
        if was is None:
            if shown:
                entering.append((key(merged), merged))
        elif not shown:
            leaving.append(was)
        else:
            now = key(merged)
            if now == was:
                in_place.append((now, merged))
            else:
                moves.append((was, now, merged))
    out.gone = [rid for rid in dict.fromkeys(deleted) if rid in current]
    leaving += [key_of[rid] for rid in out.gone if rid in key_of]
    out.next_arrival = n
    return out
