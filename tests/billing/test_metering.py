"""Metered overage against a real supervisor whose wall clock runs 600 times faster (an hour
passes in six seconds), simulated workers, and a metering sink over real HTTP."""

from __future__ import annotations

import json
import signal
import time
from decimal import ROUND_HALF_UP, Decimal

from click.testing import CliRunner

from cuefarm.cli import cli
from supervisor.billing import month_bounds
from tests.billing.helpers import FastClock, FastFleetThread, configure, expected_overage, \
    peak_busy_workers, peak_frames_on_one_worker, to_wall
from tests.farm import wait_until
from tests.jobs import job, layer
from tests.scheduling.sim import wait_finished



def metered_farm(new_farm, sink, clock, licences=1):
    farm = configure(new_farm(), clock, worker_licences=licences, metering="true",
                     metering_sink=sink.url, metering_sample=0.05, metering_retry=0.3)
    farm.start_supervisor()
    return farm


def drained(c, clock, after):
    """Every overage minute up to `after` (simulated) is closed, batched and delivered: the
    last minute closes within a minute, its quarter hour is batched a minute after it ends."""
    def check():
        s = c.licences()
        return (clock() > after + 17 * 60 and s["pending_reports"] == 0
                and s["unreported_minutes"] == 0)
    return check


def test_overage_is_billed_per_minute_and_reported_once(new_farm, sink):
    clock = FastClock()
    farm = metered_farm(new_farm, sink, clock)
    c = farm.client()
    sink.fail_next = 2           # the sink is down at first...
    sink.lose_answers = 1        # ...then records a batch but its answer is lost
    names = [f"w{i}" for i in range(3)]
    fleet = FastFleetThread(farm.address, [{"name": n, "slots": 1} for n in names], runtime=1.0,
                            clock=clock)
    farm.wait_hosts_up(names)
    t0 = clock()
    # Three workers busy for about two simulated hours:
    [jid] = c.submit(job("long", [layer(frames=36)]))
    wait_until(lambda: c.licences()["overage_now"] == 2, 30, message="overage of 2 workers")
    wait_until(lambda: any(r["state"] == "accepted" for r in c.licence_reports()), 60,
               message="a report accepted")

    # The sink goes away; reports pile up; the supervisor is killed and comes back.
    sink.down = True
    wait_until(lambda: any(r["state"] == "pending" and r["tries"] > 0
                           for r in c.licence_reports()), 60, message="a report waiting")
    waiting = {r["id"] for r in c.licence_reports() if r["state"] == "pending"}
    farm.kill_supervisor(signal.SIGKILL)
    time.sleep(1.0)      # ten simulated minutes with no supervisor: the workers run on
    farm.start_supervisor()
    c = farm.client()
    sink.down = False
    wait_finished(c, [jid], 120)
    t_done = clock()
    wait_until(drained(c, clock, t_done), 90, message="all overage reported")
    events = fleet.close()

    reports = c.licence_reports(1000)
    assert reports and all(r["state"] == "accepted" for r in reports)
    assert {r["id"] for r in reports} == set(sink.batches)          # nothing lost...
    assert waiting <= set(sink.batches)                             # ...across the restart
    assert sink.duplicates >= 1 and sink.mismatched == []           # re-sent, same batch
    minutes = sink.minutes()
    assert len(minutes) == len(set(minutes))                        # no minute twice
    assert all(m % 60 == 0 for m in minutes)
    for b in sink.batches.values():
        assert {m["minute"] // 900 * 900 for m in b["minutes"]} == {b["period_start"]}
        assert all(1 <= m["workers"] <= 2 and m["workers"] == m["busy"] - 1
                   for m in b["minutes"])
        assert b["worker_minutes"] == sum(m["workers"] for m in b["minutes"])
        assert b["cost"] == str((Decimal(b["worker_minutes"]) * Decimal("0.1") / 60)
                                .quantize(Decimal("0.000001"), ROUND_HALF_UP))
    # Against the workers' own record: every minute with more than one worker busy, the
    # minutes of the outage included, billed within a minute per busy span.
    total = sink.worker_minutes()
    expected, spans = expected_overage(events, 1, to_wall(clock), t0 - 60, t_done + 60)
    assert expected > 0 and abs(total - expected) <= spans, (total, expected, spans)
    cost = sum(Decimal(b["cost"]) for b in sink.batches.values())
    # Within the minutes' allowance, plus half a micro-dollar a batch: each batch's cost is
    # rounded to micro-dollars (a run off by exactly the allowance failed by 0.0000003).
    rounding = len(sink.batches) * Decimal("0.0000005")
    assert abs(cost - Decimal(expected) * Decimal("0.1") / 60) <= \
        spans * Decimal("0.1") / 60 + rounding
    assert sum(r["worker_minutes"] for r in reports) == total
    status = c.licences()
    if status["month"] == month_bounds(t0)[2]:       # the simulated hours stayed in one month
        assert status["month_minutes"] == total
        assert Decimal(status["month_cost"]) == (Decimal(total) * Decimal("0.1") / 60).quantize(
            Decimal("0.000001"), ROUND_HALF_UP)
    assert status["overage_now"] == 0 and status["metering_active"]


def test_revocation_returns_to_the_prepaid_count(new_farm, sink):
    clock = FastClock()
    farm = metered_farm(new_farm, sink, clock)
    c = farm.client()
    sink.revoke = True                    # the next report is answered: no longer authorized
    names = [f"w{i}" for i in range(3)]
    fleet = FastFleetThread(farm.address, [{"name": n, "slots": 1} for n in names], runtime=0.5,
                            clock=clock)
    farm.wait_hosts_up(names)
    [a] = c.submit(job("before", [layer(frames=15)]))
    wait_until(lambda: c.licences()["revoked"], 60, message="metering revoked")
    status = c.licences()
    assert (status["metered"], status["metering_active"], status["cap"]) == (True, False, 1)
    assert "contract ended" in status["revoked_reason"]
    wait_finished(c, [a], 120)
    [b] = c.submit(job("after", [layer(frames=6)]))
    wait_finished(c, [b], 120)
    events = fleet.close()
    assert peak_busy_workers(events, "before") == 3     # metered: past the one licence
    assert peak_busy_workers(events, "after") == 1      # revoked: the prepaid count holds
    # An admin switching metering on again re-authorizes it.
    status = c.set_licences(metered=True)
    assert (status["revoked"], status["metering_active"], status["cap"]) == (False, True, None)


def test_after_revocation_busy_workers_drain_down_to_the_prepaid_count(new_farm, sink):
    clock = FastClock()
    farm = metered_farm(new_farm, sink, clock)
    c = farm.client()
    names = [f"w{i}" for i in range(3)]
    fleet = FastFleetThread(farm.address, [{"name": n, "slots": 2} for n in names], runtime=0.6,
                            clock=clock)
    farm.wait_hosts_up(names)
    # One frame on each worker, then more work than the test lets finish half a run later:
    # each worker's two slots end at different times, so none ever goes idle by itself.
    [first] = c.submit(job("first", [layer(frames=3)]))
    wait_until(lambda: c.licences()["in_use"] == 3, 30, message="metered: three workers busy")
    time.sleep(0.3)
    [jid] = c.submit(job("continuous", [layer(frames=2000)]))
    wait_until(lambda: c.job(jid)["running"] == 3, 30, message="every slot busy")
    sink.revoke = True
    wait_until(lambda: c.licences()["revoked"], 60, message="metering revoked")
    # Revoked: no overage, whatever is still running past the count.
    assert c.licences()["overage_now"] == 0
    got = CliRunner().invoke(cli, ["--supervisor", farm.address, "licences"])
    assert got.exit_code == 0 and "0 (enforcing the installed count)" in got.output, got.output
    # The workers past the one licence start nothing new and drain; the work goes on.
    wait_until(lambda: c.licences()["in_use"] == 1, 30, message="busy workers down to 1")
    drained_at = time.monotonic()
    done = c.job(jid)["succeeded"]
    wait_until(lambda: c.job(jid)["succeeded"] >= done + 12, 60, message="work continues")
    assert c.licences()["in_use"] == 1 and c.job(jid)["waiting"] > 0
    c.kill([first, jid])
    events = fleet.close()
    later = {obj.attempt_id for kind, t, _, obj in events if kind == "launch" and t > drained_at}
    after = [e for e in events if (e[3].attempt_id if e[0] == "launch" else e[3]) in later]
    assert peak_busy_workers(events) == 3                  # metered: past the licence
    assert len(later) >= 12 and peak_busy_workers(after) == 1
    assert peak_frames_on_one_worker(after) == 2           # the holder keeps both slots busy


def test_a_403_parks_reports_until_metering_is_switched_back_on(new_farm, sink):
    clock = FastClock()
    farm = metered_farm(new_farm, sink, clock)
    c = farm.client()
    sink.forbid = True                          # the sink answers 403 over real HTTP
    names = [f"w{i}" for i in range(3)]
    fleet = FastFleetThread(farm.address, [{"name": n, "slots": 1} for n in names], runtime=0.5,
                            clock=clock)
    farm.wait_hosts_up(names)
    [jid] = c.submit(job("j", [layer(frames=15)]))
    wait_until(lambda: c.licences()["revoked"], 60, message="metering revoked by the 403")
    status = c.licences()
    assert "HTTP 403" in status["revoked_reason"] and status["cap"] == 1
    wait_finished(c, [jid], 120)
    wait_until(drained(c, clock, clock()), 60, message="every minute in a report")
    fleet.close()
    reports = c.licence_reports(1000)
    refused = {r["id"] for r in reports if r["state"] == "refused"}
    # Parked, not retried: each was tried once (a retried batch would be tried every 0.3 s).
    assert refused and all(r["tries"] == 1 and "HTTP 403" in r["last_error"]
                           for r in reports if r["id"] in refused)
    assert sink.forbidden == len(refused) and sink.batches == {}
    assert c.licences()["refused_reports"] == len(refused)
    got = CliRunner().invoke(cli, ["--supervisor", farm.address, "licences"])
    assert f"{len(refused)} refused by the sink" in got.output
    # The sink allows it again and an admin re-authorizes: the refused reports go, once each.
    sink.forbid = False
    c.set_licences(metered=True)
    wait_until(lambda: all(r["state"] == "accepted" for r in c.licence_reports(1000)), 60,
               message="the refused reports delivered")
    assert refused <= set(sink.batches) and sink.mismatched == []
    assert c.licences()["refused_reports"] == 0


def test_directory_sink_and_its_revoked_file(new_farm, tmp_path):
    clock = FastClock()
    spool = tmp_path / "spool"
    spool.mkdir()
    farm = configure(new_farm(), clock, worker_licences=1, metering="true",
                     metering_sink=str(spool), metering_sample=0.05, metering_retry=0.3)
    farm.start_supervisor()
    c = farm.client()
    names = [f"w{i}" for i in range(2)]
    fleet = FastFleetThread(farm.address, [{"name": n, "slots": 1} for n in names], runtime=0.5,
                            clock=clock)
    farm.wait_hosts_up(names)
    [jid] = c.submit(job("j", [layer(frames=12)]))
    wait_until(lambda: any(r["state"] == "accepted" for r in c.licence_reports()), 60,
               message="a report written")
    (spool / "REVOKED").write_text("contract ended\n")
    wait_until(lambda: c.licences()["revoked"], 60, message="REVOKED read")
    status = c.licences()
    assert "contract ended" in status["revoked_reason"] and status["cap"] == 1
    wait_finished(c, [jid], 120)
    wait_until(drained(c, clock, clock()), 60, message="every report written")
    fleet.close()
    reports = c.licence_reports(1000)
    files = {p.name: json.loads(p.read_text()) for p in spool.glob("cuefarm-overage-*.json")}
    assert reports and all(r["state"] == "accepted" for r in reports)
    assert set(files) == {f"cuefarm-overage-{r['id']}.json" for r in reports}
    for r in reports:
        body = files[f"cuefarm-overage-{r['id']}.json"]
        assert body["batch_id"] == r["id"] and body["cost"] == r["cost"]
        assert body["worker_minutes"] == r["worker_minutes"] > 0
    assert not list(spool.glob(".*.tmp"))                  # written whole, then renamed
    (spool / "REVOKED").unlink()
    assert c.set_licences(metered=True)["metering_active"]
