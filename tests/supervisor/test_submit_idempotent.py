"""A submit sent again (no reply came) is answered with the first one's jobs."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from cuefarm import Client, CueFarmError
from cuefarm import protocol as p

JOB = {"name": "once", "layers": [{"name": "r", "command": ["true"], "range": "1-3"}]}


def test_a_repeated_submission_id_returns_the_first_jobs(farm):
    c = farm.client()
    first = list(c.request(p.Submit(jobs=[JOB, JOB], submission="sub-1")).job_ids)
    again = list(c.request(p.Submit(jobs=[JOB, JOB], submission="sub-1")).job_ids)
    assert again == first and len(first) == 2
    assert sorted(j["id"] for j in c.jobs(include_finished=True)) == sorted(first)
    # Another submission id is another submit; another user cannot reuse the id.
    [third] = c.request(p.Submit(jobs=[JOB], submission="sub-2")).job_ids
    assert third not in first
    other = farm.client(user="mallory")
    with pytest.raises(CueFarmError, match="used by another user"):
        other.request(p.Submit(jobs=[JOB], submission="sub-1"))
    with pytest.raises(CueFarmError, match="submission id") as err:
        c.request(p.Submit(jobs=[JOB], submission="x" * 65))
    assert err.value.field == "submission"
    assert len(c.jobs(include_finished=True)) == 3


def test_a_submit_without_reply_is_sent_again_and_stored_once(sqlite_farm):
    c = Client(sqlite_farm.address, timeout=1.0)
    c.ping()                                    # connected before the supervisor stalls
    pid = sqlite_farm.supervisor.pid
    os.kill(pid, signal.SIGSTOP)                # takes the request, cannot answer in time
    resume = threading.Timer(1.6, os.kill, (pid, signal.SIGCONT))
    resume.start()
    try:
        ids = c.submit([JOB], retries=3)
    finally:
        resume.join()
        os.kill(pid, signal.SIGCONT)
    listed = [j["id"] for j in sqlite_farm.client().jobs(include_finished=True)]
    assert listed == ids and len(ids) == 1
    c.close()


def test_a_supervisor_that_is_not_there_is_not_asked_again(tmp_path):
    from tests.farm import free_port_block
    c = Client(f"127.0.0.1:{free_port_block()}", timeout=1.0)
    with pytest.raises(CueFarmError) as err:
        c.submit([JOB])
    assert err.value.sent is False and "cannot connect" in str(err.value)
