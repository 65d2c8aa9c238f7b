"""Matching against host values that change while hosts run, on the in-process farm (both
databases)."""

from __future__ import annotations

from cuefarm import requirements as reqs
from tests.scheduling.sim import Ledger
from tests.jobs import job, layer


def test_requirement_on_free_memory_is_evaluated_afresh(farm):
    c = farm.client()
    c.set_limit("gate", 0)
    farm.add_worker("h0", slots=8, runtime=1.5, memory_mb=4000)
    # "late" is considered (and matched, while h0 is idle) but held back by the limit.
    [late] = c.submit([job("late", [layer("l", 2, limits=["gate"],
                                          requirements="host.memory_free >= 3000")],
                           priority=10)])
    assert any("limit gate 0/0" in r for r in c.why(late)["reasons"])
    [big] = c.submit([job("big", [layer("b", 1, memory=2000)], priority=90)])
    assert c.job(big)["running"] == 1
    c.set_limit("gate", 5)   # a pass runs now; h0 has 2000 MB free, "late" must not start
    assert c.job(late)["running"] == 0
    farm.run_until_done([big, late])
    ledger = Ledger.of(farm.ledger)
    [b] = [r for r in ledger.runs if r.launch.job == "big"]
    lates = [r for r in ledger.runs if r.launch.job == "late"]
    assert len(lates) == 2 and all(r.start >= b.end for r in lates)


def test_attributes_used_tells_changing_expressions_apart():
    assert reqs.attributes_used(reqs.parse('host.load < 2 and not ("gpu" in host.tags)')) == {
        "load", "tags"}
    assert not reqs.attributes_used(reqs.parse("true")) & reqs.CHANGING
