"""A real farm end to end: supervisor and rqd processes, real frame processes, both databases."""

from __future__ import annotations

import signal
import sys
import time

import psutil
import pytest

from tests import jobs
from tests.farm import running_farm, wait_until
from tests.integration import ledger


def test_multilayer_job_with_dependency_succeeds(farm, tmp_path):
    cmd, book = ledger.command(tmp_path, 0.2)
    farm.start_rqd("w1", 2)
    farm.start_rqd("w2", 2)
    c = farm.client()
    [job_id] = c.submit([jobs.job("deps", [
        {"name": "render", "command": cmd, "range": "1-6", "max_retries": 0},
        {"name": "encode", "command": cmd, "range": "1", "depends_on": ["render"]}], "test")])
    job = c.wait(job_id, timeout=120)
    assert job["state"] == "FINISHED" and job["succeeded"] == 7 and job["status"] == "finished"
    by_frame = ledger.assert_no_overlap(book)
    render_end = max(e for (layer, _), runs in by_frame.items() if layer == "render"
                     for _, e in runs)
    [(encode_start, _)] = by_frame[("encode", 1)]
    assert encode_start >= render_end, "encode started before every render frame ended"
    frames = c.frames(job_id)
    assert {f["state"] for f in frames} == {"SUCCEEDED"}
    assert {f["host"] for f in frames} <= {"w1", "w2"}
    assert all(f["exit_status"] == 0 and f["runtime"] is not None for f in frames)
    log = c.log(job_id, "render", 3)
    assert "frame 3 on" in log["text"]


