"""Host management against a real supervisor with real rqd processes (several on this machine,
each with its own name), on SQLite and PostgreSQL."""

from __future__ import annotations

import sys

import psutil
import pytest

from cuefarm import CueFarmError
from tests.farm import drained_with_exit, host, used_total, wait_until


def test_admission_modes(quick_admission):
    farm = quick_admission
    c = farm.client()
    with pytest.raises(CueFarmError) as info:
        c.set_admission(mode="ranges", networks=["10.0.0.0/33"])
    assert info.value.field == "networks"
    c.set_admission(mode="ranges", networks=["10.0.0.0/8"], patterns=["ok-*"])
    farm.start_rqd("ok-1", 1)
    farm.start_rqd("bad-1", 1)
    farm.wait_hosts_up(["ok-1"])
    wait_until(lambda: any(r["name"] == "bad-1" and r["state"] == "pending"
                           for r in c.admission()), 30, message="bad-1 pending")
    assert "bad-1" not in {h["name"] for h in c.hosts()}
    c.admit("bad-1")
    farm.wait_hosts_up(["bad-1"])
    # Loopback is 127.0.0.0/8: admitting by range works from the peer's real address.
    c.set_admission(mode="ranges", networks=["127.0.0.0/8"], patterns=[])
    farm.start_rqd("any-name", 1)
    farm.wait_hosts_up(["any-name"])
    c.set_admission(mode="named")
    c.ban("late", reason="not ours")
    farm.start_rqd("late", 1)
    wait_until(lambda: any(r["name"] == "late" and r["state"] == "banned"
                           for r in c.admission()), 10)
    assert "late" not in {h["name"] for h in c.hosts()}
    # rqd logs the supervisor's clear refusal.
    wait_until(lambda: "late is banned" in (farm.workdir / "rqd-late.log").read_text(), 10,
               message="the refusal in rqd's log")


def test_lock_finish_purge_and_unlock_sequence(farm, tmp_path):
    farm.start_rqd("w1", 4)
    farm.wait_hosts_up(["w1"])
    c = farm.client()
    assert used_total(c, "w1") == "0/4"
    marker = f"purge-{tmp_path.name}"
    [jid] = c.submit([{"name": "big", "layers": [
        {"name": "r", "command": f"sleep 2.5; echo {marker}", "range": "1", "slots": 4,
         "max_retries": 0, "env": {"MARKER": marker}}]}])
    wait_until(lambda: used_total(c, "w1") == "4/4", 30, message="4/4")
    c.lock("w1")
    assert used_total(c, "w1") == "4/0"          # finishing its 4-slot frame, nothing new
    wait_until(lambda: used_total(c, "w1") == "0/0", 30, message="0/0 after the frame ended")
    assert c.job(jid)["succeeded"] == 1
    c.unlock("w1")
    assert used_total(c, "w1") == "0/4"
    # Lock and purge: the running frame is killed and requeued without spending a retry.
    [jid2] = c.submit([{"name": "purged", "layers": [
        {"name": "r", "command": "sleep 300", "range": "1", "slots": 2, "max_retries": 0,
         "env": {"MARKER": marker}}]}])
    wait_until(lambda: used_total(c, "w1") == "2/4", 30)
    c.lock("w1", purge=True)
    wait_until(lambda: used_total(c, "w1") == "0/0", 30, message="purged")
    [frame] = c.frames(jid2)
    assert frame["state"] == "WAITING" and frame["retries"] == 0
    wait_until(lambda: not [p for p in psutil.process_iter(["environ"])
                            if (p.info.get("environ") or {}).get("MARKER") == marker], 30,
               message="no purged process left")
    # A partial lock leaves slots; unlocking restores the configured total.
    c.lock("w1", slots=1)
    assert used_total(c, "w1") in ("0/1", "1/1")
    c.unlock("w1")
    c.kill(jid2)


def test_locks_by_pattern_tag_and_list_and_bad_input(farm):
    for name in ("render-01", "render-02", "ws-01"):
        farm.start_rqd(name, 1, "--tag", "desktop" if name.startswith("ws") else "node")
    farm.wait_hosts_up(["render-01", "render-02", "ws-01"])
    c = farm.client()
    assert c.lock("render-*") == 2
    assert c.lock("tag:desktop") == 1
    assert {h["name"]: h["lock"] for h in c.hosts()} == {
        "render-01": "LOCKED", "render-02": "LOCKED", "ws-01": "LOCKED"}
    assert c.unlock(["render-01", "ws-01"]) == 2
    for bad, field in ((lambda: c.lock("nope"), "hosts"),
                       (lambda: c.lock("render-01", slots=-1), "slots"),
                       (lambda: c.set_host_slots("render-01", -2), "slots"),
                       (lambda: c.set_host_slots("ghost", 2), "host"),
                       (lambda: c.host_tags("render-01", ["bad tag"]), "tags")):
        with pytest.raises(CueFarmError) as info:
            bad()
        assert info.value.field == field
    assert host(c, "render-01")["lock"] == "OPEN" and host(c, "render-02")["lock"] == "LOCKED"


