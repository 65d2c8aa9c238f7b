"""The worker link recovering from lost messages, against simulated workers speaking the real
protocol: a Launch that never arrives, completions past one message, a garbled message."""

from __future__ import annotations

import time

from cuefarm import protocol as p
from tests.farm import wait_until
from tests.supervisor.test_wire import Peer, register


def heartbeat_until(peer: Peer, cls, running=(), kept=(), timeout: float = 30.0,
                    launch_seq: int = 0):
    """Heartbeat like a worker (every 0.2 s) until a message of type `cls` arrives."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        peer.send(p.Heartbeat(running=[p.RunningAttempt(a) for a in running], kept=list(kept),
                              launch_seq=launch_seq))
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


def test_a_launch_a_later_one_overtook_is_ended_as_lost_at_once(farm):
    """The worker received a later launch, so an earlier one it does not run never will be
    (one connection keeps its order): it is ended as lost after a few heartbeats, well before
    the release window (host expiry + release, 6 s here) an unproven absence waits for."""
    w = Peer(farm.port + 1)
    register(w, "gappy", slots=2)
    c = farm.client()
    [job_id] = c.submit([{"name": "overtaken", "layers": [
        {"name": "r", "command": "x", "range": "1-2", "max_retries": 0}]}])
    a, b = w.recv_type(p.Launch), w.recv_type(p.Launch)
    assert 0 < a.seq < b.seq
    started = time.monotonic()
    again = heartbeat_until(w, p.Launch, running=[b.attempt_id], launch_seq=b.seq)
    assert again.frame_id == a.frame_id and again.seq > b.seq
    assert time.monotonic() - started < farm.host_expiry + farm.release_after
    frames = {f["id"]: f for f in c.frames(job_id)}
    assert frames[a.frame_id]["attempt"] == 2 and frames[a.frame_id]["retries"] == 0
    assert frames[b.frame_id]["attempt_id"] == b.attempt_id      # the one it runs stays
    w.send(p.Complete([p.Completion(again.attempt_id, 0, 1.0, 2.0),
                       p.Completion(b.attempt_id, 0, 1.0, 2.0)]))
    assert c.wait(job_id, timeout=30)["succeeded"] == 2
    w.close()


def test_a_busy_worker_that_has_not_read_its_launch_keeps_it(farm):
    """Heartbeats sent before the worker read a launch (its launch_seq is below the launch's)
    prove nothing: for longer than the lost grace the frame is left alone, and once the worker
    reads the launch and runs it, it is never launched again."""
    w = Peer(farm.port + 1)
    register(w, "slow", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "unread", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 0}]}])
    # Heartbeat for 4 s (past the 2.5-heartbeat grace, inside the 6 s window) without reading.
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        w.send(p.Heartbeat(launch_seq=0))
        time.sleep(0.2)
    launches = []
    while w.sock.poll(200):
        body = p.decode(w.sock.recv())[1]
        if isinstance(body, p.Launch):
            launches.append(body)
    assert len(launches) == 1, "the frame was launched again while the worker was busy"
    [la] = launches
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        w.send(p.Heartbeat(running=[p.RunningAttempt(la.attempt_id)], launch_seq=la.seq))
        while w.sock.poll(200):
            assert not isinstance(p.decode(w.sock.recv())[1], p.Launch)
    [frame] = c.frames(job_id)
    assert frame["attempt_id"] == la.attempt_id and frame["attempt"] == 1
    w.send(p.Complete([p.Completion(la.attempt_id, 0, 1.0, 2.0)]))
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


def test_kept_completions_past_one_message_are_all_accepted(farm):
    n = 620       # more than a Register carries (500)
    w = Peer(farm.port + 1)
    register(w, "many", slots=n)
    c = farm.client()
    [job_id] = c.submit([{"name": "many", "layers": [
        {"name": "r", "command": "x", "range": f"1-{n}", "max_retries": 0}]}])
    launches = [w.recv_type(p.Launch) for _ in range(n)]
    farm.kill_supervisor()
    w.close()
    farm.start_supervisor()
    # Every frame finished while the supervisor was away; the worker comes back with the
    # first 500 completions in its Register and the ids of the rest.
    done = [p.Completion(la.attempt_id, 0, 1.0, 2.0) for la in launches]
    w = Peer(farm.port + 1)
    w.send(p.Register(name="many", hostname="many", os="linux", cores=n, memory_mb=4096,
                      slots=n, version="0", completions=done[:500],
                      kept=[d.attempt_id for d in done[500:]]))
    w.recv_type(p.Registered)
    c = farm.client()
    frames = c.frames(job_id)
    assert sum(f["state"] == "SUCCEEDED" for f in frames) == 500
    assert sum(f["state"] == "RUNNING" for f in frames) == n - 500   # not taken for lost
    # The rest arrive later, after a few heartbeats naming them as kept.
    for _ in range(3):
        w.send(p.Heartbeat(kept=[d.attempt_id for d in done[500:]]))
        time.sleep(0.5)
    w.send(p.Complete(done[500:]))
    ack = w.recv_type(p.CompleteAck)
    if done[0].attempt_id in ack.attempt_ids:       # the Register's own, first
        assert len(ack.attempt_ids) == 500
        ack = w.recv_type(p.CompleteAck)
    assert sorted(ack.attempt_ids) == sorted(d.attempt_id for d in done[500:])
    job = c.wait(job_id, timeout=60)
    assert job["succeeded"] == n
    assert {f["attempt"] for f in c.frames(job_id)} == {1}
    w.close()


def test_a_message_of_several_parts_gets_an_error_reply(sqlite_farm):
    w = Peer(sqlite_farm.port + 1)
    w.sock.send_multipart([p.encode(p.Heartbeat()), b"extra"])
    reply = w.recv()
    assert isinstance(reply, p.Error) and reply.code == "malformed" and "2" in reply.message
    register(w, "after", slots=1)        # and the link still works
    w.close()


def test_a_worker_is_told_its_slot_total_when_locked_and_unlocked(sqlite_farm):
    w = Peer(sqlite_farm.port + 1)
    register(w, "lockme", slots=3)
    c = sqlite_farm.client()
    assert c.lock("lockme") == 1
    told = wait_until(lambda: _slots_told(w) == 0, 15, message="slots 0 to be told")
    assert told
    assert c.unlock("lockme") == 1
    wait_until(lambda: _slots_told(w) == 3, 15, message="slots 3 to be told")
    w.close()


def _slots_told(peer: Peer):
    """The slot total of the latest Ack that carried one, heartbeating meanwhile."""
    peer.send(p.Heartbeat())
    slots = None
    while peer.sock.poll(200):
        body = p.decode(peer.sock.recv())[1]
        if isinstance(body, p.Ack) and body.slots is not None:
            slots = body.slots
    return slots
