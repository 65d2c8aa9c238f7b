"""Supervisor metrics (Prometheus over HTTP, the client API, the CLI) and usage accounting,
against a real supervisor on both databases."""

from __future__ import annotations

import csv
import io
import signal
import urllib.request

import pytest
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from cuefarm import Client, CueFarmError
from cuefarm.cli import cli
from supervisor.store.billing_models import MetricSample
from supervisor.store.engine import make_engine
from supervisor.usage import day_of
from tests.billing.helpers import FastClock, FastFleetThread, configure
from tests.farm import free_port_block, wait_until
from tests.scheduling.sim import wait_finished


def scrape(port: int) -> dict:
    """{family name: family} from the endpoint, over real HTTP."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(families, name, **labels):
    for s in families[name].samples:
        if s.labels == labels and s.name in (name, name + "_total"):
            return s.value
    raise KeyError((name, labels))


def test_prometheus_endpoint_and_metrics_api(new_farm):
    port = free_port_block(1)
    farm = configure(new_farm(), metrics_port=port, metrics_interval=0.2, worker_licences=5)
    farm.start_supervisor()
    c = farm.client()
    fleet = FastFleetThread(farm.address, [{"name": "m0", "slots": 2}, {"name": "m1", "slots": 2}],
                            runtime=0.3, clock=FastClock(1.0))
    farm.wait_hosts_up(["m0", "m1"])
    [jid] = c.submit({"name": "j", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-20"}]})
    # Farm slots from the live registry: 4 open, and some in use while the job runs.
    busy = wait_until(lambda: (lambda r: r if r["slots.used"]["value"] else None)(
        {r["name"]: r for r in c.metrics()}), 30, 0.1, message="slots in use sampled")
    assert busy["slots.total"]["value"] == 4 and 1 <= busy["slots.used"]["value"] <= 4
    wait_finished(c, [jid])

    def settled():
        fams = scrape(port)
        return fams if (value(fams, "cuefarm_hosts", state="up") == 2
                        and value(fams, "cuefarm_frames", state="waiting") == 0
                        and value(fams, "cuefarm_frames_dispatched") >= 20
                        and value(fams, "cuefarm_slots_used") == 0) else None
    fams = wait_until(settled, 30, 0.2, message="a sample taken after the job ended")
    fleet.close()
    assert fams["cuefarm_frames_dispatched"].type == "counter"
    assert fams["cuefarm_frames"].type == "gauge"
    assert value(fams, "cuefarm_frames", state="running") >= 0
    assert value(fams, "cuefarm_hosts", state="down") == 0
    assert value(fams, "cuefarm_worker_licences_installed") == 5
    assert 0 <= value(fams, "cuefarm_supervisor_host_cpu_ratio") <= 1
    assert 0 < value(fams, "cuefarm_supervisor_host_memory_ratio") < 1
    assert value(fams, "cuefarm_supervisor_process_resident_memory_bytes") > 1 << 20
    assert value(fams, "process_resident_memory_bytes") > 1 << 20     # the standard ones too
    assert value(fams, "cuefarm_database_roundtrip_seconds") > 0
    assert value(fams, "cuefarm_slots_total") == 4
    # Rates come from the counters in Prometheus, not as precomputed gauges.
    assert "cuefarm_dispatch_rate_per_second" not in fams
    assert "cuefarm_report_rate_per_second" not in fams
    assert fams["cuefarm_worker_reports"].type == "counter"
    assert value(fams, "cuefarm_worker_licences_overage") == 0     # prepaid: never overage
    assert "cuefarm_worker_licence_overage" not in fams
    for name in ("cuefarm_supervisor_host_load1", "cuefarm_hosts_locked",
                 "cuefarm_worker_licences_in_use", "cuefarm_event_backlog_rows",
                 "cuefarm_worker_reports", "cuefarm_frame_completions"):
        assert name in fams, name

    rows = {r["name"]: r for r in c.metrics()}
    assert rows["hosts.up"]["value"] == 2 and rows["db.latency"]["unit"] == "s"
    assert rows["frames.waiting"]["prometheus"] == "cuefarm_frames"
    assert rows["dispatch.rate"]["prometheus"] is None and rows["dispatch.rate"]["value"] >= 0
    # Which figures are the farm's and which this supervisor's, and which supervisor it is.
    assert rows["hosts.up"]["scope"] == rows["licences.in_use"]["scope"] == "farm"
    assert rows["slots.used"]["scope"] == rows["process.rss"]["scope"] == "supervisor"
    assert rows["hosts.up"]["supervisor"].endswith(f":{farm.port}")
    [info] = fams["cuefarm_supervisor_info"].samples
    assert info.value == 1 and info.labels["supervisor"] == rows["hosts.up"]["supervisor"]
    now = rows["hosts.up"]["t"]
    points = c.metric_history("hosts.up", now - 3600, now + 1)
    assert points and points[-1][1] == 2 and all(now - 3600 <= t <= now + 1 for t, _ in points)
    # The series the GUI's slot chart asks for.
    used = c.metric_history("slots.used", now - 3600, now + 1)
    total = c.metric_history("slots.total", now - 3600, now + 1)
    assert max(v for _, v in used) >= 1 and used[-1][1] == 0
    assert total and all(v == 4 for _, v in total[-3:])
    coarse = c.metric_history("hosts.up", now - 3600, now + 1, resolution=600)
    assert 1 <= len(coarse) <= 7
    with pytest.raises(CueFarmError) as info:
        c.metric_history("no.such", now - 60, now)
    assert info.value.field == "series"
    with pytest.raises(CueFarmError) as info:
        c.metric_history("hosts.up", now, now - 60)
    assert info.value.field == "end"
    got = CliRunner().invoke(cli, ["--supervisor", farm.address, "metrics"])
    assert got.exit_code == 0 and "hosts.up" in got.output and "db.latency" in got.output


def test_usage_per_project_user_and_day(new_farm):
    clock = FastClock()
    farm = configure(new_farm(), clock, usage_interval=0.2)
    farm.start_supervisor()
    fleet = FastFleetThread(farm.address, [{"name": "good", "slots": 2},
                                           {"name": "bad", "slots": 1, "fail": True}],
                            runtime=0.3, clock=clock)
    farm.wait_hosts_up(["good", "bad"])
    ann, bob = Client(farm.address, user="ann"), Client(farm.address, user="bob")
    first_day = day_of(clock())
    [a] = ann.submit({"name": "a", "project": "show", "layers": [
        {"name": "r", "command": ["true"], "range": "1-6", "hosts": ["good"]}]})
    [b] = bob.submit({"name": "b", "project": "ads", "layers": [
        {"name": "r", "command": ["false"], "range": "1-3", "hosts": ["bad"],
         "max_retries": 0}]})
    wait_finished(ann, [a, b])
    fleet.close()
    last_day = day_of(clock())

    def counted():
        rows = {r["project"]: r for r in ann.usage(first_day, last_day, "project")}
        return rows if rows.get("show", {}).get("succeeded") == 6 \
            and rows.get("ads", {}).get("failed") == 3 else None
    by_project = wait_until(counted, 30, 0.2, message="usage counted")
    # Slot-hours are the frames' own run times times their slots, as the supervisor recorded.
    frames = ann.frames(a)
    expected = sum(f["runtime"] for f in frames) / 3600
    assert by_project["show"]["slot_hours"] == pytest.approx(expected, abs=2e-4)
    assert by_project["show"]["worker_minutes"] == pytest.approx(expected * 60 / 2, abs=0.02)
    assert (by_project["show"]["failed"], by_project["ads"]["succeeded"]) == (0, 0)
    by_user = {r["user"]: r for r in ann.usage(first_day, last_day, "user")}
    assert by_user["ann"]["slot_hours"] == by_project["show"]["slot_hours"]
    assert by_user["bob"]["failed"] == 3
    by_day = ann.usage(first_day, last_day, "day")
    assert sum(r["succeeded"] for r in by_day) == 6

    runner = CliRunner()
    got = runner.invoke(cli, ["--supervisor", farm.address, "usage", "--from", first_day,
                              "--to", last_day, "--by", "user", "--csv"])
    assert got.exit_code == 0, got.output
    table = list(csv.DictReader(io.StringIO(got.output)))
    assert {r["user"]: int(r["failed"]) for r in table} == {"ann": 0, "bob": 3}
    got = runner.invoke(cli, ["--supervisor", farm.address, "usage", "--from", "2024-02-30"])
    assert got.exit_code == 2 and "not a date" in got.output
    with pytest.raises(CueFarmError) as info:
        ann.usage(last_day, first_day if first_day < last_day else "2000-01-01")
    assert info.value.field == "end"
    with pytest.raises(CueFarmError) as info:
        ann.usage(first_day, last_day, by="host")
    assert info.value.field == "by"
    ann.close()
    bob.close()


def test_retention_and_downsampling_in_a_running_supervisor(new_farm, db_url):
    # A simulated day passes in ten seconds; samples every 0.05 s (7.2 simulated minutes),
    # roll-ups and retention every 0.5 s (72 simulated minutes).
    clock = FastClock(8640.0)
    farm = configure(new_farm(), clock, metrics_interval=0.05, metrics_retention=0.5)
    farm.start_supervisor()
    c = farm.client()
    engine = make_engine(db_url)
    try:
        def tiers():
            with engine.connect() as conn:
                return {res: (n, lo, hi) for res, n, lo, hi in conn.execute(
                    select(MetricSample.res, func.count(), func.min(MetricSample.at),
                           func.max(MetricSample.at)).group_by(MetricSample.res))}

        first = wait_until(lambda: tiers().get(0), 30, 0.1, message="a first sample")[1]
        started = first

        def aged():
            t = tiers()
            return t if (0 in t and t[0][1] > started + 3600 and 60 in t and 3600 in t
                         and clock() > started + 1.3 * 86400) else None
        t = wait_until(aged, 120, 0.2, message="a simulated day and more of samples")
        # History over the whole run reads the tiers together, from the start.
        points = c.metric_history("hosts.up", started - 60, clock())
        now = clock()
        t = tiers()
        farm.kill_supervisor(signal.SIGTERM)
    finally:
        engine.dispose()
    raw, minute, hour = t[0], t[60], t[3600]
    # Raw: nothing older than a day (give or take a few retention intervals, which the loop
    # may run late on a busy machine), the first samples gone.
    assert raw[1] >= now - 86400 - 4 * 0.5 * clock.factor and raw[1] > started + 3600
    # Minutes and hours: from the first samples on, each tier its own buckets.
    assert minute[1] == first // 60 * 60 and minute[0] >= 100
    assert hour[1] == first // 3600 * 3600 and hour[0] >= 24
    # The last hour rolled up: its bucket's start, with the same allowance for a late loop.
    late = 3600 + 4 * 0.5 * clock.factor
    assert hour[2] >= now - late
    assert points and points[0][0] <= started and points[-1][0] >= now - late
