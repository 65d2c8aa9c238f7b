"""Scheduling properties over hundreds of random farms, on the in-process farm (real supervisor
core and store, both databases, simulated time): no host's slots or memory oversubscribed, no
limit passed (as it stood at each launch), dependencies in order (chunks included), every job
finished, and equal work served in priority order.  The same checks as
tests/scheduling/test_properties.py, which runs a few examples against real processes."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings

from cuefarm import protocol as p
from tests.scheduling.sim import Ledger
from tests.scheduling.test_properties import (IN_FLIGHT, build, check, priority_st,
                                              scenario_st)
from tests.simfarm import SimFarm

# Examples per database: the rules are the point here, so SQLite gets most of them.
EXAMPLES = {"sqlite": 100, "postgres": 50}
PRIORITY_EXAMPLES = {"sqlite": 50, "postgres": 25}


def run_scenario(engine, scenario) -> None:
    hosts, jobs = build(scenario)
    rng = random.Random(scenario["seed"])
    farm = SimFarm(engine)
    try:
        lic_changes: list[tuple[float, float, int]] = []

        def set_lic(value: int) -> None:
            # Launches of the same simulated instant, before the change, were made under the
            # old value: the clocks move on a millisecond first, so the ledger tells them
            # from those of the change's own turn and after.
            farm.clock.advance(0.001)
            now = farm.clock.mono()
            farm.do(p.SetLimit("lic", value))
            # Deterministic: the change is in force from its request on, with no message in
            # flight (the real-process test allows IN_FLIGHT seconds after the reply).
            lic_changes.append((now, now - IN_FLIGHT, value))
        set_lic(scenario["lic"])
        farm.do(p.SetLimit("node", scenario["node"], per_host=True))
        for h in hosts:
            farm.add_worker(h["name"], slots=h["slots"], runtime=rng.choice([0.5, 1.0, 3.0]),
                            memory_mb=h["memory_mb"], tags=h["tags"],
                            gpus=1 if "gpu" in h["tags"] else 0)
        job_ids = farm.submit(jobs)
        for event in scenario["events"]:
            farm.advance(rng.choice([0.1, 0.5, 1.0]))
            host = rng.choice(hosts)["name"]
            if event == "lock":
                farm.do(p.HostControl("lock", [host]))
            elif event == "unlock":
                farm.do(p.HostControl("unlock", [host]))
            elif event == "limit":
                set_lic(rng.randint(1, 4))
            else:
                farm.do(p.JobControl("priority", [rng.choice(job_ids)], rng.randint(0, 100)))
        farm.do(p.HostControl("unlock", [h["name"] for h in hosts]))
        set_lic(scenario["lic"])
        finished = farm.run_until_done(job_ids)
        assert all(j["succeeded"] == j["frames_total"] for j in finished), finished
        check(Ledger.of(farm.ledger), hosts, jobs, job_ids, lic_changes, scenario["node"])
    finally:
        farm.close()


def run_priorities(engine, case) -> None:
    prios = list(case["priorities"])
    farm = SimFarm(engine)
    try:
        farm.add_worker("solo", slots=1, runtime=0.5)
        farm.do(p.HostControl("lock", ["solo"]))
        ids = farm.submit([{"name": f"j{i}", "project": "prop", "priority": pr,
                            "layers": [{"name": "r", "command": ["true"], "range": "1"}]}
                           for i, pr in enumerate(prios)])
        if case["change"] is not None and case["change"][0] < len(prios):
            i, new = case["change"]
            farm.do(p.JobControl("priority", [ids[i]], new))
            prios[i] = new
        # Higher priority first; among equals, the earlier submission.
        expected = [f"j{i}" for i in sorted(range(len(prios)), key=lambda i: (-prios[i], i))]
        assert [r["job"] for r in farm.do(p.NextForHost("solo", len(prios))).rows] == expected
        farm.do(p.HostControl("unlock", ["solo"]))
        farm.run_until_done(ids)
        assert [r.launch.job for r in Ledger.of(farm.ledger).runs] == expected
    finally:
        farm.close()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_random_farms_never_oversubscribe(kind, sim_db):
    @settings(max_examples=EXAMPLES[kind], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(scenario=scenario_st)
    def case(scenario):
        run_scenario(sim_db(kind), scenario)
    case()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_priority_order_among_equals(kind, sim_db):
    @settings(max_examples=PRIORITY_EXAMPLES[kind], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=priority_st)
    def case(case):
        run_priorities(sim_db(kind), case)
    case()
