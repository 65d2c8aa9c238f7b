"""Supervisor and farm metrics: sampling, storage with downsampling, history, Prometheus.

Every few seconds the sampler reads the supervisor's machine (CPU, memory, load), its own
process (CPU, resident memory), the database round trip, the event rates since the last sample
and farm figures (frames waiting and running, hosts up/down/locked, licences in use, event
backlog).  Each sample is one `metric_sample` row (all series packed) at resolution 0;
`downsample()` folds finished minutes into minute rows and finished hours into hour rows
(mean, min, max and the number of samples, so roll-ups of roll-ups stay exact means) and
applies retention: raw for a day, minutes for a month, hours for five years.  A year of
history is about 70,000 rows.

A Prometheus endpoint serves the latest sample from a dedicated registry, with conventional
names and base units (ratios, bytes, seconds), plus the event counters and the standard
process_* metrics.  The per-second rates are not exported as gauges: Prometheus derives them
from the `_total` counters (rate(cuefarm_frames_dispatched_total[1m])).
"""

from __future__ import annotations

import logging
import os
import struct
import time
from dataclasses import dataclass
from typing import Any, Callable

import psutil
from sqlalchemy import Connection, delete, func, insert, select, text
from sqlalchemy.dialects import postgresql, sqlite

from supervisor.context import Context
from supervisor.store.billing_models import MetricLayout, MetricSample
from supervisor.store.models import Attempt, Host, Layer
from supervisor.store.work import busy_workers


log = logging.getLogger(__name__)
RAW, MINUTE, HOUR = 0, 60, 3600
DAY = 86400
# (resolution, kept for) per tier, finest first; older data lives on in the next tier.
TIERS = ((RAW, DAY), (MINUTE, 31 * DAY), (HOUR, 5 * 366 * DAY))
CHUNK = 20_000           # rows rolled up per query
MAX_POINTS = 20_000


@dataclass(frozen=True)
class Series:
    name: str
    unit: str
    help: str
    prom: str              # Prometheus name ("": stored and charted, not exported)
    scale: float = 1.0     # stored value * scale = Prometheus value (base units)
    labels: tuple = ()


SERIES = (
    Series("host.cpu", "%", "CPU use of the supervisor's machine",
           "cuefarm_supervisor_host_cpu_ratio", 0.01),
    Series("host.memory", "%", "memory in use on the supervisor's machine",
           "cuefarm_supervisor_host_memory_ratio", 0.01),
    Series("host.load", "", "1-minute load average of the supervisor's machine",
           "cuefarm_supervisor_host_load1"),
    Series("process.cpu", "%", "CPU use of the supervisor process (100 = one core)",
           "cuefarm_supervisor_process_cpu_ratio", 0.01),
    Series("process.rss", "bytes", "resident memory of the supervisor process",
           "cuefarm_supervisor_process_resident_memory_bytes"),
    Series("db.latency", "s", "database round trip (SELECT 1)",
           "cuefarm_database_roundtrip_seconds"),
    Series("loop.turn_max", "s", "longest turn of the supervisor's loop since the last sample "
           "(how long a heartbeat or request could wait)", "cuefarm_supervisor_loop_turn_max_seconds"),
    # Rates are charted from history; Prometheus gets the counters (cuefarm_frames_dispatched_
    # total, cuefarm_worker_reports_total) and computes rates itself with rate().
    Series("dispatch.rate", "/s", "frames dispatched per second", ""),
    Series("report.rate", "/s", "worker reports (heartbeats) received per second", ""),
    Series("frames.waiting", "frames", "frames waiting to run", "cuefarm_frames",
           labels=(("state", "waiting"),)),
    Series("frames.running", "frames", "frames running", "cuefarm_frames",
           labels=(("state", "running"),)),
    Series("hosts.up", "hosts", "hosts up", "cuefarm_hosts", labels=(("state", "up"),)),
    Series("hosts.down", "hosts", "hosts down", "cuefarm_hosts", labels=(("state", "down"),)),
    Series("hosts.locked", "hosts", "hosts locked", "cuefarm_hosts_locked"),
    Series("licences.in_use", "workers", "workers holding a worker licence",
           "cuefarm_worker_licences_in_use"),
    Series("events.backlog", "rows", "changed rows waiting to be published as events",
           "cuefarm_event_backlog_rows"),
    Series("slots.used", "slots", "slots in use on connected workers (this supervisor's)",
           "cuefarm_slots_used"),
    Series("slots.total", "slots", "slots open for work on connected workers (this "
           "supervisor's; 0 on a locked, draining or busy-by-user host)", "cuefarm_slots_total"),
)
BY_NAME = {s.name: s for s in SERIES}
FAMILY_HELP = {"cuefarm_frames": "Frames waiting or running", "cuefarm_hosts": "Hosts up or down"}


# --- sampling -----------------------------------------------------------------------------------

