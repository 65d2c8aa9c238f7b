"""Metric history: samples of every series packed in one row, in three tiers.

A sample is one `metric_sample` row at resolution 0 (RAW) holding every series' value packed
as float32 in the order of its layout (`metric_layout`, the tuple of series names).
`downsample()` folds finished minutes into minute rows and finished hours into hour rows
(mean, min, max per series and the number of samples, so roll-ups of roll-ups stay exact means)
and applies retention: raw for a day, minutes for a month, hours for five years.  What the
series are and how they are sampled is `supervisor.metrics`'.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from supervisor.store.billing_models import MetricLayout, MetricSample
from supervisor.store.models import Attempt, Host, Layer
from supervisor.store.work import busy_workers

RAW, MINUTE, HOUR = 0, 60, 3600
DAY = 86400
# (resolution, kept for) per tier, finest first; older data lives on in the next tier.
TIERS = ((RAW, DAY), (MINUTE, 31 * DAY), (HOUR, 5 * 366 * DAY))
CHUNK = 20_000           # rows rolled up per query
MAX_POINTS = 20_000
Order = Callable[[Iterable[str]], tuple[str, ...]]


def round_trip(conn: Connection) -> float:
    """Seconds one trivial query takes."""
    t0 = time.perf_counter()
    conn.execute(text("SELECT 1"))
    return time.perf_counter() - t0


def farm_figures(conn: Connection) -> dict[str, float]:
    """Frames waiting and running, hosts up, down and locked, licences in use: farm-wide."""
    waiting = conn.execute(select(func.coalesce(func.sum(Layer.waiting), 0))
                           .where(Layer.waiting > 0)).scalar()
    running = conn.execute(select(func.count()).select_from(Attempt)
                           .where(Attempt.state == "RUNNING")).scalar()
    hosts = {s: n for s, n in conn.execute(select(Host.state, func.count())
                                           .group_by(Host.state))}
    locked = conn.execute(select(func.count()).select_from(Host)
                          .where(Host.lock == "LOCKED")).scalar()
    return {"frames.waiting": float(waiting or 0), "frames.running": float(running or 0),
            "hosts.up": float(hosts.get("UP", 0)), "hosts.down": float(hosts.get("DOWN", 0)),
            "hosts.locked": float(locked or 0),
            "licences.in_use": float(busy_workers(conn))}


def layouts(conn: Connection) -> dict[int, tuple[str, ...]]:
    return {r.id: tuple(r.names) for r in conn.execute(select(MetricLayout.id,
                                                              MetricLayout.names))}


def layout_id(conn: Connection, names: tuple[str, ...]) -> int:
    """The id of the layout packing exactly `names` in this order (created when new)."""
    for lid, known in layouts(conn).items():
        if known == names:
            return lid
    return conn.execute(insert(MetricLayout).values(names=list(names))
                        .returning(MetricLayout.id)).scalar_one()


def _pack(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def _decode(names: tuple[str, ...], res: int, data: bytes) -> dict[str, tuple[float, ...]]:
    """{series: (mean, min, max)} of one packed row (NaN: the series was not sampled)."""
    vals = struct.unpack(f"<{len(data) // 4}f", data)
    if res == RAW:
        return {name: (v, v, v) for name, v in zip(names, vals) if v == v}
    return {name: vals[3 * i:3 * i + 3] for i, name in enumerate(names)
            if vals[3 * i] == vals[3 * i]}


def add_sample(conn: Connection, t: float, names: tuple[str, ...],
               values: dict[str, float]) -> None:
    """Write one raw sample of the series `names`, packed in that order (skipped if a sample
    has that very time)."""
    _insert_new(conn, [{"res": RAW, "at": t, "n": 1, "layout": layout_id(conn, names),
                        "data": _pack([float(values[name]) for name in names])}])


# --- downsampling -------------------------------------------------------------------------------

def _fold(acc: dict[str, list[float]], row: dict[str, tuple[float, ...]], weight: int) -> None:
    for name, (mean, lo, hi) in row.items():
        a = acc.get(name)
        if a is None:
            acc[name] = [mean * weight, lo, hi, weight]
        else:
            a[0] += mean * weight
            a[1] = min(a[1], lo)
            a[2] = max(a[2], hi)
            a[3] += weight


def _rows(conn: Connection, res: int, lo: float | None, hi: float, hi_closed: bool = False,
          limit: int | None = None):
    q = select(MetricSample.at, MetricSample.n, MetricSample.layout, MetricSample.data).where(
        MetricSample.res == res, MetricSample.at <= hi if hi_closed else MetricSample.at < hi)
    if lo is not None:
        q = q.where(MetricSample.at >= lo)
    q = q.order_by(MetricSample.at)
    return conn.execute(q if limit is None else q.limit(limit)).all()


def roll_up(conn: Connection, src: int, dst: int, now: float, order: Order = tuple) -> int:
    """Fold rows of resolution `src` into buckets of `dst` seconds, for every bucket that has
    ended and was not folded yet (past the newest `dst` row); returns how many source rows
    were read (at most CHUNK per call).  `order` gives the order of the series packed in a
    new row.  Source rows stay until retention drops them, so every
    tier is complete up to the last whole bucket and a chart reads one tier."""
    newest = conn.execute(select(func.max(MetricSample.at))
                          .where(MetricSample.res == dst)).scalar()
    lo = None if newest is None else newest + dst
    rows = _rows(conn, src, lo, float(int(now // dst) * dst), limit=CHUNK)
    if not rows:
        return 0
    if len(rows) == CHUNK:      # do not split the last bucket: it is finished next call
        last = float(int(rows[-1].at // dst) * dst)
        rows = [r for r in rows if r.at < last] or rows
    names_of = layouts(conn)
    buckets: dict[float, list] = {}          # bucket start -> [samples, {series: acc}]
    for r in rows:
        b = buckets.setdefault(float(int(r.at // dst) * dst), [0, {}])
        b[0] += r.n
        _fold(b[1], _decode(names_of[r.layout], src, r.data), r.n)
    ids: dict[tuple[str, ...], int] = {}
    out = []
    for at, (n, acc) in sorted(buckets.items()):
        names = order(acc)
        if names not in ids:
            ids[names] = layout_id(conn, names)
        flat: list[float] = []
        for name in names:
            wsum, lo_, hi_, w = acc[name]
            flat += [wsum / w, lo_, hi_]
        out.append({"res": dst, "at": at, "n": n, "layout": ids[names], "data": _pack(flat)})
    _insert_new(conn, out)
    return len(rows)


def _insert_new(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert rows, skipping any whose (res, at) is taken (another supervisor wrote it)."""
    ins = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        MetricSample)
    conn.execute(ins.on_conflict_do_nothing(), rows)


