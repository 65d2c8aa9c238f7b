"""Storage parts against a real database (SQLite and PostgreSQL), with an injected `now`:
metric retention and downsampling, history for charts, usage accounting, overage batches."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import delete, func, insert, select

from supervisor import metering, metrics, usage
from supervisor.store import metrics as metric_store
from supervisor.store.billing_models import MetricSample, OverageBatch, OverageMinute, UsageDay
from supervisor.store.models import Attempt, Host, Job, Project

DAY, HOUR = 86400, 3600
NOW = 1_750_000_000.0 // HOUR * HOUR + 1234.5      # an arbitrary moment, not on a boundary


def put(conn, res, at, n, values):
    """A stored row: {series: value} for raw, {series: (mean, min, max)} for roll-ups."""
    names = metrics.series_order(values)
    flat = [x for name in names for x in ((values[name],) if res == 0 else values[name])]
    conn.execute(insert(MetricSample).values(res=res, at=at, n=n,
                                             layout=metric_store.layout_id(conn, names),
                                             data=metric_store._pack(flat)))


def rows(conn, res):
    """[(at, n, {series: (mean, min, max)})] of one tier, in time order."""
    names_of = metric_store.layouts(conn)
    return [(r.at, r.n, metric_store._decode(names_of[r.layout], res, r.data)) for r in conn.execute(
        select(MetricSample).where(MetricSample.res == res).order_by(MetricSample.at))]


def test_downsampling_keeps_raw_for_a_day_minutes_for_a_month_hours_for_years(engine):
    # Raw samples every 10 s for the last 3 days; host.cpu = the minute within the hour.
    start = NOW - 3 * DAY
    with engine.begin() as conn:
        lid = metric_store.layout_id(conn, ("host.cpu", "db.latency"))
        times = [start + 10 * i for i in range(int(3 * DAY // 10))]
        conn.execute(insert(MetricSample), [
            {"res": 0, "at": t, "n": 1, "layout": lid,
             "data": metric_store._pack([float(int(t // 60) % 60), 0.5])} for t in times])
        # Per-minute rows from 40 days ago (two hours of them) and an hour six years ago.
        old = (NOW - 40 * DAY) // HOUR * HOUR
        put(conn, 3600, NOW - 6 * 366 * DAY, 360, {"host.cpu": (1.0, 1.0, 1.0)})
        for i in range(120):
            put(conn, 60, old + i * 60, 6, {"host.cpu": (float(i % 2), 0.0, 1.0)})
    with engine.begin() as conn:
        done = metrics.downsample(conn, NOW)
    with engine.begin() as conn:
        raw, minute, hour = rows(conn, 0), rows(conn, 60), rows(conn, 3600)
    # Raw: only the last day.  Minutes: every finished minute of the three days (the last
    # month); the old ones, once in hours, are gone.  Hours: every finished hour.
    assert [at for at, _, _ in raw] == [t for t in times if t >= NOW - DAY]
    first, last = start // 60 * 60, NOW // 60 * 60
    assert [at for at, _, _ in minute] == [first + 60 * i for i in range(int(last - first) // 60)]
    assert all(n == 6 and v["host.cpu"] == (float(int(at // 60) % 60),) * 3
               and v["db.latency"] == (0.5, 0.5, 0.5) for at, n, v in minute[1:])
    assert sum(n for _, n, _ in minute) == len([t for t in times if t < last])
    old_hours = [(n, v["host.cpu"]) for at, n, v in hour if at < NOW - 30 * DAY]
    assert old_hours == [(360, (0.5, 0.0, 1.0))] * 2        # weighted means stay exact
    recent = [(at, n, v) for at, n, v in hour if at >= start // HOUR * HOUR + HOUR]
    assert len(recent) == int((NOW // HOUR * HOUR - (start // HOUR * HOUR + HOUR)) // HOUR)
    assert all(n == 360 and v["host.cpu"] == (29.5, 0.0, 59.0) for _, n, v in recent)
    assert done["dropped"] == len(times) - len(raw) + 120 + 1
    with engine.begin() as conn:                             # nothing twice
        assert metrics.downsample(conn, NOW) == {"raw": 0, "minute": 0, "dropped": 0}


def test_a_minute_is_rolled_up_once_it_has_ended(engine):
    m = (NOW - 2 * HOUR) // 60 * 60
    with engine.begin() as conn:
        for s in (0, 10, 20):
            metrics.store(conn, m + s, {"db.latency": 1.0})
        metrics.store(conn, m + 20, {"db.latency": 9.0})      # the same moment: kept once
        metrics.downsample(conn, m + 30)
        assert rows(conn, 60) == []
        metrics.store(conn, m + 30, {"db.latency": 5.0, "hosts.up": 3.0})
        metrics.downsample(conn, m + 60)
        [(at, n, values)] = rows(conn, 60)
    assert (at, n) == (m, 4)
    assert values == {"db.latency": (2.0, 1.0, 5.0), "hosts.up": (3.0, 3.0, 3.0)}


def test_history_joins_tiers_and_averages_to_a_resolution(engine):
    with engine.begin() as conn:
        for i in range(3):
            put(conn, 3600, NOW - 40 * DAY + i * HOUR, 360, {"hosts.up": (10.0, 10.0, 10.0)})
            put(conn, 60, NOW - 2 * DAY + i * 60, 6, {"hosts.up": (20.0, 20.0, 20.0)})
        for i in range(6):
            metrics.store(conn, NOW - 100 + i * 10, {"hosts.up": 30.0, "host.cpu": 1.0})
        metrics.store(conn, NOW - 5, {"host.cpu": 2.0})        # a sample without hosts.up
    with engine.connect() as conn:
        res, pts = metrics.history(conn, "hosts.up", NOW - 50 * DAY, NOW)
        assert res == 0.0 and [v for _, v in pts] == [10.0] * 3 + [20.0] * 3 + [30.0] * 6
        assert [t for t, _ in pts] == sorted(t for t, _ in pts)
        res, pts = metrics.history(conn, "hosts.up", NOW - 3 * DAY, NOW, resolution=DAY)
        assert res == DAY and [v for _, v in pts] == [20.0, 30.0]
        assert metrics.history(conn, "hosts.up", NOW + 10, NOW + 20) == (0.0, [])
        assert metrics.history(conn, "host.cpu", NOW - 60, NOW)[1][-1] == (NOW - 5, 2.0)


def _job(conn, project="show", user="ann"):
    pid = conn.execute(select(Project.id).where(Project.name == project)).scalar()
    if pid is None:
        pid = conn.execute(insert(Project).values(name=project, guaranteed=0)
                           .returning(Project.id)).scalar_one()
    return conn.execute(insert(Job).values(name="j", project_id=pid, user=user, priority=50,
                                           state="ACTIVE", killed=False, min_slots=0,
                                           flagged="", submitted_at=NOW - DAY)
                        .returning(Job.id)).scalar_one()


def _host(conn, name, slots):
    return conn.execute(insert(Host).values(
        name=name, hostname=name, os="linux", cores=slots, memory_mb=1000, slots_configured=slots,
        state="UP", last_seen=NOW, registered_at=NOW).returning(Host.id)).scalar_one()


def _attempt(conn, frame_id, job_id, host_id, start, stop, state="SUCCEEDED", slots=1, number=1):
    conn.execute(insert(Attempt).values(
        frame_id=frame_id, number=number, job_id=job_id, layer_id=1, host_id=host_id,
        host_name="h", state=state, slots=slots, memory=0, gpus=0, started_at=start,
        stopped_at=stop, reason=""))


def usage_rows(conn):
    return {(r.day, r.project, r.user): (round(r.slot_seconds, 6), round(r.worker_seconds, 6),
                                         r.succeeded, r.failed)
            for r in conn.execute(select(UsageDay))}


def test_usage_accounting_counts_each_ended_attempt_once(engine):
    midnight = NOW // DAY * DAY
    with engine.begin() as conn:
        a, b = _job(conn, "show", "ann"), _job(conn, "ads", "bob")
        h4 = _host(conn, "h4", 4)
        _attempt(conn, 1, a, h4, midnight - 600, midnight + 1200, slots=2)    # spans midnight
        _attempt(conn, 2, a, h4, midnight + 10, midnight + 70, state="FAILED")
        _attempt(conn, 3, b, h4, midnight + 10, midnight + 370, state="KILLED", slots=4)
        _attempt(conn, 4, b, h4, midnight + 20, None, state="RUNNING")
    today = usage.day_of(midnight)
    yesterday = usage.day_of(midnight - 1)
    with engine.begin() as conn:
        assert usage.account(conn, midnight + 2000) == 3
        assert usage.account(conn, midnight + 2000) == 0              # nothing twice
    with engine.begin() as conn:
        rows = usage_rows(conn)
    assert rows == {
        (yesterday, "show", "ann"): (600 * 2, 600 * 0.5, 0, 0),
        (today, "show", "ann"): (1200 * 2 + 60, 1200 * 0.5 + 60 * 0.25, 1, 1),
        (today, "ads", "bob"): (360 * 4, 360 * 1.0, 0, 0)}
    # The running attempt ends; a completion replayed late (stopped before the watermark, but
    # within the window) is counted once; one past the window is not.
    with engine.begin() as conn:
        conn.execute(Attempt.__table__.update().where(Attempt.frame_id == 4)
                     .values(state="SUCCEEDED", stopped_at=midnight + 80))
        _attempt(conn, 5, b, h4, midnight - 200, midnight - 100, slots=1)     # late, in window
        _attempt(conn, 6, b, h4, midnight - 9000, midnight - 8000, slots=1)   # too late
        assert usage.account(conn, midnight + 2100) == 2
        assert usage.account(conn, midnight + 2100) == 0
        rows = usage_rows(conn)
    assert rows[(today, "ads", "bob")] == (360 * 4 + 60, 360 + 15.0, 1, 0)
    assert rows[(yesterday, "ads", "bob")] == (100.0, 25.0, 1, 0)
    # Usage outlives the jobs and attempts it was counted from.
    with engine.begin() as conn:
        conn.execute(delete(Attempt))
        conn.execute(delete(Job))
        assert usage.account(conn, midnight + 2200) == 0
        by_project = usage.report(conn, yesterday, today, "project")
        by_user = usage.report(conn, today, today, "user")
    assert [(r["project"], r["succeeded"], r["failed"]) for r in by_project] == \
        [("ads", 2, 0), ("show", 1, 1)]
    assert by_project[1]["slot_hours"] == pytest.approx((1200 + 2460) / 3600, abs=1e-4)
    assert [r["user"] for r in by_user] == ["ann", "bob"]
    assert by_user[0]["worker_minutes"] == pytest.approx((600 + 15) / 60, abs=0.01)


def test_usage_report_rejects_bad_requests(engine):
    with engine.connect() as conn:
        for args, field in ((("2024-13-01", "2024-12-31", "project"), "start"),
                            (("2024-01-02", "2024-01-01", "project"), "end"),
                            (("2024-01-01", "2024-01-31", "host"), "by")):
            with pytest.raises(usage.UsageError) as info:
                usage.report(conn, *args)
            assert info.value.field == field


def test_overage_minutes_batch_once_per_quarter_hour(engine):
    q = int(NOW // 900) * 900
    closed = [(q - 900 + i * 60, 5, True) for i in range(15)] + [(q, 3, True), (q + 60, 2, False)]
    with engine.begin() as conn:
        assert metering.record_minutes(conn, closed, installed=2, rate=Decimal("0.10")) == 16
        # A second supervisor closing the same minutes writes nothing more.
        metering.record_minutes(conn, closed[:3], installed=2, rate=Decimal("0.10"))
        assert metering.make_batches(conn, q + 30, "site", "sv") == []     # within the grace
        [bid] = metering.make_batches(conn, q + 90, "site", "sv")
        assert metering.make_batches(conn, q + 90, "site", "sv") == []
        batch = conn.execute(select(OverageBatch)).one()
        left = conn.execute(select(func.count()).select_from(OverageMinute)
                            .where(OverageMinute.batch_id.is_(None))).scalar()
    assert batch.id == bid and batch.worker_minutes == 45 and left == 1
    assert batch.cost_micros == 75_000                        # 45 minutes at $0.10/h: $0.075
    assert batch.payload["cost"] == "0.075000" and batch.payload["rate_per_worker_hour"] == \
        "0.100000"
    assert batch.payload["period_start"] == q - 900 and len(batch.payload["minutes"]) == 15
    with engine.begin() as conn:
        assert metering.pending_batches(conn) == [(bid, batch.payload)]
        metering.apply_results(conn, [metering.Delivery(bid, False, error="503")], NOW)
        metering.apply_results(conn, [metering.Delivery(bid, True)], NOW)
        assert metering.pending_batches(conn) == []
        assert metering.month_totals(conn, q - 900, q + 900) == (46, Decimal("0.076667"))
        [row] = metering.batch_rows(conn)
    assert (row["state"], row["tries"], row["cost"]) == ("accepted", 2, "0.075000")


def test_money_is_exact_600_minutes_at_ten_cents_an_hour_is_one_dollar(engine):
    # As floats these summed to 1.0000000000000095; in micro-dollars they are exactly $1.
    q = int(NOW // 900) * 900 - 40 * 900
    closed = [(q + 60 * i, 2, True) for i in range(600)]
    with engine.begin() as conn:
        assert metering.record_minutes(conn, closed, installed=1, rate=Decimal("0.1")) == 600
        ids = metering.make_batches(conn, q + 600 * 60 + 900, "site", "sv")
        costs = [Decimal(r["cost"]) for r in metering.batch_rows(conn, 1000)]
        total = metering.month_totals(conn, q, q + 600 * 60)
    assert len(ids) == 40 and all(c == Decimal("0.025") for c in costs)
    assert sum(costs) == Decimal("1") and total == (600, Decimal("1.000000"))
    # A third of a cent a minute does not divide evenly: the batch is rounded once, half up.
    with engine.begin() as conn:
        m = q + 700 * 60
        metering.record_minutes(conn, [(m, 2, True)], installed=1, rate=Decimal("0.2"))
        [bid] = metering.make_batches(conn, m + 2000, "site", "sv")
        payload = conn.execute(select(OverageBatch.payload)
                               .where(OverageBatch.id == bid)).scalar_one()
    assert payload["cost"] == "0.003333" and payload["minutes"][0]["rate"] == "0.200000"


def test_directory_sink(tmp_path):
    d = tmp_path / "spool"
    payload = {"batch_id": "b1", "worker_minutes": 3}
    assert metering.write_file(str(d), "b1", payload).accepted
    assert metering.write_file(str(d), "b1", payload).accepted          # the same batch again
    assert [p.name for p in d.iterdir()] == ["cuefarm-overage-b1.json"]
    (d / "REVOKED").write_text("contract ended")
    got = metering.write_file(str(d), "b2", payload)
    assert got.accepted and got.revoked and "contract ended" in got.error
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert not metering.write_file(str(blocked), "b3", payload).accepted


def test_minutes_missed_by_the_meter_are_rebuilt_from_attempt_times(engine):
    m0 = int(NOW // 60) * 60
    with engine.begin() as conn:
        j = _job(conn)
        h1, h2 = _host(conn, "r1", 2), _host(conn, "r2", 1)
        _attempt(conn, 1, j, h1, m0 + 10, m0 + 130)                 # minutes 0, 1, 2
        _attempt(conn, 2, j, h1, m0 + 20, m0 + 50)                  # the same worker: once
        _attempt(conn, 3, j, h2, m0 + 170, None, state="RUNNING")   # minute 2 on, still running
        _attempt(conn, 4, j, h2, m0 - 600, m0 - 500)                # before the window
        got = metering.rebuild_minutes(conn, m0, m0 + 300)
        assert got == [(m0, 1), (m0 + 60, 1), (m0 + 120, 2), (m0 + 180, 1), (m0 + 240, 1)]
        # Written as overage past one licence, keyed by minute: never twice.
        closed = [(m, n, True) for m, n in got]
        assert metering.record_minutes(conn, closed, 1, Decimal("0.1")) == 1
        metering.record_minutes(conn, closed, 1, Decimal("0.1"))
        assert conn.execute(select(func.count()).select_from(OverageMinute)).scalar() == 1
