"""Property-based: random hosts, jobs, limits and events against the real supervisor and store
(both databases) never oversubscribe a host's slots or memory, nor a limit (as it stood when
each frame started), dependencies always run in order, chunks included, and equals run in
priority order.

Here with real processes and real time, a few examples each: the end-to-end check.  The same
checks run over hundreds of examples on the in-process farm (tests/sim/test_sim_properties.py).
"""

from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.farm import Farm, FleetThread, PostgresDatabase
from tests.scheduling.sim import Ledger, wait_finished

host_st = st.tuples(st.integers(1, 6), st.sampled_from([2000, 4000, 8000]), st.booleans())
layer_st = st.fixed_dictionaries({
    "frames": st.integers(1, 5),
    "chunk": st.sampled_from([1, 1, 2, 3]),
    "slots": st.sampled_from([1, 2, "2+", "all"]),
    "memory": st.sampled_from([0, 1000, 3000]),
    "limit": st.sampled_from([None, "lic", "node"]),
    "dep": st.sampled_from([None, "layer", "per_frame"]),
    "gpu": st.booleans(),
})
scenario_st = st.fixed_dictionaries({
    "hosts": st.lists(host_st, min_size=1, max_size=4),
    "jobs": st.lists(st.tuples(st.lists(layer_st, min_size=1, max_size=3), st.integers(0, 100)),
                     min_size=1, max_size=3),
    "lic": st.integers(1, 3),
    "node": st.integers(1, 2),
    "events": st.lists(st.sampled_from(["lock", "unlock", "limit", "priority"]), max_size=3),
    "seed": st.integers(0, 1000),
})


def build(scenario):
    hosts = [{"name": f"h{i}", "slots": slots, "memory_mb": mem, "tags": ["gpu"] if gpu else []}
             for i, (slots, mem, gpu) in enumerate(scenario["hosts"])]
    jobs = []
    for j, (layers, priority) in enumerate(scenario["jobs"]):
        specs = []
        for k, lay in enumerate(layers):
            fitting = [h for h in hosts if (not lay["gpu"] or "gpu" in h["tags"])]
            if not fitting:
                fitting = hosts
                lay = {**lay, "gpu": False}
            # Sized to fit one host: the largest of those it may use (slots and memory
            # taken from different hosts could add up to a frame no host can run).
            top = max(fitting, key=lambda h: (h["slots"], h["memory_mb"]))
            top_slots, top_mem = top["slots"], top["memory_mb"]
            slots = lay["slots"]
            if slots == 2 and top_slots < 2:
                slots = 1
            if slots == "2+" and top_slots < 2:
                slots = "1+"
            spec = {"name": f"l{k}", "command": ["true"], "range": f"1-{lay['frames']}",
                    "chunk": lay["chunk"], "slots": slots, "memory": min(lay["memory"], top_mem), "max_retries": 0}
            if lay["gpu"]:
                spec["tags"] = ["gpu"]
            if lay["limit"]:
                spec["limits"] = [lay["limit"]]
            if lay["dep"] and k > 0:
                spec["depends_on"] = ([f"l{k - 1}"] if lay["dep"] == "layer"
                                      else [{"layer": f"l{k - 1}", "per_frame": True}])
            specs.append(spec)
        jobs.append({"name": f"j{j}", "project": "prop", "priority": priority, "layers": specs})
    return hosts, jobs


# A limit change may cross a launch already on its way: a launch this soon after the change's
# reply is judged against the old value too.  A tolerance for message order, not a timing goal.
IN_FLIGHT = 0.5


def limit_at(changes: list[tuple[float, float, int]], t: float) -> int:
    """The highest value the limit may have had for a launch seen at `t`: changes are (sent,
    replied, value), in order; between sending and reply (plus IN_FLIGHT) old and new count."""
    allowed = changes[0][2]
    for k, (sent, replied, value) in enumerate(changes[1:], 1):
        old = changes[k - 1][2]
        if t >= replied + IN_FLIGHT:
            allowed = value
        elif t >= sent:
            allowed = max(old, value)
    return allowed


def check_limit_per_launch(ledger: Ledger, uses, changes) -> None:
    """At every launch of a frame needing the limit, the frames holding it (this one too) fit
    the limit in force then."""
    runs = [r for r in ledger.runs if uses(r)]
    for r in runs:
        holding = sum(1 for u in runs if u.start <= r.start < u.end)
        assert holding <= limit_at(changes, r.start), (
            f"{holding} frames held 'lic' at a launch under a limit of "
            f"{limit_at(changes, r.start)}")


