"""A worker sending numbers too big for the database is answered with an error and counted;
the supervisor runs on and its figures stay as they were."""

from __future__ import annotations

from cuefarm import protocol as p


def test_a_heartbeat_with_a_huge_number_does_not_stop_the_supervisor(farm):
    w = farm.add_worker("h1", slots=1)
    farm.advance(2)
    w.send(p.Heartbeat(memory_free_mb=2**64 - 1, disk_free_mb=2**63))
    farm.settle()
    farm.advance(10)           # figures are written; dispatch goes on
    assert farm.sv.cx.live.errors["malformed"] >= 1
    [job] = farm.submit([{"name": "j", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-3"}]}])
    farm.run_until_done([job])
    [host] = farm.client().hosts()
    assert host["memory_free_mb"] < 2**63 and host["state"] == "UP"
