"""Matching against host values that change while hosts run, on the real supervisor (both
databases) and simulated workers."""

from __future__ import annotations

from cuefarm import requirements as reqs
from tests.farm import wait_until
from tests.jobs import job, layer
from tests.scheduling.sim import Ledger, wait_finished


def test_requirement_on_free_memory_is_evaluated_afresh(farm, fleet_factory):
    c = farm.client()
    c.set_limit("gate", 0)
    fleet = fleet_factory([{"name": "h0", "slots": 8, "memory_mb": 4000}], runtime=1.5)
    # "late" is considered (and matched, while h0 is idle) but held back by the limit.
    [late] = c.submit([job("late", [layer("l", 2, limits=["gate"],
                                          requirements="host.memory_free >= 3000")],
                           priority=10)])
    assert any("limit gate 0/0" in r for r in c.why(late)["reasons"])
    [big] = c.submit([job("big", [layer("b", 1, memory=2000)], priority=90)])
    wait_until(lambda: c.job(big)["running"] == 1, 30)
    c.set_limit("gate", 5)   # a pass runs now; h0 has 2000 MB free, "late" must not start
    wait_finished(c, [big, late])
    ledger = Ledger.of(fleet.close())
    [b] = [r for r in ledger.runs if r.launch.job == "big"]
    lates = [r for r in ledger.runs if r.launch.job == "late"]
    assert len(lates) == 2 and all(r.start >= b.end for r in lates)


def test_attributes_used_tells_changing_expressions_apart():
    assert reqs.attributes_used(reqs.parse('host.load < 2 and not ("gpu" in host.tags)')) == {
        "load", "tags"}
    assert not reqs.attributes_used(reqs.parse("true")) & reqs.CHANGING
