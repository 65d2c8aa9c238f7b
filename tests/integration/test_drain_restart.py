"""A drain that ended in an exit is done: the worker's next run is not drained again."""

from __future__ import annotations

from tests.farm import drained_with_exit, host, wait_until


def test_a_worker_drained_with_exit_runs_again_when_restarted(farm):
    c, jid = drained_with_exit(farm, "d1")
    assert c.job(jid)["waiting"] == 2
    # Started again (as systemd would), it registers, the drain is over, and it gets work.
    again = farm.start_rqd("d1", 1)
    job = c.wait(jid, timeout=60)
    assert job["succeeded"] == 3
    assert again.poll() is None, "the restarted worker exited again"
    assert host(c, "d1")["drain"] is None
    assert {f["host"] for f in c.frames(jid)} == {"d1"}


def test_a_stay_drain_is_asked_again_after_a_restart(farm):
    log = farm.workdir / "rqd-s1.log"
    asked = lambda: log.read_text(errors="replace").count("draining: no new frames")  # noqa: E731
    farm.start_rqd("s1", 1)
    farm.wait_hosts_up(["s1"])
    c = farm.client()
    assert c.drain("s1", then="stay") == 1
    wait_until(lambda: asked() == 1, 30, message="s1 to drain")
    farm.kill_rqd("s1")
    proc = farm.start_rqd("s1", 1)
    wait_until(lambda: asked() == 2, 60, message="the restarted s1 to be asked to drain again")
    assert host(c, "s1")["drain"] == "stay"
    assert proc.poll() is None
