"""Banning a connected host takes effect at once, against a real supervisor and real rqd
processes on SQLite and PostgreSQL: it shows as banned with no slots, its frames are purged
(requeued without spending a retry), rqd is refused and stops, and nothing new goes there."""

from __future__ import annotations

from tests.farm import host, marked_processes, wait_until


def test_ban_purges_refuses_and_keeps_the_host_off(quick_admission, tmp_path):
    farm = quick_admission
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    c = farm.client()
    marker = f"ban-{tmp_path.name}"
    [jid] = c.submit([{"name": "long", "layers": [
        {"name": "r", "command": "sleep 300", "range": "1-2", "max_retries": 0,
         "env": {"MARKER": marker}}]}])
    wait_until(lambda: c.job(jid)["running"] == 2, 30, message="both frames on w1")

    c.ban("w1", reason="stolen laptop")
    h = host(c, "w1")
    assert (h["lock"], h["lock_kind"], h["slots_total"], h["state"]) == \
        ("LOCKED", "banned", 0, "DOWN")
    # Requeued once rqd has said the processes ended (it asks again at once with them).
    wait_until(lambda: [(f["state"], f["retries"]) for f in c.frames(jid)] == [("WAITING", 0)] * 2,
               30, message="both frames requeued without spending a retry")
    wait_until(lambda: not marked_processes(marker), 30, message="no purged frame process left")
    wait_until(lambda: "w1 is banned" in (farm.workdir / "rqd-w1.log").read_text(), 30,
               message="the refusal in rqd's log")
    assert farm.workers["w1"].poll() is None        # rqd keeps running and asks again slowly
    assert any(r["name"] == "w1" and r["state"] == "banned" for r in c.admission())

    # Its retries are refused; the frames run elsewhere, never on w1.
    farm.start_rqd("w2", 2)
    farm.wait_hosts_up(["w2"])
    wait_until(lambda: c.job(jid)["running"] == 2, 30, message="both frames on w2")
    assert {f["host"] for f in c.frames(jid)} == {"w2"}
    assert c.frames(host="w1") == []
    h = host(c, "w1")
    assert (h["state"], h["lock_kind"], h["slots_total"]) == ("DOWN", "banned", 0)

    # Admitting it again lifts the ban's lock; rqd's next retry is accepted.
    c.kill(jid)
    c.admit("w1")
    farm.wait_hosts_up(["w1"])
    h = host(c, "w1")
    assert (h["lock"], h["lock_kind"], h["slots_total"]) == ("OPEN", "", 2)