def downsample(conn: Connection, now: float, order: Order = tuple,
               rounds: int = 5) -> dict[str, int]:
    """Roll-ups and retention at time `now`: every finished minute of raw samples becomes a
    minute row, every finished hour of minutes an hour row; then raw rows older than a day,
    minutes older than a month and hours older than five years are dropped (only once rolled
    up).  Every query is a range of the primary key (res, at); a long backlog is worked off
    `rounds` chunks at a time.  Returns rows read or dropped per step."""
    done = {"raw": 0, "minute": 0, "dropped": 0}
    for (src, _), (dst, _), label in zip(TIERS, TIERS[1:], ("raw", "minute")):
        for _ in range(rounds):
            n = roll_up(conn, src, dst, now, order)
            done[label] += n
            if n < CHUNK // 2:
                break
    for i, (res, keep) in enumerate(TIERS):
        limit = now - keep
        if i + 1 < len(TIERS):
            dst = TIERS[i + 1][0]
            rolled = conn.execute(select(func.max(MetricSample.at))
                                  .where(MetricSample.res == dst)).scalar()
            limit = min(limit, rolled + dst) if rolled is not None else float("-inf")
        done["dropped"] += conn.execute(delete(MetricSample).where(
            MetricSample.res == res, MetricSample.at < limit)).rowcount or 0
    return done


# --- history ------------------------------------------------------------------------------------

def _points(conn: Connection, res: int, series: str, index: dict[int, int], lo: float | None,
            hi: float, hi_closed: bool) -> list[tuple[float, float, int]]:
    step = 4 if res == RAW else 12
    out = []
    for at, n, lid, data in _rows(conn, res, lo, hi, hi_closed):
        i = index.get(lid)
        if i is not None:
            (v,) = struct.unpack_from("<f", data, i * step)
            if v == v:
                out.append((at, v, n))
    return out


def history(conn: Connection, series: str, start: float, end: float,
            resolution: float = 0.0) -> tuple[float, list[tuple[float, float]]]:
    """Points (t, mean) of one series in [start, end], averaged into buckets of `resolution`
    seconds when given (coarser when the answer would pass MAX_POINTS; 0: as stored).

    The tier read is the coarsest no coarser than the resolution (raw when 0); after its last
    bucket the finer tiers fill in the latest moments, before its first the coarser ones fill
    in older times.  Returns (resolution used, points)."""
    index = {lid: names.index(series) for lid, names in layouts(conn).items()
             if series in names}
    if not index:
        return (max(resolution, 0.0), [])
    target = max(resolution, 0.0)
    best = max(i for i, (res, _) in enumerate(TIERS) if res <= target)
    res = TIERS[best][0]
    points = _points(conn, res, series, index, start, end, True)
    # Latest moments from finer tiers, after the last bucket of this one.
    after = points[-1][0] + res if points else start
    for finer in range(best - 1, -1, -1):
        fres = TIERS[finer][0]
        more = _points(conn, fres, series, index, after, end, True)
        points += more
        if more:
            after = more[-1][0] + fres
    # Older times from coarser tiers, whole buckets before the first point.
    before = points[0][0] if points else end
    for coarser in range(best + 1, len(TIERS)):
        cres = TIERS[coarser][0]
        older = _points(conn, cres, series, index, start, before - cres, True)
        points[:0] = older
        if older:
            before = older[0][0]
    if resolution <= 0 and len(points) <= MAX_POINTS:
        return 0.0, [(t, v) for t, v, _ in points]
    resolution = max(resolution, max(end - start, 1.0) / MAX_POINTS)
    buckets: dict[int, list[float]] = {}
    for t, v, n in points:
        b = buckets.setdefault(int((t - start) // resolution), [0.0, 0])
        b[0] += v * n
        b[1] += n
    return resolution, [(start + k * resolution, s / n) for k, (s, n) in sorted(buckets.items())]
