"""Wiring of licences, metering, usage accounting and metrics into the supervisor.

`attach(cx, timers, loop_figures)` is called once the schema is migrated: it checks the settings, loads the licence
terms, gives the dispatcher its licence cap and registers the periodic tasks (all off the
dispatch path, in the supervisor's own loop; only sink delivery and the Prometheus endpoint
run in threads, neither touches the database).
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy.exc import SQLAlchemyError

from cuefarm.config import ConfigError
from supervisor import metering, metrics, usage
from supervisor.context import Context, Timers
from supervisor.licensing import Licensing
from supervisor.store.work import busy_workers


log = logging.getLogger(__name__)
def month_bounds(now: float) -> tuple[float, float, str]:
    """Start and end (epoch) of the UTC calendar month holding `now`, and its name."""
    d = datetime.fromtimestamp(now, timezone.utc)
    start = d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 \
        else start.replace(month=start.month + 1)
    return start.timestamp(), end.timestamp(), start.strftime("%Y-%m")


class Billing:
    """Licences, metering, usage and metrics of one supervisor."""

    def __init__(self, cx: Context, loop_figures: Callable[[], dict[str, float]]):
        cfg = cx.cfg
        for name in ("metering_sample", "metering_retry", "usage_interval", "metrics_interval",
                     "metrics_retention"):
            value = getattr(cfg, name)
            if not value > 0 or value > 86400:
                raise ConfigError(f"supervisor configuration: {name} = {value} must be more "
                                  f"than 0 and at most a day (seconds)")
        if cfg.metrics_port < -1 or cfg.metrics_port > 65535:
            raise ConfigError(f"supervisor configuration: metrics_port = {cfg.metrics_port} "
                              f"(a port, 0 = off, -1 = the supervisor port + 3)")
        self.cx = cx
        self.licensing = Licensing(cfg)
        self.meter = metering.MinuteMeter()
        self.unrecorded: list[tuple[int, int, bool]] = []    # closed minutes not yet written
        self.reporter: metering.Reporter | None = None
        self.next_delivery = 0.0          # monotonic: when a failing sink is tried again
        self.retry_delay = 0.0
        self.busy_now = 0
        # Restart: the minutes from the stored watermark to this meter's first one are rebuilt
        # from attempt times, once the workers had time to re-register and hand in what ended
        # while no supervisor ran (host_expiry).
        self.watermark_at_start: int | None = None
        self.first_minute: int | None = None
        self.rebuild_after = cx.mono() + cfg.host_expiry
        self.rebuilt = False
        self.site = cfg.metering_site or socket.gethostname()
        self.sampler = metrics.Sampler(cx, loop_figures)
        self.prom_server = None
        self.metrics_port = (cfg.port + 3 if cfg.metrics_port == -1 else cfg.metrics_port)
        self.timers: Timers | None = None     # the loop, once attached

    # -- metering ---------------------------------------------------------------------------------

    def tick(self, cx: Context):
        """Count workers holding a licence, close minutes, make and deliver reports (on the
        housekeeping thread); then, on the loop, ask for a dispatch pass if licences freed."""
        now, mono = cx.clock(), cx.mono()
        # Every supervisor counts minutes (each minute is written once) and keeps the terms
        # it dispatches by; one makes and delivers the reports.
        reports = self.timers is None or self.timers.holds("metering reports")
        return lambda: self._tick(cx, now, mono, reports)

    def _tick(self, cx: Context, now: float, mono: float, reports: bool = True):
        results = self.reporter.results() if self.reporter is not None else []
        before = self.licensing.cap()
        handoff = None
        try:
            with cx.engine.begin() as conn:
                terms = self.licensing.load(conn)
                busy = busy_workers(conn) if terms.installed is not None else 0
                if self.first_minute is None:     # before this meter moves it
                    self.watermark_at_start = metering.meter_watermark(conn)
                # After a restart the meter starts counting only once the workers had time to
                # re-register and hand in what ended while no supervisor ran: until then a
                # frame that ended unseen would count as running, and the minutes up to the
                # meter's first are rebuilt from the attempts' own times instead.
                if not (self.first_minute is None and self.watermark_at_start is not None
                        and mono < self.rebuild_after):
                    # Minutes closed by a pass whose transaction failed are written by this one.
                    self.unrecorded = (self.unrecorded + self.meter.sample(
                        now, busy, terms.metering_active))[-1440:]
                first_minute = self.first_minute or self.meter.minute
                metering.record_minutes(conn, self.unrecorded, terms.installed, terms.rate)
                metering.advance_watermark(conn, self.unrecorded)
                rebuilt = self.rebuilt or self._rebuild(conn, mono, first_minute, terms)
                revoked = metering.apply_results(conn, results, now)
                if revoked is not None and terms.metered and not terms.revoked:
                    terms = self.licensing.revoke(conn, now, revoked.error)
                self._note_results(results, mono)
                if terms.sink and reports:
                    metering.make_batches(conn, now, self.site, cx.id)
                    if (self.reporter is None or not self.reporter.busy) \
                            and mono >= self.next_delivery:
                        batches = metering.pending_batches(conn)
                        if batches:
                            handoff = (terms.sink, batches)
        except SQLAlchemyError:
            # The deliveries' results are lost with the transaction: those batches stay
            # pending and go again with the same id, which the sink drops as duplicates.
            log.exception("metering pass failed")
            return None
        self.busy_now, self.unrecorded = busy, []
        self.first_minute, self.rebuilt = first_minute, rebuilt
        if handoff is not None:
            if self.reporter is None:
                self.reporter = metering.Reporter()
            self.reporter.hand_off(*handoff)
        cap = self.licensing.cap()

        def on_loop(cx: Context) -> None:
            if cap != before:
                cx.out.wake()     # more (or fewer) workers may take a licence now
            elif cap is not None and busy < cap and any(
                    w.used == 0 for w in cx.live.registry.dispatchable(cx.mono())):
                # Licences are free farm-wide, perhaps released by another supervisor sharing
                # the database (its completions are no event here): idle workers may take them.
                cx.out.wake()
        return on_loop

    def _rebuild(self, conn, mono: float, first_minute: int | None, terms) -> bool:
        """Write the overage minutes no meter counted (from the watermark found at start to
        this meter's first minute, at most MAX_GAP of them) from attempt times; True once
        done.  Metering is taken to have been as it is now; minutes already written (by
        another supervisor) are kept (the minute is the key)."""
        if mono < self.rebuild_after or first_minute is None:
            return False
        start = self.watermark_at_start
        if start is None or start >= first_minute:
            return True
        start = max(start, first_minute - metering.MAX_GAP * metering.MINUTE)
        closed = [(m, n, terms.metering_active)
                  for m, n in metering.rebuild_minutes(conn, start, first_minute)]
        written = metering.record_minutes(conn, closed, terms.installed, terms.rate)
        log.info("metering: rebuilt %d minutes from attempt times while no meter ran "
                 "(%d with overage)", len(closed), written)
        return True

    def _note_results(self, results: list[metering.Delivery], mono: float) -> None:
        failed = [d for d in results if not d.accepted]
        if failed:
            cap = self.cx.cfg.metering_retry
            self.retry_delay = min(cap, max(self.retry_delay * 2, min(1.0, cap)))
            self.next_delivery = mono + self.retry_delay
            log.warning("overage report %s not delivered (retry in %.1f s): %s",
                        failed[0].batch_id, self.retry_delay, failed[0].error)
        elif results:
            self.retry_delay = 0.0

    def status(self, conn) -> dict[str, Any]:
        """What `cuefarm licences` shows."""
        now = self.cx.clock()
        terms = self.licensing.load(conn)
        in_use = busy_workers(conn)
        start, end, month = month_bounds(now)
        minutes, cost = metering.month_totals(conn, start, end)
        pending, refused, unbatched = metering.backlog(conn)
        return {"installed": terms.installed, "in_use": in_use,
                # Workers past the count are overage only while metering lets them run; when
                # it is off or revoked, the count is enforced and any past it are draining.
                "overage_now": max(0, in_use - terms.installed)
                if terms.metering_active else 0,
                "metered": terms.metered, "metering_active": terms.metering_active,
                "revoked": terms.revoked, "revoked_at": terms.revoked_at,
                "revoked_reason": terms.revoked_reason, "sink": terms.sink,
                "rate": metering.money_text(terms.rate),
                "cap": terms.cap(), "month": month, "month_minutes": minutes,
                "month_cost": metering.money_text(cost), "pending_reports": pending,
                "refused_reports": refused,
                "unreported_minutes": unbatched, "now": now}

    # -- usage and metrics ------------------------------------------------------------------------

    def account_usage(self, cx: Context):
        now, engine = cx.clock(), cx.engine
        return lambda: usage.run(engine, now)

    def sample_metrics(self, cx: Context):
        live, now = self.sampler.sample_live(), cx.clock()

        def work() -> None:
            values = self.sampler.sample_db(live)
            with cx.engine.begin() as conn:
                metrics.store(conn, now, values)
        return work

    def retention(self, cx: Context):
        now = cx.clock()

        def work() -> None:
            with cx.engine.begin() as conn:
                done = metrics.downsample(conn, now)
            if any(done.values()):
                log.info("metrics retention: %s", done)
        return work

    def prom_extra(self) -> dict[str, float | None]:
        terms = self.licensing.terms
        return {"cuefarm_worker_licences_installed": terms.installed,
                "cuefarm_worker_licences_overage":
                    max(0, self.busy_now - terms.installed) if terms.metering_active else 0.0,
                "cuefarm_worker_licence_metering_active": float(terms.metering_active)}

    def serve_metrics(self) -> None:
        if self.metrics_port == 0:
            return
        addr = "0.0.0.0" if self.cx.cfg.bind in ("*", "") else self.cx.cfg.bind
        collector = metrics.PromCollector(lambda: self.sampler.latest,
                                          lambda: dict(self.cx.live.counters), self.prom_extra,
                                          (self.cx.owner, self.cx.id))
        collector.errors = lambda: dict(self.cx.live.errors)
        try:
            self.prom_server, _ = metrics.serve(self.metrics_port, addr, collector)
        except OSError as exc:   # the port is taken: metrics are not worth stopping the farm
            log.warning("cannot serve Prometheus metrics on %s:%d: %s", addr, self.metrics_port,
                        exc)
            return
        log.info("Prometheus metrics on http://%s:%d/metrics", addr, self.metrics_port)


def attach(cx: Context, timers: Timers,
           loop_figures: Callable[[], dict[str, float]]) -> Billing:
    """Build the parts, load the terms, give them to the context (`cx.billing`) and the loop
    (periodic work); ConfigError for bad settings."""
    b = Billing(cx, loop_figures)
    with cx.engine.begin() as conn:
        b.licensing.ensure_row(conn, cx.clock())
        b.licensing.load(conn)
    cx.billing = b
    cfg = cx.cfg
    timers.add_background(cfg.metering_sample, b.tick)
    timers.add_background(cfg.usage_interval, b.account_usage, duty="usage accounting")
    timers.add_background(cfg.metrics_interval, b.sample_metrics)
    timers.add_background(cfg.metrics_retention, b.retention, duty="metrics retention")
    b.timers = timers
    b.serve_metrics()
    terms = b.licensing.terms
    if terms.installed is not None:
        log.info("worker licences: %d%s", terms.installed,
                 " (metered beyond)" if terms.metering_active else "")
    return b
