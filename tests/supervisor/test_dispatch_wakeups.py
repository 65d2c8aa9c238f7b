"""A frame that only fits on a host kept off for a while (a refusal's backoff, a bad-host ban)
is dispatched when that time is up, with no other event to trigger a pass."""

from __future__ import annotations

import time

import pytest

from cuefarm import protocol as p
from tests.farm import running_farm
from tests.supervisor.test_wire import Peer, register


def launch_while_heartbeating(peers: list[Peer], timeout: float = 15.0) -> p.Launch:
    """Heartbeat from every peer (as workers do, which triggers no pass) until one of them
    gets a Launch; return it.  Shorter than any periodic housekeeping that might dispatch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for peer in peers:
            peer.send(p.Heartbeat(running=[p.RunningAttempt(a) for a in peer.runs]))
        time.sleep(0.2)
        for peer in peers:
            while peer.sock.poll(0):
                body = p.decode(peer.sock.recv())[1]
                if isinstance(body, p.Launch):
                    return body
    raise AssertionError(f"no Launch within {timeout} s")


def test_a_host_that_refused_gets_the_frame_after_its_backoff(sqlite_farm):
    w = Peer(sqlite_farm.port + 1)
    w.runs = []
    register(w, "only", slots=1)
    c = sqlite_farm.client()
    [job_id] = c.submit([{"name": "backoff", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 0}]}])
    first = w.recv_type(p.Launch)
    w.send(p.Refuse(first.attempt_id, "busy for a moment"))
    again = launch_while_heartbeating([w])
    assert again.frame_id == first.frame_id and again.attempt_id != first.attempt_id
    w.close()


@pytest.fixture
def ban_farm(db_url, tmp_path):
    with running_farm(db_url, tmp_path, {"CUEFARM_SUPERVISOR_BAD_HOST_PERIOD": "4"}) as f:
        yield f


def test_a_banned_host_gets_the_frame_when_its_ban_ends(ban_farm):
    farm = ban_farm
    busy = Peer(farm.port + 1)
    register(busy, "busy", slots=1)
    c = farm.client()
    c.submit([{"name": "hog", "layers": [{"name": "r", "command": "x", "range": "1"}]}])
    busy.runs = [busy.recv_type(p.Launch).attempt_id]      # runs on, keeping "busy" full
    bad = Peer(farm.port + 1)
    bad.runs = []
    register(bad, "bad", slots=1)
    [job_id] = c.submit([{"name": "banned", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 0}]}])
    first = bad.recv_type(p.Launch)
    # A refusal that retrying the same host cannot fix keeps "bad" off the job (4 s here).
    bad.send(p.Refuse(first.attempt_id, "user artist does not exist here"))
    again = launch_while_heartbeating([busy, bad])
    assert again.frame_id == first.frame_id and again.job_id == job_id
    assert again.attempt_id != first.attempt_id
    busy.close()
    bad.close()


@pytest.fixture
def small_batch_farm(tmp_path):
    with running_farm(f"sqlite:///{tmp_path / 'batch.db'}", tmp_path,
                      {"CUEFARM_SUPERVISOR_DISPATCH_BATCH": "2"}) as f:
        yield f


def test_a_pass_stopped_by_its_batch_size_goes_on_by_itself(small_batch_farm):
    """Two frames a pass, five free slots, five frames: the passes go on, turn after turn,
    with nothing else happening (no heartbeat, no completion) until every slot is filled."""
    w = Peer(small_batch_farm.port + 1)
    register(w, "wide", slots=5)
    c = small_batch_farm.client()
    c.submit([{"name": "five", "layers": [{"name": "r", "command": "x", "range": "1-5"}]}])
    launched = {w.recv_type(p.Launch, timeout=5.0).frame_id for _ in range(5)}
    assert len(launched) == 5
    w.close()
