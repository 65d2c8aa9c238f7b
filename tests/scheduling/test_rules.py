"""Each scheduling rule against the real supervisor (both databases) and simulated workers."""

from __future__ import annotations

from collections import defaultdict

import pytest

from cuefarm import CueFarmError
from tests.farm import wait_until
from tests.jobs import job, layer
from tests.scheduling.sim import Ledger, wait_finished


def average_slots(ledger: Ledger, key, t0: float, t1: float) -> dict:
    """Time-weighted mean of running slots per key(run) over [t0, t1]."""
    acc = defaultdict(float)
    for r in ledger.runs:
        lo, hi = max(r.start, t0), min(r.end, t1)
        if hi > lo:
            acc[key(r)] += (hi - lo) * r.launch.slots
    return {k: v / (t1 - t0) for k, v in acc.items()}


def test_fair_share_converges_to_guarantees(farm, fleet_factory):
    c = farm.client()
    c.set_project("big", guaranteed=6)
    c.set_project("small", guaranteed=2)
    fleet = fleet_factory([{"name": "h0", "slots": 4}, {"name": "h1", "slots": 4}], runtime=0.2)
    c.lock(["h0", "h1"])
    # The small project has the higher priority: without guarantees it would take everything.
    ids = c.submit([job("b", [layer(frames=400)], project="big", priority=10),
                    job("s", [layer(frames=400)], project="small", priority=90)])
    c.unlock(["h0", "h1"])
    wait_until(lambda: c.job(ids[1])["succeeded"] >= 30, 60)
    ledger = Ledger.of(fleet.close())
    # Measured while both projects had work waiting: from the first launches to the last.
    t0, t1 = ledger.runs[0].start + 0.5, ledger.runs[-1].start
    share = average_slots(ledger, lambda r: r.launch.project, t0, t1)
    big = share["big"] / (share["big"] + share["small"])
    assert 0.65 <= big <= 0.85, share      # 6 of 8 guaranteed: 0.75
    c.kill(ids)


def test_project_maximum_is_never_exceeded(farm, fleet_factory):
    c = farm.client()
    c.set_project("capped", max_slots=3)
    fleet = fleet_factory([{"name": "h0", "slots": 8}])
    [jid] = c.submit([job("c", [layer(frames=30)], project="capped")])
    wait_finished(c, [jid])
    ledger = Ledger.of(fleet.close())
    assert ledger.peak(lambda r: r.launch.project, lambda r: r.launch.slots)["capped"] == 3
    with pytest.raises(CueFarmError) as info:
        c.set_project("capped", guaranteed=5)
    assert info.value.field == "guaranteed"


def test_priority_order_among_equals(farm, fleet_factory):
    c = farm.client()
    fleet = fleet_factory([{"name": "solo", "slots": 1}])
    c.lock("solo")
    ids = c.submit([job("p10", [layer(frames=1)], priority=10),
                    job("p50a", [layer(frames=1)], priority=50),
                    job("p30", [layer(frames=1)], priority=30),
                    job("p50b", [layer(frames=1)], priority=50)])
    assert [r["job"] for r in c.next_for_host("solo")] == ["p50a", "p50b", "p30", "p10"]
    c.unlock("solo")
    wait_finished(c, ids)
    order = [r.launch.job for r in Ledger.of(fleet.close()).runs]
    assert order == ["p50a", "p50b", "p30", "p10"]


def test_reservations_plus_all_memory_and_qube_form(farm, fleet_factory):
    c = farm.client()
    fleet = fleet_factory([{"name": "big", "slots": 8, "memory_mb": 4000}])
    ids = c.submit([job("plus", [layer("a", 2, slots="3+")]),
                    job("qube", [layer("b", 1, reservations="host.processors=2+,host.memory=1000")]),
                    job("whole", [layer("c", 2, slots="all")]),
                    job("mem", [layer("d", 3, memory=3000)])])
    wait_finished(c, ids)
    ledger = Ledger.of(fleet.close())
    by_job = defaultdict(list)
    for r in ledger.runs:
        by_job[r.launch.job].append(r)
    assert all(r.launch.slots >= 3 for r in by_job["plus"])
    assert all(r.launch.slots >= 2 and r.launch.memory_mb == 1000 for r in by_job["qube"])
    assert all(r.launch.slots == 8 for r in by_job["whole"])   # the whole idle host
    assert ledger.peak(lambda r: r.worker, lambda r: r.launch.memory_mb)["big"] <= 4000
    assert ledger.peak(lambda r: r.worker, lambda r: r.launch.slots)["big"] <= 8


