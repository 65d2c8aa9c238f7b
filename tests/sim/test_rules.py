"""Each scheduling rule on the in-process farm: the real supervisor core and store (both
databases), simulated workers, simulated time."""

from __future__ import annotations

from collections import defaultdict

import pytest

from cuefarm import CueFarmError
from tests.jobs import job, layer
from tests.scheduling.sim import Ledger


def average_slots(ledger: Ledger, key, t0: float, t1: float) -> dict:
    """Time-weighted mean of running slots per key(run) over [t0, t1]."""
    acc = defaultdict(float)
    for r in ledger.runs:
        lo, hi = max(r.start, t0), min(r.end, t1)
        if hi > lo:
            acc[key(r)] += (hi - lo) * r.launch.slots
    return {k: v / (t1 - t0) for k, v in acc.items()}


def test_fair_share_converges_to_guarantees(farm):
    c = farm.client()
    c.set_project("big", guaranteed=6)
    c.set_project("small", guaranteed=2)
    farm.add_worker("h0", slots=4, runtime=0.2)
    farm.add_worker("h1", slots=4, runtime=0.2)
    c.lock(["h0", "h1"])
    # The small project has the higher priority: without guarantees it would take everything.
    ids = c.submit([job("b", [layer(frames=400)], project="big", priority=10),
                    job("s", [layer(frames=400)], project="small", priority=90)])
    c.unlock(["h0", "h1"])
    farm.advance_until(lambda: c.job(ids[1])["succeeded"] >= 30, 60, step=0.2)
    ledger = Ledger.of(farm.ledger)
    # Measured while both projects had work waiting: from the first launches to the last.
    t0, t1 = ledger.runs[0].start, ledger.runs[-1].start
    share = average_slots(ledger, lambda r: r.launch.project, t0, t1)
    assert share == pytest.approx({"big": 6.0, "small": 2.0})   # 6 of 8 guaranteed: 0.75
    # ... from the very first pass: every slot busy, six for big and two for small
    assert ledger.peak(lambda r: r.launch.project, lambda r: r.launch.slots) == {
        "big": 6, "small": 2}


def test_project_maximum_is_never_exceeded(farm):
    c = farm.client()
    c.set_project("capped", max_slots=3)
    farm.add_worker("h0", slots=8, runtime=0.05)
    [jid] = c.submit([job("c", [layer(frames=30)], project="capped")])
    assert farm.run_until_done([jid])[0]["succeeded"] == 30
    ledger = Ledger.of(farm.ledger)
    assert ledger.peak(lambda r: r.launch.project, lambda r: r.launch.slots)["capped"] == 3
    with pytest.raises(CueFarmError) as info:
        c.set_project("capped", guaranteed=5)
    assert info.value.field == "guaranteed"


def test_priority_order_among_equals(farm):
    c = farm.client()
    farm.add_worker("solo", slots=1, runtime=0.05)
    c.lock("solo")
    ids = c.submit([job("p10", [layer(frames=1)], priority=10),
                    job("p50a", [layer(frames=1)], priority=50),
                    job("p30", [layer(frames=1)], priority=30),
                    job("p50b", [layer(frames=1)], priority=50)])
    assert [r["job"] for r in c.next_for_host("solo")] == ["p50a", "p50b", "p30", "p10"]
    c.unlock("solo")
    farm.run_until_done(ids)
    order = [r.launch.job for r in Ledger.of(farm.ledger).runs]
    assert order == ["p50a", "p50b", "p30", "p10"]


def test_reservations_plus_all_memory_and_qube_form(farm):
    c = farm.client()
    farm.add_worker("big", slots=8, runtime=0.05, memory_mb=4000)
    ids = c.submit([job("plus", [layer("a", 2, slots="3+")]),
                    job("qube", [layer("b", 1,
                                       reservations="host.processors=2+,host.memory=1000")]),
                    job("whole", [layer("c", 2, slots="all")]),
                    job("mem", [layer("d", 3, memory=3000)])])
    farm.run_until_done(ids)
    ledger = Ledger.of(farm.ledger)
    by_job = defaultdict(list)
    for r in ledger.runs:
        by_job[r.launch.job].append(r)
    assert {j: len(runs) for j, runs in by_job.items()} == {
        "plus": 2, "qube": 1, "whole": 2, "mem": 3}
    assert all(r.launch.slots >= 3 for r in by_job["plus"])
    assert all(r.launch.slots >= 2 and r.launch.memory_mb == 1000 for r in by_job["qube"])
    assert all(r.launch.slots == 8 for r in by_job["whole"])   # the whole idle host
    assert all(r.launch.memory_mb == 3000 for r in by_job["mem"])
    assert ledger.peak(lambda r: r.worker, lambda r: r.launch.memory_mb)["big"] <= 4000
    assert ledger.peak(lambda r: r.worker, lambda r: r.launch.slots)["big"] <= 8