class Sampler:
    """Takes one sample of every series; keeps the latest for the API and Prometheus."""

    def __init__(self, cx: Context, loop_figures: Callable[[], dict[str, float]]):
        """`loop_figures()` gives the loop's own figures (events.backlog, loop.turn_max)."""
        self.cx = cx
        self.loop_figures = loop_figures
        self.proc = psutil.Process()
        psutil.cpu_percent(None)           # the first call only starts the measurement
        self.proc.cpu_percent(None)
        self.prev: tuple[float, int, int] | None = None    # mono, dispatched, reports
        self.latest: dict[str, float] = {}
        self.latest_t: float | None = None

    def _farm(self, conn: Connection) -> dict[str, float]:
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

    def sample(self) -> dict[str, float]:
        return self.sample_db(self.sample_live())

    def sample_db(self, live: dict[str, float]) -> dict[str, float]:
        """The database figures (any thread), added to what sample_live() took."""
        values = dict(live)
        with self.cx.engine.connect() as conn:
            t0 = time.perf_counter()
            conn.execute(text("SELECT 1"))
            values["db.latency"] = time.perf_counter() - t0
            values.update(self._farm(conn))
            conn.rollback()
        self.latest, self.latest_t = values, self.cx.clock()
        return values

    def sample_live(self) -> dict[str, float]:
        """On the loop: the figures of this process and its live state (no database)."""
        cx = self.cx
        mono = cx.mono()
        mem = psutil.virtual_memory()
        values = {"host.cpu": psutil.cpu_percent(None), "host.memory": mem.percent,
                  "host.load": os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0,
                  "process.cpu": self.proc.cpu_percent(None),
                  "process.rss": float(self.proc.memory_info().rss)}
        dispatched, reports = cx.live.counters["dispatched"], cx.live.counters["reports"]
        if self.prev is not None and mono > self.prev[0]:
            dt = mono - self.prev[0]
            values["dispatch.rate"] = (dispatched - self.prev[1]) / dt
            values["report.rate"] = (reports - self.prev[2]) / dt
        else:
            values["dispatch.rate"] = values["report.rate"] = 0.0
        self.prev = (mono, dispatched, reports)
        values.update(self.loop_figures())
        values.update(farm_slots(cx.live.registry))
        return values


def farm_slots(registry) -> dict[str, float]:
    """Slots used and open on the workers connected to this supervisor, from its live registry
    (a locked host finishing a frame counts its used slots against a total of 0, as the GUI
    shows it)."""
    used = total = 0
    for w in registry.by_id.values():
        if w.identity is not None:
            used += w.used
            total += w.total
    return {"slots.used": float(used), "slots.total": float(total)}


def series_order(names) -> tuple[str, ...]:
    """Names in the order we sample them, unknown ones (from other versions) after, sorted."""
    known = [x.name for x in SERIES if x.name in names]
    return tuple(known + sorted(set(names) - set(known)))


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


def store(conn: Connection, t: float, values: dict[str, float]) -> None:
    """Write one raw sample of every series (skipped if a sample has that very time)."""
    names = series_order(values)
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


def roll_up(conn: Connection, src: int, dst: int, now: float) -> int:
    """Fold rows of resolution `src` into buckets of `dst` seconds, for every bucket that has
    ended and was not folded yet (past the newest `dst` row); returns how many source rows
    were read (at most CHUNK per call).  Source rows stay until retention drops them, so every
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
        names = series_order(acc)
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


def downsample(conn: Connection, now: float, rounds: int = 5) -> dict[str, int]:
    """Roll-ups and retention at time `now`: every finished minute of raw samples becomes a
    minute row, every finished hour of minutes an hour row; then raw rows older than a day,
    minutes older than a month and hours older than five years are dropped (only once rolled
    up).  Every query is a range of the primary key (res, at); a long backlog is worked off
    `rounds` chunks at a time.  Returns rows read or dropped per step."""
    done = {"raw": 0, "minute": 0, "dropped": 0}
    for (src, _), (dst, _), label in zip(TIERS, TIERS[1:], ("raw", "minute")):
        for _ in range(rounds):
            n = roll_up(conn, src, dst, now)
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


# --- Prometheus ---------------------------------------------------------------------------------

class PromCollector:
    """Yields the latest sample and the event counters as Prometheus metric families."""

    def __init__(self, latest: Callable[[], dict[str, float]],
                 counters: Callable[[], dict[str, float]],
                 extra: Callable[[], dict[str, float | None]]):
        self.latest, self.counters, self.extra = latest, counters, extra

    def describe(self):
        return []      # names are not fixed up front; nothing to check at registration

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        values = self.latest()
        families: dict[str, Any] = {}
        for s in SERIES:
            if s.name not in values or not s.prom:
                continue
            fam = families.get(s.prom)
            if fam is None:
                doc = FAMILY_HELP.get(s.prom) or s.help[0].upper() + s.help[1:]
                fam = families[s.prom] = GaugeMetricFamily(s.prom, doc,
                                                           labels=[k for k, _ in s.labels])
            fam.add_metric([v for _, v in s.labels], values[s.name] * s.scale)
        yield from families.values()
        counts = self.counters()
        for key, name, doc in (("dispatched", "cuefarm_frames_dispatched", "Frames dispatched"),
                               ("completions", "cuefarm_frame_completions",
                                "Frame completions accepted"),
                               ("reports", "cuefarm_worker_reports", "Worker reports received")):
            yield CounterMetricFamily(name, doc, value=counts.get(key, 0))
        for name, value in self.extra().items():
            if value is not None:
                yield GaugeMetricFamily(name, name.replace("cuefarm_", "").replace("_", " ")
                                        .capitalize(), value=value)


def serve(port: int, addr: str, collector: PromCollector):
    """Start the Prometheus HTTP endpoint in a thread; returns (server, registry)."""
    from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    server, _thread = start_http_server(port, addr=addr, registry=registry)
    return server, registry