def test_tokens_and_environment_reach_the_frame(sqlite_farm, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    sqlite_farm.start_rqd("w1", 4)
    c = sqlite_farm.client()
    script = ("import os,sys; open(sys.argv[1] + '/' + sys.argv[2], 'w').write("
              "' '.join(os.environ[k] for k in ('CUE_JOB','CUE_LAYER','CUE_FRAME',"
              "'CUE_FRAME_START','CUE_FRAME_END','CUE_HOST','CUE_THREADS','OCIO')) + ' ' + "
              "sys.argv[3])")
    [job_id] = c.submit([jobs.job("tok", [{
        "name": "render", "range": "1-10x3", "chunk": 2, "slots": 2, "env": {"OCIO": "/x"},
        "command": [sys.executable, "-c", script, str(out), "#FRAME#", "#ZFRAME#-#FRAME_END#"]}],
        "test")])
    c.wait(job_id, timeout=60)
    assert sorted(p.name for p in out.iterdir()) == ["1", "7"]
    assert (out / "1").read_text() == "tok render 1 1 4 w1 2 /x 0001-4"
    assert (out / "7").read_text() == "tok render 7 7 10 w1 2 /x 0007-10"
    labels = [f["frames"] for f in c.frames(job_id)]
    assert labels == ["1,4", "7,10"]


def test_failing_frame_retries_then_dead(farm):
    farm.start_rqd("w1", 2)
    c = farm.client()
    [job_id] = c.submit([jobs.job("fail", [{"name": "bad", "command": "echo failing; exit 3",
                                            "range": "1", "max_retries": 2}], "test")])
    job = c.wait(job_id, timeout=60)
    assert job["stalled"] and job["dead"] == 1 and job["status"] == "failing"
    [frame] = c.frames(job_id)
    assert frame["state"] == "DEAD" and frame["attempt"] == 3 and frame["retries"] == 3
    assert frame["exit_status"] == 3
    assert "failing" in c.log(job_id, "bad", 1, attempt=2)["text"]
    # Three failures on w1, the only host: w1 is on the job's bad-host list and the job is
    # paused and flagged rather than burning the farm.
    assert job["state"] == "PAUSED" and "w1" in job["flagged"]
    # A person retries it: the frame waits again (for a host not on the list, or a resume).
    assert c.retry(job_id) == 1
    [frame] = c.frames(job_id)
    assert frame["state"] == "WAITING" and frame["retries"] == 0


def _frame_processes(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_kill_mid_frame_leaves_no_process(farm, tmp_path):
    marker = f"cuefarm-kill-{tmp_path.name}"
    farm.start_rqd("w1", 2)
    c = farm.client()
    # A shell that starts a grandchild: the kill must take the whole tree.
    cmd = f"sleep 300 & sleep 301; echo {marker}"
    [job_id] = c.submit([jobs.job("killme", [{"name": "hang", "command": cmd, "range": "1-2",
                                              "env": {"MARKER": marker}}], "test")])
    wait_until(lambda: c.job(job_id)["running"] == 2, 60, message="both frames running")
    wait_until(lambda: len([p for p in psutil.process_iter(["cmdline"])
                            if (p.info["cmdline"] or [])[:2] == ["sleep", "300"]]) >= 2, 30)
    assert c.kill(job_id) >= 2
    job = c.wait(job_id, timeout=60)
    assert job["state"] == "FINISHED" and job["status"] == "killed" and job["eaten"] == 2
    def gone():
        return not [p for p in psutil.process_iter(["cmdline", "environ"])
                    if _has_marker(p, marker)]
    wait_until(gone, 30, message="the killed frames' processes to be gone")


def _has_marker(proc, marker):
    try:
        return (proc.info.get("environ") or {}).get("MARKER") == marker
    except psutil.Error:
        return False


def test_worker_killed_with_sigkill_frames_rerun_elsewhere(farm, tmp_path):
    cmd, book = ledger.command(tmp_path, 1.0)
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    c = farm.client()
    [job_id] = c.submit([jobs.job("lost", [{"name": "render", "command": cmd, "range": "1-4",
                                            "max_retries": 0}], "test")])
    wait_until(lambda: c.job(job_id)["running"] == 2, 60, message="frames running on w1")
    farm.kill_rqd("w1", signal.SIGKILL)
    farm.start_rqd("w2", 2)
    job = c.wait(job_id, timeout=120)
    assert job["succeeded"] == 4, job
    frames = c.frames(job_id)
    # The frames w1 was running were lost there, not failed: no retry spent, rerun on w2.
    assert all(f["retries"] == 0 for f in frames)
    assert any(f["attempt"] >= 2 and f["host"] == "w2" for f in frames)
    hosts = {h["name"]: h for h in c.hosts()}
    assert hosts["w1"]["state"] == "DOWN"
    ledger.assert_no_overlap(book)


def test_supervisor_killed_mid_run_adopts_and_runs_each_frame_once(db_url, tmp_path):
    # A release time well past the outage: the workers keep their frames running meanwhile.
    with running_farm(db_url, tmp_path, host_expiry=5.0, release_after=20.0) as farm:
        _supervisor_crash(farm, tmp_path)


def _supervisor_crash(farm, tmp_path):
    # Frames take 4 s and the first ones are held until the new supervisor answers, so some
    # certainly run across the outage however slow the restart.
    gate = tmp_path / "gate"
    cmd, book = ledger.command(tmp_path, 4.0, gate)
    farm.start_rqd("w1", 3)
    farm.start_rqd("w2", 3)
    c = farm.client()
    [job_id] = c.submit([jobs.job("crash", [
        {"name": "render", "command": cmd, "range": "1-12", "max_retries": 0},
        {"name": "encode", "command": cmd, "range": "1", "depends_on": ["render"]}], "test")])
    wait_until(lambda: c.job(job_id)["running"] >= 4, 60, message="frames running")
    # Launched before the crash (a frame process may not have written its start line yet on a
    # busy machine, so the ledger's start times alone cannot say which these are).
    launched = {f["attempt_id"] for f in c.frames(job_id) if f["state"] == "RUNNING"}
    farm.kill_supervisor(signal.SIGKILL)
    time.sleep(0.5)       # frames keep running while nobody listens
    farm.start_supervisor()
    restarted = time.time()
    gate.touch()
    c = farm.client()
    job = c.wait(job_id, timeout=180)
    assert job["state"] == "FINISHED" and job["succeeded"] == 13, job
    runs = ledger.attempts(book)
    # Exactly once: one run per frame, each ending on its own.
    per_frame = {}
    for aid, r in runs.items():
        per_frame.setdefault((r["layer"], r["frame"]), []).append(aid)
    assert per_frame.keys() == {("render", n) for n in range(1, 13)} | {("encode", 1)}
    assert all(len(aids) == 1 for aids in per_frame.values()), per_frame
    assert all(r["how"] == "end" for r in runs.values()), runs
    ledger.assert_no_overlap(book)
    # The frames launched before the crash ran across the whole outage (held by the gate until
    # the new supervisor answered): it adopted them, so they kept their first attempt (nothing
    # was rerun, no retry spent).
    across = [aid for aid in launched if aid in runs and runs[aid]["end"] > restarted]
    assert len(launched) >= 4 and sorted(across) == sorted(launched), (launched, runs)
    frames = {f["attempt_id"]: f for f in c.frames(job_id)}
    for aid in across:
        assert frames[aid]["attempt"] == 1 and frames[aid]["state"] == "SUCCEEDED"
    assert all(f["retries"] == 0 and f["attempt"] == 1 for f in frames.values())


def test_pause_and_resume(farm, tmp_path):
    farm.start_rqd("w1", 1)
    c = farm.client()
    [job_id] = c.submit([jobs.job("paused", [
        {"name": "r", "command": "sleep 0.3", "range": "1-3"}], "test")])
    assert c.pause(job_id) == 1
    wait_until(lambda: c.job(job_id)["running"] == 0, 30)
    before = c.job(job_id)["succeeded"]
    time.sleep(1.0)
    assert c.job(job_id)["succeeded"] == before and c.job(job_id)["status"] == "paused"
    assert c.resume(job_id) == 1
    assert c.wait(job_id, timeout=60)["succeeded"] == 3


@pytest.mark.parametrize("purge", [False, True])
def test_lock_and_unlock_host(sqlite_farm, purge):
    sqlite_farm.start_rqd("w1", 2)
    sqlite_farm.wait_hosts_up(["w1"])
    c = sqlite_farm.client()
    [job_id] = c.submit([jobs.job("lock", [
        {"name": "r", "command": "sleep 1.5", "range": "1-3"}], "test")])
    wait_until(lambda: c.job(job_id)["running"] == 2, 30)
    assert c.lock("w1", purge=purge) == 1
    host = c.hosts()[0]
    assert host["lock"] == "LOCKED" and host["slots_total"] == 0
    if purge:
        wait_until(lambda: c.job(job_id)["running"] == 0, 30, message="purged frames to stop")
        frames = c.frames(job_id)
        assert all(f["state"] == "WAITING" and f["retries"] == 0 for f in frames)
    else:
        wait_until(lambda: c.job(job_id)["succeeded"] == 2, 30, message="running frames to end")
        time.sleep(0.5)
        assert c.job(job_id)["running"] == 0     # nothing new starts on a locked host
    assert c.unlock("w1") == 1
    assert c.wait(job_id, timeout=60)["succeeded"] == 3