def test_slots_and_tags_set_by_an_admin(farm):
    farm.start_rqd("w1", 4)
    farm.wait_hosts_up(["w1"])
    c = farm.client()
    c.set_host_slots("w1", 1)
    assert used_total(c, "w1") == "0/1"
    [jid] = c.submit([{"name": "gpu", "layers": [
        {"name": "r", "command": "true", "range": "1-2", "tags": ["gpu"]}]}])
    assert any("lacks tag gpu" in r for r in c.why(jid)["reasons"])
    c.host_tags("w1", add=["gpu"], remove=["linux"])
    assert "gpu" in host(c, "w1")["tags"] and "linux" not in host(c, "w1")["tags"]
    assert c.wait(jid, timeout=60)["succeeded"] == 2
    c.set_host_slots("w1", None)
    assert used_total(c, "w1") == "0/4"


def test_path_maps_reach_the_frame_and_check(farm, tmp_path):
    real = tmp_path / "real_proj"
    real.mkdir()
    (real / "scene.txt").write_text("hello from the mapped path")
    out = tmp_path / "out.txt"
    farm.start_rqd("lin", 1)
    farm.wait_hosts_up(["lin"])
    c = farm.client()
    c.add_path_map("linux", "/mnt/fakeproj", str(real))
    rid = c.add_path_map("windows", "/mnt/fakeproj", "P:\\proj")
    with pytest.raises(CueFarmError) as info:
        c.add_path_map("beos", "/a", "/b")
    assert info.value.field == "os"
    check = c.check_path("lin", "/mnt/fakeproj/shots/a.exr")
    assert check["result"] == f"{real}/shots/a.exr" and check["rule"]["origin"] == "supervisor"
    [jid] = c.submit([{"name": "pm", "layers": [
        {"name": "r", "range": "1", "max_retries": 0,
         "command": [sys.executable, "-c", "import sys; open(sys.argv[2], 'w').write("
                     "open(sys.argv[1]).read())", "/mnt/fakeproj/scene.txt", str(out)]}]}])
    assert c.wait(jid, timeout=60)["succeeded"] == 1
    assert out.read_text() == "hello from the mapped path"
    assert [r["id"] for r in c.path_maps()][-1] == rid


def test_refusal_by_rqd_sends_the_frame_elsewhere(farm):
    farm.start_rqd("full-disk", 2, "--min-free-disk-mb", str(10 ** 9))
    farm.wait_hosts_up(["full-disk"])
    c = farm.client()
    [jid] = c.submit([{"name": "ref", "layers": [
        {"name": "r", "command": "true", "range": "1-3", "max_retries": 0}]}])
    farm.start_rqd("ok", 2)
    job = c.wait(jid, timeout=60)
    assert job["succeeded"] == 3
    assert {f["host"] for f in c.frames(jid)} == {"ok"}
    assert all(f["retries"] == 0 for f in c.frames(jid))


def test_drain_then_exit(farm):
    c, jid = drained_with_exit(farm, "d1")
    job = c.job(jid)
    assert job["succeeded"] == 1 and job["waiting"] == 2   # nothing new started while draining
    assert host(c, "d1")["drain"] == "exit"               # until the worker runs again
    # rqd started again after its drain-and-exit: that drain is over, and the rest runs there.
    farm.start_rqd("d1", 1)
    wait_until(lambda: host(c, "d1")["drain"] is None and host(c, "d1")["state"] == "UP", 30,
               message="the finished drain to clear when d1 registers again")
    assert c.wait(jid, timeout=60)["succeeded"] == 3
    assert farm.workers["d1"].poll() is None               # not told to drain and exit again


def test_idle_lock_shows_and_stops_dispatch(farm, tmp_path):
    idle = tmp_path / "idle"
    idle.write_text("0")      # someone is at the machine
    farm.env["CUEFARM_TEST_IDLE_FILE"] = str(idle)
    farm.env["CUEFARM_RQD_NIMBY_IDLE"] = "2"      # unlock after 2 s without input
    farm.start_rqd("ws", 2, "--nimby")
    farm.wait_hosts_up(["ws"])
    c = farm.client()
    wait_until(lambda: host(c, "ws")["lock_kind"] == "nimby", 30, message="idle lock")
    assert used_total(c, "ws") == "0/0"
    [jid] = c.submit([{"name": "idle", "layers": [
        {"name": "r", "command": "true", "range": "1", "max_retries": 0}]}])
    assert any("ws" in r for r in c.why(jid)["reasons"])    # held back by the idle lock
    assert c.job(jid)["succeeded"] == 0 and host(c, "ws")["lock_kind"] == "nimby"
    # The user logs out: the probe no longer answers, so the lock holds until nimby_idle
    # seconds after the last activity it saw, then lifts and the frame runs there.
    idle.write_text("none")
    wait_until(lambda: host(c, "ws")["lock_kind"] == "", 30, message="the idle lock to clear")
    assert c.wait(jid, timeout=60)["succeeded"] == 1
    assert [f["host"] for f in c.frames(jid)] == ["ws"]
    assert used_total(c, "ws") == "0/2"