def test_requirements_route_frames(farm):
    c = farm.client()
    farm.add_worker("gpu-01", slots=2, runtime=0.05, tags=["gpu"], memory_mb=64000)
    farm.add_worker("cpu-01", slots=2, runtime=0.05, memory_mb=16000)
    farm.add_worker("win-01", slots=2, runtime=0.05, os="windows", memory_mb=64000)
    ids = c.submit([
        job("tags", [layer("t", 4, tags=["gpu"])]),
        job("os", [layer("o", 4, os="windows")]),
        job("pat", [layer("p", 4, hosts=["cpu-*"])]),
        job("omit", [layer("x", 4, omit_hosts=["gpu-*", "win-*"])]),
        job("expr", [layer("e", 4, requirements='host.memory >= 32000 and host.os == "linux"')])])
    farm.run_until_done(ids)
    hosts = defaultdict(set)
    for r in Ledger.of(farm.ledger).runs:
        hosts[r.launch.job].add(r.worker)
    assert hosts == {"tags": {"gpu-01"}, "os": {"win-01"}, "pat": {"cpu-01"},
                     "omit": {"cpu-01"}, "expr": {"gpu-01"}}


def test_dependencies_per_frame_across_chunks_and_jobs(farm):
    c = farm.client()
    farm.add_worker("h0", slots=4, runtime=0.05)
    c.lock("h0")
    [render] = c.submit([job("render", [layer("r", 10, chunk=1)])])
    [comp] = c.submit([job("comp", [
        layer("c", 10, chunk=5, depends_on=[{"job": render, "layer": "r"}]),
        layer("c2", 10, chunk=3, depends_on=[{"layer": "c", "per_frame": True}])])])
    [after] = c.submit([job("after", [layer("a", 1, depends_on=[{"job": comp}])])])
    assert c.job(after)["status"] == "dependency"
    c.unlock("h0")
    farm.run_until_done([render, comp, after])
    ledger = Ledger.of(farm.ledger)
    runs = defaultdict(list)
    for r in ledger.runs:
        runs[r.launch.layer].append(r)
    assert [len(runs[k]) for k in ("r", "c", "c2", "a")] == [10, 2, 4, 1]
    assert min(r.start for r in runs["c"]) >= max(r.end for r in runs["r"])
    for r in runs["c2"]:
        covering = [u for u in runs["c"] if u.launch.frame_start <= r.launch.frame_start
                    <= u.launch.frame_end]
        assert covering and all(r.start >= u.end for u in covering)
    assert runs["a"][0].start >= max(r.end for r in runs["c2"])


def test_dead_dependency_waits_says_so_and_can_be_satisfied(farm):
    c = farm.client()
    farm.add_worker("bad", slots=2, runtime=0.05, exit_status=1)
    [jid] = c.submit([job("dd", [layer("r", 2), layer("e", 1, depends_on=["r"])])])
    farm.advance_until(lambda: c.job(jid)["dead"] == 2, 30, step=0.05)
    assert c.job(jid)["stalled"]
    reasons = " ".join(c.why(jid, layer="e")["reasons"])
    assert "DEAD" in reasons and "layer 'r'" in reasons
    [dep] = c.dependencies(jid)
    assert dep["target_layer"] == "r" and dep["target_dead"] == 2 and not dep["satisfied"]
    c.satisfy_dependency(jid, dep["id"])
    # At once: the frame leaves DEPEND in the request's own transaction.
    assert c.frames(jid, layer="e")[0]["state"] != "DEPEND"
    with pytest.raises(CueFarmError) as info:
        c.drop_dependency(jid, 9999)
    assert info.value.field == "dependency_id"


def test_limits_counted_per_frame_and_per_host_and_changed_live(farm):
    c = farm.client()
    c.set_limit("arnold", 1)
    c.set_limit("nodelock", 1, per_host=True)
    farm.add_worker("h0", slots=4, runtime=0.3)
    farm.add_worker("h1", slots=4, runtime=0.3)
    [a, n] = c.submit([job("arn", [layer("a", 6, limits=["arnold"])]),
                       job("nl", [layer("n", 6, limits=["nodelock"])])])
    assert c.job(a)["running"] == 1
    reasons = c.why(a)["reasons"]
    assert any("limit arnold 1/1 in use" in r for r in reasons), reasons
    c.set_limit("arnold", 3)      # raised while work runs: takes effect at once
    assert c.job(a)["running"] == 3
    farm.run_until_done([a, n])
    ledger = Ledger.of(farm.ledger)
    arn = ledger.peak(lambda r: r.launch.job if r.launch.job == "arn" else None, lambda r: 1)
    assert arn["arn"] == 3
    nl_hosts = {r.worker for r in ledger.runs if r.launch.job == "nl"}
    assert len(nl_hosts) == 1     # node-locked: one host at a time holds the licence
    assert {x["name"]: x["max"] for x in c.limits()} == {"arnold": 3, "nodelock": 1}
    with pytest.raises(CueFarmError):
        c.set_limit("arnold", -1)


