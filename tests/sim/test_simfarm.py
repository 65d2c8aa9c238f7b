"""The in-process farm itself: a job runs to the end on simulated time, kills and liveness work,
and a case takes milliseconds, on both databases."""

from __future__ import annotations

from cuefarm import protocol as p


def job(name="j", frames="1-6", **layer):
    return {"name": name, "project": "sim",
            "layers": [{"name": "render", "command": ["true"], "range": frames, **layer}]}


def test_a_job_runs_to_the_end_on_simulated_time(farm):
    farm.add_worker("h1", slots=2, runtime=5.0)
    [jid] = farm.submit([job()])
    t0 = farm.clock.mono()
    [row] = farm.run_until_done([jid])
    assert row["succeeded"] == 6 and row["state"] == "FINISHED"
    launches = [e for e in farm.ledger if e[0] == "launch"]
    assert len(launches) == 6
    # two slots, five seconds a frame: three rounds
    assert 15.0 <= farm.clock.mono() - t0 <= 17.0


def test_a_silent_worker_goes_down_and_its_frames_run_elsewhere(farm):
    w1 = farm.add_worker("h1", slots=1, runtime=None)
    [jid] = farm.submit([job(frames="1")])
    [(_, _, host, launch)] = [e for e in farm.ledger if e[0] == "launch"]
    assert host == "h1"
    w1.alive = False                    # no heartbeat, no answer
    farm.add_worker("h2", slots=1, runtime=1.0)
    farm.advance(farm.cfg.host_expiry + 1)
    hosts = {h["name"]: h["state"] for h in farm.do(p.ListHosts()).rows}
    assert hosts == {"h1": "DOWN", "h2": "UP"}
    assert farm.ledger[-1][0] == "launch" and len(farm.ledger) == 1   # not released yet
    farm.advance(farm.cfg.release_after + 2)
    [row] = farm.run_until_done([jid])
    assert row["succeeded"] == 1
    runs = [(e[2], e[3].attempt_id) for e in farm.ledger if e[0] == "launch"]
    assert runs[0][0] == "h1" and runs[-1][0] == "h2" and runs[-1][1] != launch.attempt_id


def test_a_kill_reaches_the_worker(farm):
    w = farm.add_worker("h1", slots=1, runtime=None)
    [jid] = farm.submit([job(frames="1")])
    assert len(w.running) == 1
    farm.do(p.JobControl("kill", [jid]))
    assert not w.running
    assert any(isinstance(b, p.Kill) for b in w.received)
