"""Supervisor and farm metrics: sampling, storage with downsampling, history, Prometheus.

Every few seconds the sampler reads the supervisor's machine (CPU, memory, load), its own
process (CPU, resident memory), the database round trip, the event rates since the last sample
and farm figures (frames waiting and running, hosts up/down/locked, licences in use, event
backlog).  Each sample is one row of `supervisor.store.metrics`, which keeps them in tiers
(raw for a day, minutes for a month, hours for five years: a year of history is about 70,000
rows).

A Prometheus endpoint serves the latest sample from a dedicated registry, with conventional
names and base units (ratios, bytes, seconds), plus the event counters and the standard
process_* metrics.  The per-second rates are not exported as gauges: Prometheus derives them
from the `_total` counters (rate(cuefarm_frames_dispatched_total[1m])).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Callable

import psutil
from sqlalchemy import Connection

from supervisor.context import Context
from supervisor.store import metrics as db


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Series:
    name: str
    unit: str
    help: str
    prom: str              # Prometheus name ("": stored and charted, not exported)
    scale: float = 1.0     # stored value * scale = Prometheus value (base units)
    labels: tuple = ()

    @property
    def scope(self) -> str:
        """"farm": read from the database, the same through every supervisor; "supervisor":
        this supervisor's own (its machine, process, loop and connected workers)."""
        return "farm" if self.name.split(".")[0] in FARM_WIDE else "supervisor"


FARM_WIDE = {"frames", "hosts", "licences"}


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
ERRORS_FAMILY = "cuefarm_refused_messages_total"
ERROR_HELP = {
    "malformed": "messages that could not be decoded",
    "forbidden": "requests the sender's role does not allow",
    "busy": "requests refused because their sender had too many waiting",
    "foreign_completion": "completions or refusals from a worker the attempt was not sent to",
    "completion_from_unknown_worker": "completions from a worker not registered (it is told to "
                                      "register and hands them in then)",
    "internal": "requests or work that failed inside the supervisor",
}


def error_help(code: str) -> str:
    return ERROR_HELP.get(code, f"messages answered with the error '{code}'")
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

    def sample(self) -> dict[str, float]:
        return self.sample_db(self.sample_live())

    def sample_db(self, live: dict[str, float]) -> dict[str, float]:
        """The database figures (any thread), added to what sample_live() took."""
        values = dict(live)
        with self.cx.engine.connect() as conn:
            values["db.latency"] = db.round_trip(conn)
            values.update(db.farm_figures(conn))
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


def store(conn: Connection, t: float, values: dict[str, float]) -> None:
    """Write one raw sample of every series (skipped if a sample has that very time)."""
    db.add_sample(conn, t, series_order(values), values)


def downsample(conn: Connection, now: float, rounds: int = 5) -> dict[str, int]:
    """Roll-ups and retention at time `now` (see `supervisor.store.metrics.downsample`)."""
    return db.downsample(conn, now, series_order, rounds)


history = db.history


# --- Prometheus ---------------------------------------------------------------------------------

class PromCollector:
    """Yields the latest sample and the event counters as Prometheus metric families."""

    def __init__(self, latest: Callable[[], dict[str, float]],
                 counters: Callable[[], dict[str, float]],
                 extra: Callable[[], dict[str, float | None]],
                 supervisor: tuple[str, str] = ("", "")):
        """`supervisor`: (who serves its hosts, this run's id), for the info metric that says
        which supervisor an endpoint describes."""
        self.latest, self.counters, self.extra = latest, counters, extra
        self.errors: Callable[[], dict[str, int]] = lambda: {}
        self.supervisor = supervisor

    def describe(self):
        return []      # names are not fixed up front; nothing to check at registration

    def collect(self):
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        values = self.latest()
        info = GaugeMetricFamily(
            "cuefarm_supervisor_info", "The supervisor this endpoint describes (cuefarm_frames, "
            "cuefarm_hosts and cuefarm_worker_licences_in_use are farm totals, the same on "
            "every supervisor; the others are this supervisor's own)", labels=["supervisor", "run"])
        info.add_metric(list(self.supervisor), 1.0)
        yield info
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
        errors = CounterMetricFamily(ERRORS_FAMILY.removesuffix("_total"),
                                     "Messages refused or answered with an error, by reason",
                                     labels=["reason"])
        for code, n in sorted(self.errors().items()):
            errors.add_metric([code], n)
        yield errors
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
