"""Failure rules on the in-process farm (both databases): the bad-host list shown and cleared,
launch failures, every matching host failing a job."""

from __future__ import annotations

import json

import pytest

from cuefarm import CueFarmError
from cuefarm import protocol as p
from tests.jobs import job, layer

# rqd's report of a program it could not start (tests/rqd/test_rqd_daemon.py checks rqd's side)
LAUNCH_FAILED = "launch failed: [Errno 2] No such file or directory: '/nonexistent/cuefarm'"


def test_bad_host_list_shown_and_cleared_from_the_cli(farm):
    c = farm.client()
    farm.add_worker("bad", slots=1, runtime=0.05, exit_status=1)
    farm.add_worker("good", slots=1, runtime=0.05)
    c.lock("good")
    [jid] = c.submit([job("bh", [layer("r", 40, max_retries=30)])])
    farm.advance_until(lambda: any(r["banned"] for r in c.bad_hosts(jid)), 30, step=0.05)
    result = farm.cli("job", "badhosts", str(jid), "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    assert row["host"] == "bad" and row["failures"] == 3 and row["banned"]
    table = farm.cli("job", "badhosts", str(jid))
    assert table.exit_code == 0 and "bad" in table.output and "good" not in table.output

    # Unknown hosts and hosts not on the list are refused by name; nothing changes.
    for name in ("nosuch", "good"):
        refused = farm.cli("job", "badhosts", str(jid), "--clear", name)
        assert refused.exit_code != 0 and name in refused.output
    assert c.bad_hosts(jid)[0]["banned"]
    with pytest.raises(CueFarmError) as info:
        c.clear_bad_host(424242)
    assert info.value.field == "job_id"

    cleared = farm.cli("job", "badhosts", str(jid), "--clear", "bad")
    assert cleared.exit_code == 0 and "cleared 1 bad host" in cleared.output, cleared.output
    # Cleared: the host runs the job again at once, so it fails there again and is listed anew.
    assert c.bad_hosts(jid) == [] and c.job(jid)["running"] == 1
    farm.advance_until(lambda: c.bad_hosts(jid), 30, step=0.05)
    assert [(r["failures"], r["banned"]) for r in c.bad_hosts(jid)] == [(1, False)]
    farm.advance_until(lambda: any(r["banned"] for r in c.bad_hosts(jid)), 30, step=0.05)
    assert c.bad_hosts(jid)[0]["failures"] == 3
    cleared_all = farm.cli("job", "badhosts", str(jid), "--all", "--json")
    assert cleared_all.exit_code == 0, cleared_all.output
    assert json.loads(cleared_all.output) == {"job_id": jid, "cleared": 1}
    both = farm.cli("job", "badhosts", str(jid), "--all", "--clear", "bad")
    assert both.exit_code == 2 and "not both" in both.output


def test_launch_failure_spends_no_retry_and_the_same_one_everywhere_is_the_jobs(farm):
    c = farm.client()
    farm.add_worker("w1", slots=1, runtime=0.05, exit_status=127, reason=LAUNCH_FAILED)
    [jid] = c.submit([job("lf", [layer("r", 1, command=["/nonexistent/cuefarm"],
                                       max_retries=0)])])
    farm.advance_until(lambda: c.job(jid)["state"] == "PAUSED", 60, step=0.05)
    [frame] = c.frames(jid)
    assert frame["state"] == "WAITING" and frame["retries"] == 0   # never DEAD
    assert frame["reason"] == LAUNCH_FAILED
    # Three launches, none spending a retry; the third failure would have banned the only
    # host, for the reason every host gives: the job is at fault, and no host is kept off.
    assert len([e for e in farm.ledger if e[0] == "launch"]) == 3
    assert c.bad_hosts(jid) == []
    flagged = c.job(jid)["flagged"]
    assert "no host can start this job" in flagged and "w1" in flagged
    assert flagged.endswith(LAUNCH_FAILED)
    [why] = c.why(jid)["reasons"][:1]
    assert why.startswith(flagged) and "job's problem" in why and f"resume {jid}" in why
    assert "--clear-bans" not in why


def test_the_same_refusal_from_every_host_pauses_the_job_with_its_reason(farm):
    c = farm.client()
    refusal = ("user 'root' has uid 0, below the minimum uid 1000 for running frames (submit "
               "as a normal user, or start rqd with --min-uid 0 on a farm that may run frames "
               "as 'root')")
    workers = [farm.add_worker(n, slots=1, runtime=0.05) for n in ("w1", "w2")]
    for w in workers:
        w.refuse = refusal
    [jid] = c.submit([job("root", [layer("r", 2)])])
    farm.advance_until(lambda: c.job(jid)["state"] == "PAUSED", 60, step=0.05)
    assert c.bad_hosts(jid) == []
    assert c.job(jid)["flagged"].endswith(refusal)
    frames = c.frames(jid)
    assert {f["state"] for f in frames} == {"WAITING"}
    assert all(refusal in f["reason"] for f in frames)
    reasons = c.why(jid)["reasons"]
    assert "--min-uid 0" in reasons[0] and "job's problem" in reasons[0]
    assert any("did not run last time" in r and refusal in r for r in reasons)
    table = farm.cli("frames", str(jid)).output
    assert "REASON" in table and "below the minimum uid 1000" in table
    # Fixed on the workers: resuming is enough, no host was kept off.
    for w in workers:
        w.refuse = ""
    c.resume(jid)
    farm.run_until_done([jid], 60)
    assert c.job(jid)["succeeded"] == 2


def _flagged_for_bad_hosts(farm, c):
    bad = farm.add_worker("bad", slots=1, runtime=0.05, exit_status=1)
    [jid] = c.submit([job("bh", [layer("r", 2, max_retries=1)])])
    farm.advance_until(lambda: c.job(jid)["state"] == "PAUSED", 60, step=0.05)
    assert [r["host"] for r in c.bad_hosts(jid) if r["banned"]] == ["bad"]
    assert "cuefarm resume --clear-bans" in c.why(jid)["reasons"][0]
    bad.exit_status = 0                     # the host is fixed
    return jid


def test_resume_can_clear_the_bad_hosts(farm):
    c = farm.client()
    jid = _flagged_for_bad_hosts(farm, c)
    with pytest.raises(CueFarmError) as info:
        c.request(p.JobControl("pause", [jid], clear_bans=True))
    assert "retry or resume" in str(info.value) and c.bad_hosts(jid)
    resumed = farm.cli("resume", "--clear-bans", str(jid))
    assert resumed.exit_code == 0 and "bad hosts cleared" in resumed.output, resumed.output
    assert c.bad_hosts(jid) == [] and c.job(jid)["flagged"] == ""
    farm.advance_until(lambda: not c.job(jid)["waiting"] and not c.job(jid)["running"], 60,
                       step=0.05)
    assert c.job(jid)["succeeded"] + c.job(jid)["dead"] == 2 and c.job(jid)["succeeded"]


def test_retry_can_clear_the_bad_hosts(farm):
    c = farm.client()
    jid = _flagged_for_bad_hosts(farm, c)
    c.retry(jid, clear_bans=True)
    assert c.bad_hosts(jid) == []
    c.resume(jid)
    farm.run_until_done([jid], 60)
    assert c.job(jid)["succeeded"] == 2


def test_why_names_bad_hosts_beside_locked_ones(farm):
    c = farm.client()
    for name in ("a", "b", "c"):
        farm.add_worker(name, slots=1, runtime=0.05, exit_status=1)
    farm.add_worker("d", slots=1, runtime=0.05)
    c.lock("d")
    [jid] = c.submit([job("why", [layer("r", 30, max_retries=100)])])
    farm.advance_until(lambda: sum(r["banned"] for r in c.bad_hosts(jid)) == 3, 60, step=0.05)
    reasons = c.why(jid)["reasons"]
    assert "every matching host off the bad-host list (1) is locked (d)" in reasons
    assert any("3 matching hosts are on this job's bad-host list: a, b, c" in r
               and "--clear-bans" in r for r in reasons), reasons


def test_job_paused_when_every_matching_host_failed_it_and_resume_clears_the_flag(farm):
    c = farm.client()
    # Two tagged hosts that fail everything; two untagged hosts that could run anything else.
    farm.add_worker("gpu-a", slots=1, runtime=0.05, tags=["gpu"], exit_status=1)
    farm.add_worker("gpu-b", slots=1, runtime=0.05, tags=["gpu"], exit_status=1)
    farm.add_worker("cpu-a", slots=1, runtime=0.05)
    farm.add_worker("cpu-b", slots=1, runtime=0.05)
    [jid] = c.submit([job("tg", [layer("r", 20, tags=["gpu"], max_retries=50)])])
    farm.advance_until(lambda: c.job(jid)["state"] == "PAUSED", 60, step=0.05)
    flagged = c.job(jid)["flagged"]
    assert "gpu-a" in flagged and "gpu-b" in flagged and "cpu" not in flagged
    assert {r["host"] for r in c.bad_hosts(jid) if r["banned"]} == {"gpu-a", "gpu-b"}
    assert c.job(jid)["succeeded"] == 0
    answer = c.why(jid)
    assert answer["flagged"] == flagged
    assert answer["reasons"][0].startswith(flagged) and "resume" in answer["reasons"][0]
    c.clear_bad_host(jid)
    c.resume(jid)
    assert c.job(jid)["flagged"] == "" and c.why(jid)["flagged"] == ""


def test_job_on_a_partly_failing_farm_is_not_paused(farm):
    c = farm.client()
    farm.add_worker("gpu-a", slots=1, runtime=0.05, tags=["gpu"], exit_status=1)
    farm.add_worker("gpu-b", slots=1, runtime=0.05, tags=["gpu"])
    farm.add_worker("cpu-a", slots=1, runtime=0.05)
    [jid] = c.submit([job("tg2", [layer("r", 12, tags=["gpu"], max_retries=20)])])
    farm.run_until_done([jid], 60)
    assert c.job(jid)["flagged"] == "" and c.job(jid)["succeeded"] == 12
    assert [r["host"] for r in c.bad_hosts(jid) if r["banned"]] == ["gpu-a"]


def test_why_names_dead_frames_when_nothing_waits(farm):
    c = farm.client()
    farm.add_worker("bad", slots=2, runtime=0.05, exit_status=1)
    [jid] = c.submit([job("dead", [layer("r", 2), layer("ok", 1, tags=["none"])])])
    farm.advance_until(lambda: c.job(jid)["dead"] == 2, 30, step=0.05)
    assert c.why(jid, layer="r")["reasons"] == ["2 frames are DEAD: retry or eat them"]
    assert "2 frames are DEAD: retry or eat them" in c.why(jid)["reasons"]
    c.frame_control("eat", jid, [c.frames(jid, layer="r")[0]["id"]])
    assert c.why(jid, layer="r")["reasons"] == ["1 frame is DEAD: retry or eat it"]


def test_what_a_worker_kept_for_another_farm_is_not_taken(farm):
    """Attempt ids restart at 1.1 in every farm: a worker coming from another farm (another
    database) with a completion of "1.1" must not finish this farm's frame 1."""
    c = farm.client()
    w = farm.add_worker("w1", slots=1, runtime=None)
    [jid] = c.submit([job("j", [layer("r", 1)])])
    farm.advance_until(lambda: c.frames(jid)[0]["state"] == "RUNNING", 30, step=0.05)
    [aid] = list(w.running)
    w.running.clear()
    now = farm.clock.wall()
    w.received.clear()
    w.send(p.Register(name="w1", hostname="w1", os="linux", cores=1, memory_mb=65536, slots=1,
                      version="x", completions=[p.Completion(aid, 0, now, now)],
                      farm_id="another-farm"))
    farm.settle()
    # Not ours: the attempt it does not run here is requeued, and runs again.
    [frame] = c.frames(jid)
    assert frame["state"] in ("WAITING", "RUNNING") and c.job(jid)["succeeded"] == 0
    assert not [b for b in w.received if isinstance(b, p.CompleteAck)]
    [registered] = [b for b in w.received if isinstance(b, p.Registered)]
    assert registered.farm_id and registered.farm_id != "another-farm"


def test_a_missing_shell_command_on_every_host_is_the_jobs_problem(farm):
    c = farm.client()
    why = "command not found (the shell exited 127)"
    for name in ("w1", "w2"):
        farm.add_worker(name, slots=1, runtime=0.05, exit_status=127, reason=why)
    [jid] = c.submit([job("typo", [layer("r", 4, command="rendr --frame #FRAME#",
                                         max_retries=10)])])
    farm.advance_until(lambda: c.job(jid)["state"] == "PAUSED", 60, step=0.05)
    assert c.job(jid)["flagged"].endswith(why) and c.bad_hosts(jid) == []
    assert "job's problem" in c.why(jid)["reasons"][0]