def test_requirements_route_frames(farm, fleet_factory):
    c = farm.client()
    fleet = fleet_factory([
        {"name": "gpu-01", "slots": 2, "tags": ["gpu"], "memory_mb": 64000},
        {"name": "cpu-01", "slots": 2, "memory_mb": 16000},
        {"name": "win-01", "slots": 2, "os": "windows", "memory_mb": 64000}])
    ids = c.submit([
        job("tags", [layer("t", 4, tags=["gpu"])]),
        job("os", [layer("o", 4, os="windows")]),
        job("pat", [layer("p", 4, hosts=["cpu-*"])]),
        job("omit", [layer("x", 4, omit_hosts=["gpu-*", "win-*"])]),
        job("expr", [layer("e", 4, requirements='host.memory >= 32000 and host.os == "linux"')])])
    wait_finished(c, ids)
    hosts = defaultdict(set)
    for r in Ledger.of(fleet.close()).runs:
        hosts[r.launch.job].add(r.worker)
    assert hosts == {"tags": {"gpu-01"}, "os": {"win-01"}, "pat": {"cpu-01"},
                     "omit": {"cpu-01"}, "expr": {"gpu-01"}}


def test_dependencies_per_frame_across_chunks_and_jobs(farm, fleet_factory):
    c = farm.client()
    fleet = fleet_factory([{"name": "h0", "slots": 4}], runtime=0.05)
    c.lock("h0")
    [render] = c.submit([job("render", [layer("r", 10, chunk=1)])])
    [comp] = c.submit([job("comp", [
        layer("c", 10, chunk=5, depends_on=[{"job": render, "layer": "r"}]),
        layer("c2", 10, chunk=3, depends_on=[{"layer": "c", "per_frame": True}])])])
    [after] = c.submit([job("after", [layer("a", 1, depends_on=[{"job": comp}])])])
    assert c.job(after)["status"] == "dependency"
    c.unlock("h0")
    wait_finished(c, [render, comp, after])
    ledger = Ledger.of(fleet.close())
    runs = defaultdict(list)
    for r in ledger.runs:
        runs[r.launch.layer].append(r)
    assert min(r.start for r in runs["c"]) >= max(r.end for r in runs["r"])
    for r in runs["c2"]:
        covering = [u for u in runs["c"] if u.launch.frame_start <= r.launch.frame_start
                    <= u.launch.frame_end]
        assert covering and all(r.start >= u.end for u in covering)
    assert runs["a"][0].start >= max(r.end for r in runs["c2"])


def test_dead_dependency_waits_says_so_and_can_be_satisfied(farm, fleet_factory):
    c = farm.client()
    fleet_factory([{"name": "bad", "slots": 2, "fail": True}])
    [jid] = c.submit([job("dd", [layer("r", 2), layer("e", 1, depends_on=["r"])])])
    wait_until(lambda: c.job(jid)["dead"] == 2, 30)
    assert c.job(jid)["stalled"]
    reasons = " ".join(c.why(jid, layer="e")["reasons"])
    assert "DEAD" in reasons and "layer 'r'" in reasons
    [dep] = c.dependencies(jid)
    assert dep["target_layer"] == "r" and dep["target_dead"] == 2 and not dep["satisfied"]
    c.satisfy_dependency(jid, dep["id"])
    wait_until(lambda: c.frames(jid, layer="e")[0]["state"] != "DEPEND", 30)
    with pytest.raises(CueFarmError) as info:
        c.drop_dependency(jid, 9999)
    assert info.value.field == "dependency_id"


