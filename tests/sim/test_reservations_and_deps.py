"""More scheduling rules on the in-process farm (both databases): GPU reservations, per-job slot
bounds, priority changes while frames run, dependencies on work that ends DEAD, and the
bad-host answer of why."""

from __future__ import annotations

from tests.scheduling.sim import Ledger
from tests.jobs import job, layer


def test_gpu_reservations_never_oversubscribe_and_need_gpus(farm):
    c = farm.client()
    farm.add_worker("g2", slots=8, runtime=0.2, gpus=2)
    farm.add_worker("g1", slots=8, runtime=0.2, gpus=1)
    farm.add_worker("cpu", slots=8, runtime=0.2)
    [two, one] = c.submit([job("two", [layer("t", 6, gpus=2)]),
                           job("one", [layer("o", 6, gpus=1)])])
    farm.run_until_done([two, one])
    ledger = Ledger.of(farm.ledger)
    gpus = {"two": 2, "one": 1}
    peak = ledger.peak(lambda r: r.worker, lambda r: gpus[r.launch.job])
    assert "cpu" not in peak                       # no GPUs: never chosen
    assert peak["g2"] <= 2 and peak.get("g1", 0) <= 1
    assert {r.worker for r in ledger.runs if r.launch.job == "two"} == {"g2"}
    assert c.job(two)["succeeded"] == 6 and c.job(one)["succeeded"] == 6


def test_job_max_slots_caps_and_min_slots_goes_before_priority(farm):
    c = farm.client()
    farm.add_worker("h0", slots=4, runtime=0.15)
    c.lock("h0")
    # Without min_slots the high-priority job would take every slot.
    [high, low] = c.submit([job("high", [layer("a", 16)], priority=90),
                            job("low", [layer("b", 16)], priority=10, min_slots=3)])
    [capped] = c.submit([job("capped", [layer("c", 8)], priority=50, max_slots=1)])
    c.unlock("h0")
    farm.run_until_done([high, low, capped])
    ledger = Ledger.of(farm.ledger)
    first = [r.launch.job for r in ledger.runs[:4]]
    assert first.count("low") == 3, first
    peak = ledger.peak(lambda r: r.launch.job, lambda r: r.launch.slots)
    assert peak["capped"] == 1 and peak["low"] >= 3 and peak["high"] >= 1
    assert ledger.peak(lambda r: r.worker, lambda r: r.launch.slots)["h0"] <= 4


def test_priority_change_does_not_kill_running_frames(farm):
    c = farm.client()
    farm.add_worker("h0", slots=2, runtime=1.0)
    [running] = c.submit([job("run", [layer("r", 2)], priority=10)])
    assert c.job(running)["running"] == 2
    [urgent] = c.submit([job("urgent", [layer("u", 2)], priority=90)])
    assert c.set_priority(running, 1) == 1
    assert c.job(running)["running"] == 2 and c.job(urgent)["running"] == 0
    farm.run_until_done([running, urgent])
    frames = c.frames(running)
    assert all(f["state"] == "SUCCEEDED" and f["attempt"] == 1 and f["retries"] == 0
               for f in frames), frames
    ledger = Ledger.of(farm.ledger)
    assert len(ledger.runs) == 4                   # nothing was killed and started again
    assert c.job(urgent)["succeeded"] == 2


def test_dependencies_on_dead_work_wait_and_why_says_so(farm):
    c = farm.client()
    farm.add_worker("bad", slots=2, runtime=0.05, exit_status=1)
    [upstream] = c.submit([job("up", [layer("r", 2)])])
    [per_frame, on_job] = c.submit([
        job("pf", [layer("src", 2), layer("dst", 2,
                                          depends_on=[{"layer": "src", "per_frame": True}])]),
        job("oj", [layer("w", 1, depends_on=[{"job": upstream}])])])
    farm.advance_until(lambda: c.job(upstream)["dead"] == 2 and c.job(per_frame)["dead"] == 2,
                       30, step=0.05)
    assert {f["state"] for f in c.frames(per_frame, layer="dst")} == {"DEPEND"}
    assert [f["state"] for f in c.frames(on_job)] == ["DEPEND"]
    frame_reasons = " ".join(c.why(per_frame, layer="dst")["reasons"])
    assert "frame by frame on layer 'src'" in frame_reasons and "DEAD there" in frame_reasons
    assert "DEAD there" in " ".join(c.why(per_frame, layer="dst", frame=1)["reasons"])
    job_reasons = " ".join(c.why(on_job)["reasons"])
    assert f"waiting for job {upstream}" in job_reasons and "DEAD frames" in job_reasons


def test_why_names_the_bad_host_list_when_it_excludes_every_matching_host(farm):
    c = farm.client()
    farm.add_worker("gpu-a", slots=1, runtime=0.05, tags=["gpu"], exit_status=1)
    farm.add_worker("cpu-a", slots=1, runtime=0.05)
    [jid] = c.submit([job("bh", [layer("r", 10, tags=["gpu"], max_retries=10)])])
    farm.advance_until(lambda: c.job(jid)["state"] == "PAUSED", 30, step=0.05)
    c.resume(jid)                                  # the ban stands: nothing can run it
    assert c.job(jid)["running"] == 0
    reasons = c.why(jid)["reasons"]
    assert reasons == ["the bad-host list of this job excludes the only matching hosts: gpu-a "
                       f"(clear them with cuefarm job badhosts {jid} --all, or retry/resume "
                       "with --clear-bans)"]
