"""The audit trail: every action, who asked from where, on what, and how it went."""

from __future__ import annotations

import json
import time

import pytest

from cuefarm import CueFarmError
from tests.farm import wait_until

JOB = {"name": "audited", "layers": [{"name": "r", "command": ["true"], "range": "1-3"}]}


def test_actions_are_recorded_and_queryable(roles_farm):
    ann, wendy, boss = (roles_farm.client(user=u) for u in ("ann", "wendy", "boss"))
    t0 = time.time()
    [mine] = ann.submit([JOB])
    [bosses] = boss.submit([JOB])
    ann.pause(mine)
    wendy.set_priority(mine, 80)
    with pytest.raises(CueFarmError):
        ann.kill(bosses)                      # not hers: refused, and recorded as such
    jobs_read = len(ann.jobs())               # a read: not an action, not recorded
    assert jobs_read == 2

    def entries():
        return boss.audit(since=t0)
    wait_until(lambda: len(entries()) == 5, 30, message="five actions in the trail")
    rows = list(reversed(entries()))          # oldest first
    assert [(r["user"], r["action"], r["outcome"]) for r in rows] == [
        ("ann", "submit", "ok"), ("boss", "submit", "ok"), ("ann", "job_control", "ok"),
        ("wendy", "job_control", "ok"), ("ann", "job_control", "refused")]
    assert rows[0]["objects"] == f"job {mine}" and rows[4]["objects"] == f"job {bosses}"
    assert rows[2]["detail"]["action"] == "pause" and rows[3]["detail"]["action"] == "priority"
    assert rows[4]["detail"]["action"] == "kill" and "forbidden" in rows[4]["message"]
    assert all(r["address"] == "127.0.0.1" for r in rows)
    assert all(t0 - 1 <= r["at"] <= time.time() + 1 for r in rows)

    # Filters: by job, by user, by action; newest first.
    assert [r["action"] for r in boss.audit(job_id=mine)] == ["job_control", "job_control",
                                                              "submit"]
    assert {r["user"] for r in boss.audit(user="wendy")} == {"wendy"}
    assert len(boss.audit(action="submit")) == 2
    assert boss.audit(since=time.time() + 60) == []
    # An artist sees their own actions only.
    assert {r["user"] for r in ann.audit()} == {"ann"} and len(ann.audit()) == 3
    with pytest.raises(CueFarmError, match="only their own"):
        ann.audit(user="wendy")
    with pytest.raises(CueFarmError, match="limit"):
        boss.audit(limit=0)

    # The command line says the same.
    out = roles_farm.cli("audit", "--job", str(mine), "--json", env={"LOGNAME": "boss", "USER": "boss"})
    assert [r["action"] for r in json.loads(out.output)] == ["job_control", "job_control",
                                                             "submit"]
    table = roles_farm.cli("audit", "--since", "1h", env={"LOGNAME": "boss", "USER": "boss"}).output
    assert "job_control pause" in table and "refused: forbidden" in table
    bad = roles_farm.cli("audit", "--since", "yesterday", env={"LOGNAME": "boss", "USER": "boss"})
    assert bad.exit_code != 0 and "neither a duration ago" in bad.output


def test_an_odd_submit_is_answered_and_recorded_as_refused(sqlite_farm):
    c = sqlite_farm.client(timeout=20)
    t0 = time.time()
    odd = [[{"name": "a", "layers": 5}],                        # once left without any reply
           [{"name": ["x"] * 200_000, "project": {"p": 1}, "layers": [{}]}],
           [{"name": "a", "layers": [{"name": "r", "command": ["true"], "range": "1"}],
             "junk": [None] * 3_000_000}]]
    for jobs in odd:
        with pytest.raises(CueFarmError) as err:
            c.submit(jobs)
        assert err.value.code == "invalid", err.value
    wait_until(lambda: len(c.audit(since=t0)) == 3, 30, message="three refusals in the trail")
    rows = list(reversed(c.audit(since=t0)))
    assert [(r["action"], r["outcome"]) for r in rows] == [("submit", "refused")] * 3
    assert rows[0]["detail"]["jobs"] == [{"name": "a", "project": "", "layers": 0}]
    # What is kept of a long list is its first items: the name as the trail shows it.
    assert rows[1]["detail"]["jobs"][0]["name"].startswith("['x', 'x',")
    assert len(rows[1]["detail"]["jobs"][0]["name"]) == 200


def test_what_the_trail_keeps_of_a_request_is_cut_short_without_reading_it_all():
    import msgspec

    from cuefarm import protocol as p
    from supervisor.auditing import _short

    # As msgspec.to_builtins would give it (fields at their defaults left out), cut short.
    assert _short(p.JobControl(job_ids=list(range(1_000_000)), action="kill")) == {
        "action": "kill", "job_ids": [*range(50), "… 999950 more"]}
    retry = p.FrameControl(action="retry", job_id=7, numbers=[1, 2], layer="r")
    assert _short(retry) == msgspec.to_builtins(retry) == {
        "action": "retry", "job_id": 7, "numbers": [1, 2], "layer": "r"}
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    assert _short(deep) == {"a": {"b": {"c": {"d": "…"}}}}
    assert _short({str(i): i for i in range(100)}) == {str(i): i for i in range(50)}
    assert _short([float("nan"), b"\x01", "x" * 300]) == ["nan", "AQ==", "x" * 200 + "…"]
