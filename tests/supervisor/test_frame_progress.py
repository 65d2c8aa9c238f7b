"""A running frame's progress, end to end: the frame prints progress lines, a real rqd reads
them and reports them with its heartbeats, the supervisor keeps them on the attempt and every
frame row (client API, change events, `cuefarm frames`) shows them; on both databases."""

from __future__ import annotations

import sys

from cuefarm import Events
from tests.farm import wait_until

PY = sys.executable


def waits_for(path, before: str, after: str = "", code: int = 0) -> list[str]:
    """A frame that prints `before`, waits until `path` exists, prints `after`, exits `code`."""
    script = (f"import os, sys, time\nprint({before!r}, flush=True)\n"
              f"while not os.path.exists({str(path)!r}): time.sleep(0.05)\n"
              f"print({after!r}, flush=True)\nsys.exit({code})\n")
    return [PY, "-c", script]


def frame_of(client, job_id: int, layer: str = "r") -> dict:
    [f] = client.frames(job_id, layer)
    return f


def test_progress_of_a_running_frame_shows_in_frames_and_events(farm, tmp_path):
    farm.start_rqd("w1", 2)
    farm.wait_hosts_up(["w1"])
    c = farm.client()
    go = tmp_path / "go"
    events = Events(farm.address)
    try:
        events.receive(5.0)               # subscribed: the greeting batch
        [job_id] = c.submit([{"name": "progress", "layers": [
            {"name": "r", "range": "1", "command": waits_for(
                go, "Fra:1 Mem:9.68M (Peak 10.27M) | Time:00:00.02 | Scene, ViewLayer "
                    "| Sample 4/16")}]}])
        f = wait_until(lambda: (f := frame_of(c, job_id))["progress"] == 25 and f,
                       60, message="the frame's progress to reach 25%")
        assert f["state"] == "RUNNING" and f["attempt_id"] == f"{f['id']}.1"

        def pushed():
            batch = events.receive(1.0)
            return batch is not None and any(r["id"] == f["id"] and r["progress"] == 25
                                             for r in batch.frames)
        wait_until(pushed, 30, message="a change event with the frame's progress")

        table = farm.cli("frames", str(job_id)).stdout
        assert "RUNNING" in table and "25%" in table, table
    finally:
        events.close()
    go.touch()
    c.wait(job_id, timeout=60)
    done = frame_of(c, job_id)
    assert (done["state"], done["progress"]) == ("SUCCEEDED", 100)


def test_a_failed_attempt_keeps_how_far_it_got_and_a_retry_starts_afresh(farm, tmp_path):
    farm.start_rqd("w1", 1)
    farm.wait_hosts_up(["w1"])
    c = farm.client()
    go, again = tmp_path / "go", tmp_path / "again"
    # The first attempt says 60%, then fails once `go` exists; the second says nothing until
    # `again` exists, then succeeds.
    script = ("import os, sys, time\n"
              "first = os.environ['CUE_ATTEMPT'].endswith('.1')\n"
              "print('PROGRESS 60%' if first else 'second try', flush=True)\n"
              f"wait = {str(go)!r} if first else {str(again)!r}\n"
              "while not os.path.exists(wait): time.sleep(0.05)\n"
              "sys.exit(3 if first else 0)\n")
    [job_id] = c.submit([{"name": "progress", "layers": [
        {"name": "r", "range": "1", "max_retries": 0, "command": [PY, "-c", script]}]}])
    wait_until(lambda: frame_of(c, job_id)["progress"] == 60, 60,
               message="the frame's progress to reach 60%")
    go.touch()
    dead = wait_until(lambda: (f := frame_of(c, job_id))["state"] == "DEAD" and f, 60,
                      message="the frame to die")
    assert (dead["progress"], dead["exit_status"]) == (60, 3)     # how far it got
    assert "%" not in farm.cli("frames", str(job_id)).stdout       # not running: not shown

    c.retry(job_id)
    f = wait_until(lambda: (f := frame_of(c, job_id))["attempt"] == 2
                   and f["state"] == "RUNNING" and f, 60, message="the second attempt to run")
    assert f["progress"] is None
    again.touch()
    c.wait(job_id, timeout=60)
    assert frame_of(c, job_id)["progress"] == 100