def check(ledger: Ledger, hosts, jobs, job_ids, lic_changes, node_max):
    spec_of = {(jid, lay["name"]): lay for jid, job in zip(job_ids, jobs) for lay in job["layers"]}
    cap = {h["name"]: h for h in hosts}
    for host, peak in ledger.peak(lambda r: r.worker, lambda r: r.launch.slots).items():
        assert peak <= cap[host]["slots"], f"{host} ran {peak} slots of {cap[host]['slots']}"
    for host, peak in ledger.peak(lambda r: r.worker, lambda r: r.launch.memory_mb).items():
        assert peak <= cap[host]["memory_mb"], f"{host} reserved {peak} MB"
    check_limit_per_launch(
        ledger, lambda r: "lic" in spec_of[(r.launch.job_id, r.launch.layer)].get("limits", []),
        lic_changes)
    # node-locked: distinct hosts holding the limit at once
    events = []
    for r in ledger.runs:
        if "node" in spec_of[(r.launch.job_id, r.launch.layer)].get("limits", []):
            events += [(r.start, 1, r.worker), (r.end, 0, r.worker)]
    holding: dict[str, int] = defaultdict(int)
    for _, is_start, w in sorted(events):
        holding[w] += 1 if is_start else -1
        assert len([h for h, n in holding.items() if n > 0]) <= node_max
    # dependencies in order
    runs_of = defaultdict(list)
    for r in ledger.runs:
        runs_of[(r.launch.job_id, r.launch.layer)].append(r)
    for (jid, name), lay in spec_of.items():
        for dep in lay.get("depends_on", []):
            target = dep if isinstance(dep, str) else dep["layer"]
            ups = runs_of[(jid, target)]
            for r in runs_of[(jid, name)]:
                if isinstance(dep, str):
                    assert all(r.start >= u.end for u in ups), f"{name} before {target} ended"
                else:   # chunk-aware: every upstream chunk sharing a frame number (frames
                        # with no upstream namesake wait for nothing)
                    same = [u for u in ups if u.launch.frame_start <= r.launch.frame_end
                            and r.launch.frame_start <= u.launch.frame_end]
                    assert all(r.start >= u.end for u in same), \
                        f"{name} frames {r.launch.frames} before upstream {target} ended"


def run_scenario(db_url, tmp_path, scenario):
    hosts, jobs = build(scenario)
    rng = random.Random(scenario["seed"])
    farm = Farm(db_url, tmp_path)
    farm.start_supervisor()
    fleet = None
    try:
        c = farm.client()
        lic_changes: list[tuple[float, float, int]] = []

        def set_lic(value: int) -> None:
            sent = time.monotonic()
            c.set_limit("lic", value)
            lic_changes.append((sent, time.monotonic(), value))
        set_lic(scenario["lic"])
        c.set_limit("node", scenario["node"], per_host=True)
        fleet = FleetThread(farm.address, hosts, runtime=0.05)
        farm.wait_hosts_up([h["name"] for h in hosts])
        job_ids = c.submit(jobs)
        for event in scenario["events"]:
            time.sleep(0.05)
            host = rng.choice(hosts)["name"]
            if event == "lock":
                c.lock(host)
            elif event == "unlock":
                c.unlock(host)
            elif event == "limit":
                set_lic(rng.randint(1, 4))
            else:
                c.set_priority(rng.choice(job_ids), rng.randint(0, 100))
        c.unlock([h["name"] for h in hosts])
        set_lic(scenario["lic"])
        finished = wait_finished(c, job_ids, timeout=120)
        ledger = Ledger.of(fleet.close())
        fleet = None
        assert all(j["state"] == "FINISHED" and j["succeeded"] == j["frames_total"]
                   for j in finished), finished
        check(ledger, hosts, jobs, job_ids, lic_changes, scenario["node"])
    finally:
        if fleet is not None:
            fleet.close()
        farm.stop()


# Few distinct priorities, so many jobs tie; optionally one job's priority changes before the
# host opens: (job index, new priority).
priority_st = st.fixed_dictionaries({
    "priorities": st.lists(st.integers(0, 3), min_size=2, max_size=6),
    "change": st.none() | st.tuples(st.integers(0, 5), st.integers(0, 3)),
})


def run_priorities(db_url, tmp_path, case):
    prios = list(case["priorities"])
    farm = Farm(db_url, tmp_path)
    farm.start_supervisor()
    fleet = None
    try:
        c = farm.client()
        fleet = FleetThread(farm.address, [{"name": "solo", "slots": 1}], runtime=0.02)
        farm.wait_hosts_up(["solo"])
        c.lock("solo")
        ids = c.submit([{"name": f"j{i}", "project": "prop", "priority": p,
                         "layers": [{"name": "r", "command": ["true"], "range": "1"}]}
                        for i, p in enumerate(prios)])
        if case["change"] is not None and case["change"][0] < len(prios):
            i, new = case["change"]
            c.set_priority(ids[i], new)
            prios[i] = new
        # Higher priority first; among equals, the earlier submission.
        expected = [f"j{i}" for i in sorted(range(len(prios)), key=lambda i: (-prios[i], i))]
        assert [r["job"] for r in c.next_for_host("solo", len(prios))] == expected
        c.unlock("solo")
        wait_finished(c, ids, timeout=60)
        order = [r.launch.job for r in Ledger.of(fleet.close()).runs]
        fleet = None
        assert order == expected
    finally:
        if fleet is not None:
            fleet.close()
        farm.stop()


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=priority_st)
def test_priority_order_among_equals_sqlite(tmp_path_factory, case):
    tmp = tmp_path_factory.mktemp("prio")
    run_priorities(f"sqlite:///{tmp / 'cuefarm.db'}", tmp, case)


@pytest.mark.postgres
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=priority_st)
def test_priority_order_among_equals_postgres(require_postgres, tmp_path_factory, case):
    tmp = tmp_path_factory.mktemp("prio")
    with PostgresDatabase() as db:
        run_priorities(db.url, tmp, case)


@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=scenario_st)
def test_random_farms_never_oversubscribe_sqlite(tmp_path_factory, scenario):
    tmp = tmp_path_factory.mktemp("prop")
    run_scenario(f"sqlite:///{tmp / 'cuefarm.db'}", tmp, scenario)


@pytest.mark.postgres
@settings(max_examples=2, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario=scenario_st)
def test_random_farms_never_oversubscribe_postgres(require_postgres, tmp_path_factory, scenario):
    tmp = tmp_path_factory.mktemp("prop")
    with PostgresDatabase() as db:
        run_scenario(db.url, tmp, scenario)
