"""Two farms (two databases) served in turn by one worker with one data directory: attempt ids
restart at 1.1 in each, and neither farm ever sees the other's logs."""

from __future__ import annotations

import sys

from tests import jobs
from cuefarm.client import CueFarmError
from tests.farm import running_farm, wait_until


def _run_one_frame(farm, words: str) -> str:
    farm.start_rqd("w1", 1)
    c = farm.client()
    [job_id] = c.submit(jobs.job("one", [jobs.layer(frames=1, command=[
        sys.executable, "-c", f"print({words!r})"])]))
    assert c.wait(job_id, timeout=120)["succeeded"] == 1
    [frame] = c.frames(job_id)
    assert frame["attempt_id"] == f"{frame['id']}.1"
    return c.log(job_id, "r", 1)["text"]


def _log_or_none(c) -> str | None:
    try:
        return c.log(1, "r", 1)["text"]
    except CueFarmError:        # the worker has not registered again yet
        return None


def test_a_worker_moved_to_another_database_keeps_the_farms_apart(tmp_path):
    with running_farm(f"sqlite:///{tmp_path / 'a.db'}", tmp_path) as farm_a:
        first = _run_one_frame(farm_a, "output of farm A")
    with running_farm(f"sqlite:///{tmp_path / 'b.db'}", tmp_path) as farm_b:
        second = _run_one_frame(farm_b, "output of farm B")
    assert "CueFarm attempt 1.1" in first and "CueFarm attempt 1.1" in second
    assert "output of farm A" in first
    assert "output of farm B" in second and "farm A" not in second
    # Back to the first farm: its log is still its own.
    with running_farm(f"sqlite:///{tmp_path / 'a.db'}", tmp_path) as farm_a:
        farm_a.start_rqd("w1", 1)
        c = farm_a.client()
        again = wait_until(lambda: _log_or_none(c), 60, message="w1 to serve the log again")
    assert "output of farm A" in again and "farm B" not in again