def test_limits_counted_per_frame_and_per_host_and_changed_live(farm, fleet_factory):
    c = farm.client()
    c.set_limit("arnold", 1)
    c.set_limit("nodelock", 1, per_host=True)
    fleet = fleet_factory([{"name": "h0", "slots": 4}, {"name": "h1", "slots": 4}], runtime=0.3)
    [a, n] = c.submit([job("arn", [layer("a", 6, limits=["arnold"])]),
                       job("nl", [layer("n", 6, limits=["nodelock"])])])
    wait_until(lambda: c.job(a)["running"] == 1, 30)
    reasons = c.why(a)["reasons"]
    assert any("limit arnold 1/1 in use" in r for r in reasons), reasons
    c.set_limit("arnold", 3)      # raised while work runs: takes effect at once
    wait_finished(c, [a, n])
    ledger = Ledger.of(fleet.close())
    arn = ledger.peak(lambda r: r.launch.job if r.launch.job == "arn" else None, lambda r: 1)
    assert 1 < arn["arn"] <= 3
    nl_hosts = {r.worker for r in ledger.runs if r.launch.job == "nl"}
    assert len(nl_hosts) == 1     # node-locked: one host at a time holds the licence
    assert {x["name"]: x["max"] for x in c.limits()} == {"arnold": 3, "nodelock": 1}
    with pytest.raises(CueFarmError):
        c.set_limit("arnold", -1)


def test_a_limit_added_to_a_running_layer_counts_its_running_frames_at_once(farm,
                                                                            fleet_factory):
    c = farm.client()
    c.set_limit("floating", 10)
    c.set_limit("nodelock", 10, per_host=True)
    c.set_limit("spare", 2)
    fleet_factory([{"name": "h0", "slots": 2}, {"name": "h1", "slots": 1}], runtime=30)
    [jid] = c.submit([job("live", [layer("r", 5)])])
    wait_until(lambda: c.job(jid)["running"] == 3, 30)
    in_use = lambda: {x["name"]: x["in_use"] for x in c.limits()}   # noqa: E731
    assert in_use() == {"floating": 0, "nodelock": 0, "spare": 0}
    c.set_layer(jid, "r", limits=["floating", "nodelock"])
    # Three frames on two hosts hold them now; the limit nobody needs stays free.
    assert in_use() == {"floating": 3, "nodelock": 2, "spare": 0}
    c.set_limit("floating", 3)
    assert any("limit floating 3/3 in use" in r for r in c.why(jid)["reasons"])
    c.set_layer(jid, "r", limits=[])
    assert in_use() == {"floating": 0, "nodelock": 0, "spare": 0}
    c.kill(jid)


def test_bad_host_list_keeps_a_failing_host_off_the_job(farm, fleet_factory):
    c = farm.client()
    fleet = fleet_factory([{"name": "bad", "slots": 2, "fail": True},
                           {"name": "good", "slots": 1}], runtime=0.05)
    [jid] = c.submit([job("bh", [layer("r", 12, max_retries=5)])])
    done = wait_finished(c, [jid])[0]
    assert done["succeeded"] == 12
    ledger = Ledger.of(fleet.close())
    assert len([r for r in ledger.runs if r.worker == "bad"]) <= 4   # 3, plus one in flight
    [bad] = c.bad_hosts(jid)            # the good host never failed: not listed
    assert bad["host"] == "bad" and bad["failures"] >= 3 and bad["banned"]
    assert bad["banned_until"] > 0


def test_changing_requirements_reevaluates_at_once(farm, fleet_factory):
    c = farm.client()
    fleet_factory([{"name": "h0", "slots": 2}])
    [jid] = c.submit([job("rq", [layer("r", 2, tags=["gpu"])])])
    assert any("lacks tag gpu" in r for r in c.why(jid)["reasons"])
    c.set_layer(jid, "r", tags=[])
    assert wait_finished(c, [jid])[0]["succeeded"] == 2


def test_why_answers(farm, fleet_factory):
    c = farm.client()
    [jid] = c.submit([job("w", [layer("r", 2)])])
    assert c.why(jid)["reasons"] == ["no worker is UP"]
    fleet_factory([{"name": "h0", "slots": 1}], runtime=5)
    c.lock("h0")
    assert any("locked (h0)" in r for r in c.why(jid)["reasons"])
    c.unlock("h0")
    wait_until(lambda: c.job(jid)["running"] == 1, 30)
    assert any("full (h0)" in r for r in c.why(jid, frame=2)["reasons"])
    assert "running on h0" in c.why(jid, frame=1)["reasons"][0]
    c.pause(jid)
    assert c.why(jid)["reasons"][0] == "the job is paused"
    c.set_project("p", max_slots=1)
    c.resume(jid)
    assert any("project p is at its maximum (1/1 slots)" in r for r in c.why(jid)["reasons"])
    c.kill(jid)


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
