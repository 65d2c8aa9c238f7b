"""The worker link recovering from lost messages, against simulated workers speaking the real
protocol: a Launch that never arrives, completions past one message, a garbled message."""

from __future__ import annotations

import time

from cuefarm import protocol as p
from tests.farm import wait_until
from tests.supervisor.test_wire import Peer, register


def heartbeat_until(peer: Peer, cls, running=(), kept=(), timeout: float = 30.0):
    """Heartbeat like a worker (every 0.2 s) until a message of type `cls` arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer.send(p.Heartbeat(running=[p.RunningAttempt(a) for a in running], kept=list(kept)))
        while peer.sock.poll(200):
            body = p.decode(peer.sock.recv())[1]
            if isinstance(body, cls):
                return body
    raise AssertionError(f"no {cls.__name__} within {timeout} s")


def test_a_launch_that_never_arrived_is_ended_as_lost_and_rerun(farm):
    w = Peer(farm.port + 1)
    register(w, "deaf", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "astray", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 0}]}])
    first = w.recv_type(p.Launch)
    # The worker never got it: its heartbeats say it runs nothing.
    again = heartbeat_until(w, p.Launch)
    assert again.frame_id == first.frame_id and again.attempt_id != first.attempt_id
    [frame] = c.frames(job_id)
    assert frame["state"] == "RUNNING" and frame["attempt"] == 2 and frame["retries"] == 0
    w.send(p.Complete([p.Completion(again.attempt_id, 0, 1.0, 2.0)]))
    assert c.wait(job_id, timeout=30)["succeeded"] == 1
    w.close()


def test_an_attempt_the_worker_runs_or_keeps_is_not_released(farm):
    w = Peer(farm.port + 1)
    register(w, "busy", slots=2)
    c = farm.client()
    [job_id] = c.submit([{"name": "kept", "layers": [
        {"name": "r", "command": "x", "range": "1-2", "max_retries": 0}]}])
    a, b = w.recv_type(p.Launch), w.recv_type(p.Launch)
    # For many heartbeat intervals it reports one running and the other's completion as
    # kept (its Complete message not received yet): neither may be released.
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        w.send(p.Heartbeat(running=[p.RunningAttempt(a.attempt_id)], kept=[b.attempt_id]))
        while w.sock.poll(200):
            body = p.decode(w.sock.recv())[1]
            assert not isinstance(body, p.Launch), "a frame the worker has was launched again"
    frames = {f["attempt_id"]: f for f in c.frames(job_id)}
    assert frames[a.attempt_id]["state"] == "RUNNING"
    assert frames[b.attempt_id]["state"] == "RUNNING"
    w.send(p.Complete([p.Completion(a.attempt_id, 0, 1.0, 2.0),
                       p.Completion(b.attempt_id, 0, 1.0, 2.0)]))
    assert c.wait(job_id, timeout=30)["succeeded"] == 2
    assert {f["attempt"] for f in c.frames(job_id)} == {1}
    w.close()
