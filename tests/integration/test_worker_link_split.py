"""A worker cut off from its supervisor for longer than the release time stops its own frames
before the supervisor runs them elsewhere: never two runs of one frame at once."""

from __future__ import annotations

import signal

import pytest

from tests.farm import free_port_block, running_farm, wait_until
from tests.integration import ledger


@pytest.fixture
def split_farm(db_url, tmp_path):
    with running_farm(db_url, tmp_path, host_expiry=2.0, release_after=3.0) as f:
        yield f


def test_a_split_longer_than_the_release_time_never_runs_a_frame_twice(split_farm, tmp_path):
    farm = split_farm
    gate = tmp_path / "gate"        # the frame runs until the test opens it
    cmd, book = ledger.command(tmp_path, 0.0, gate)
    farm.start_rqd("cut", 1)
    farm.wait_hosts_up(["cut"])
    c = farm.client()
    [job_id] = c.submit([{"name": "split", "project": "test", "layers": [
        {"name": "r", "command": cmd, "range": "1", "max_retries": 0}]}])
    wait_until(lambda: book.exists() and ledger.attempts(book), 60, message="the frame to start")
    [first] = ledger.attempts(book)
    # The old supervisor dies; a new one on the same database but another address takes
    # over.  "cut" only knows the old address: for the new supervisor it went silent, and
    # after expiry plus release time it reruns the frame on "other".
    farm.kill_supervisor(signal.SIGKILL)
    farm.port = free_port_block()
    farm.address = f"127.0.0.1:{farm.port}"
    farm.start_supervisor()
    farm.start_rqd("other", 1)
    wait_until(lambda: ledger.attempts(book)[first]["how"] is not None, 60,
               message="the cut-off worker to stop its own frame")
    gate.touch()                    # from now on a run of the frame ends at once
    c = farm.client()
    job = c.wait(job_id, timeout=120)
    assert job["succeeded"] == 1, job
    runs = ledger.attempts(book)
    assert len(runs) == 2, runs
    assert runs[first]["how"] == "killed", "the cut-off worker did not stop its own frame"
    ledger.assert_no_overlap(book)
    [frame] = c.frames(job_id)
    assert frame["host"] == "other" and frame["attempt"] == 2 and frame["retries"] == 0
