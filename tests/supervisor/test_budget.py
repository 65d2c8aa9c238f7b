"""Budget, the shared caps of one dispatch pass: spending and refunding limits."""

from __future__ import annotations

from supervisor.planning import Budget

LAYER = {"job_id": 1, "project_id": 7, "limits": ["node", "floating"]}


def budget(node_hosts=()):
    return Budget({}, {}, {
        "node": {"max": 2, "per_host": True, "used": len(node_hosts), "hosts": set(node_hosts)},
        "floating": {"max": 10, "per_host": False, "used": 0, "hosts": set()}})


def test_refund_of_a_per_host_limit_the_host_already_held_before_the_pass():
    b = budget(node_hosts=[5])
    b.spend(LAYER, 5, 2)
    assert b.limits["node"]["used"] == 1          # host 5 held it already: nothing added
    b.refund(LAYER, 5, 2)
    assert b.limits["node"] == {"max": 2, "per_host": True, "used": 1, "hosts": {5}}
    assert b.limits["floating"]["used"] == 0
    assert b.job_used == {1: 0} and b.project_used == {7: 0}


def test_per_host_limit_given_back_only_when_the_last_frame_of_the_pass_is_refunded():
    b = budget()
    b.spend(LAYER, 3, 1)
    b.spend(LAYER, 3, 1)                          # the same host: still one licence
    b.spend(LAYER, 4, 1)
    assert b.limits["node"]["used"] == 2 and b.limits["node"]["hosts"] == {3, 4}
    assert b.limits["floating"]["used"] == 3
    b.refund(LAYER, 3, 1)
    assert b.limits["node"]["used"] == 2 and 3 in b.limits["node"]["hosts"]   # one frame left
    b.refund(LAYER, 3, 1)
    assert b.limits["node"]["used"] == 1 and b.limits["node"]["hosts"] == {4}
    assert b.limits["floating"]["used"] == 1
    assert b.limit_allows(LAYER, 3)               # the licence is free again for host 3