def test_a_limit_added_to_a_running_layer_counts_its_running_frames_at_once(farm):
    c = farm.client()
    c.set_limit("floating", 10)
    c.set_limit("nodelock", 10, per_host=True)
    c.set_limit("spare", 2)
    farm.add_worker("h0", slots=2, runtime=None)
    farm.add_worker("h1", slots=1, runtime=None)
    [jid] = c.submit([job("live", [layer("r", 5)])])
    assert c.job(jid)["running"] == 3
    in_use = lambda: {x["name"]: x["in_use"] for x in c.limits()}   # noqa: E731
    assert in_use() == {"floating": 0, "nodelock": 0, "spare": 0}
    c.set_layer(jid, "r", limits=["floating", "nodelock"])
    # Three frames on two hosts hold them now; the limit nobody needs stays free.
    assert in_use() == {"floating": 3, "nodelock": 2, "spare": 0}
    c.set_limit("floating", 3)
    assert any("limit floating 3/3 in use" in r for r in c.why(jid)["reasons"])
    c.set_layer(jid, "r", limits=[])
    assert in_use() == {"floating": 0, "nodelock": 0, "spare": 0}


def test_bad_host_list_keeps_a_failing_host_off_the_job(farm):
    c = farm.client()
    farm.add_worker("bad", slots=2, runtime=0.05, exit_status=1)
    farm.add_worker("good", slots=1, runtime=0.05)
    [jid] = c.submit([job("bh", [layer("r", 12, max_retries=5)])])
    done = farm.run_until_done([jid])[0]
    assert done["succeeded"] == 12
    ledger = Ledger.of(farm.ledger)
    on_bad = [r for r in ledger.runs if r.worker == "bad"]
    # Kept off once it failed three times: its two slots fail two frames at a time, so the
    # third failure came with a fourth, and nothing ran there after them.
    assert len(on_bad) == 4
    [bad] = c.bad_hosts(jid)            # the good host never failed: not listed
    assert bad["host"] == "bad" and bad["failures"] == 4 and bad["banned"]
    banned_at = max(r.end for r in on_bad) - farm.clock.mono() + farm.clock.wall()
    assert bad["banned_until"] == pytest.approx(banned_at + farm.cfg.bad_host_period)


def test_changing_requirements_reevaluates_at_once(farm):
    c = farm.client()
    farm.add_worker("h0", slots=2, runtime=0.05)
    [jid] = c.submit([job("rq", [layer("r", 2, tags=["gpu"])])])
    assert any("lacks tag gpu" in r for r in c.why(jid)["reasons"])
    c.set_layer(jid, "r", tags=[])
    assert c.job(jid)["running"] == 2          # at once, in the turn of the request
    assert farm.run_until_done([jid])[0]["succeeded"] == 2


def test_why_answers(farm):
    c = farm.client()
    [jid] = c.submit([job("w", [layer("r", 2)])])
    assert c.why(jid)["reasons"] == ["no worker is UP"]
    farm.add_worker("h0", slots=1, runtime=None)
    c.lock("h0")
    assert any("locked (h0)" in r for r in c.why(jid)["reasons"])
    c.unlock("h0")
    assert c.job(jid)["running"] == 1
    assert any("full (h0)" in r for r in c.why(jid, frame=2)["reasons"])
    assert "running on h0" in c.why(jid, frame=1)["reasons"][0]
    c.pause(jid)
    assert c.why(jid)["reasons"][0] == "the job is paused"
    c.set_project("p", max_slots=1)
    c.resume(jid)
    assert any("project p is at its maximum (1/1 slots)" in r for r in c.why(jid)["reasons"])


def test_bad_input_is_refused_and_stores_nothing(farm):
    c = farm.client()
    cases = [
        (layer(tags=["gp u"]), "jobs[0].layers[0].tags[0]"),
        (layer(requirements="host.memory >>= 3"), "jobs[0].layers[0].requirements"),
        (layer(requirements="__import__('os')"), "jobs[0].layers[0].requirements"),
        (layer(limits=["nosuchlimit"]), "jobs[0].layers[0].limits[0]"),
        (layer(depends_on=[{"job": 424242}]), "jobs[0].layers[0].depends_on[0]"),
        (layer(slots="4x"), "jobs[0].layers[0].slots"),
        (layer(os="beos"), "jobs[0].layers[0].os"),
    ]
    for bad, field in cases:
        with pytest.raises(CueFarmError) as info:
            c.submit([job("bad", [bad])])
        assert info.value.field == field, (bad, info.value)
    with pytest.raises(CueFarmError) as info:
        c.submit([job("cyc", [layer("a", depends_on=["b"]), layer("b", depends_on=["a"])])])
    assert "a -> b -> a" in str(info.value)
    assert c.jobs() == []
    [jid] = c.submit([job("ok", [layer()])])
    with pytest.raises(CueFarmError) as info:
        c.set_layer(jid, "r", requirements="host.nope > 1")
    assert info.value.field == "values.requirements"
    with pytest.raises(CueFarmError) as info:
        c.set_job(jid, max_slots=0)
    assert info.value.field == "values.max_slots"
    with pytest.raises(CueFarmError):
        c.next_for_host("no-such-host")
