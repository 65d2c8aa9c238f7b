"""Listing frames through a real supervisor: pages of a job's frames, bad pages refused, and the
frames running on one host (workers are simulated peers speaking the real protocol)."""

from __future__ import annotations

import pytest

from cuefarm import CueFarmError
from cuefarm import protocol as p
from tests.farm import wait_until
from tests.supervisor.test_wire import Peer, register

# Three layers of different sizes, one chunked, submitted in an order unlike their names.
JOB = {"name": "paged", "project": "pages", "layers": [
    {"name": "sim", "command": "x", "range": "1-1234"},
    {"name": "comp", "command": "x", "range": "1-700", "depends_on": ["sim"]},
    {"name": "encode", "command": "x", "range": "1-999", "chunk": 10}]}
TOTAL = 1234 + 700 + 100


def pages(client, job_id, limit, **kw) -> list[list[dict]]:
    """Every page of `limit` frames, until a short one."""
    out, offset = [], 0
    while True:
        page = client.frames(job_id, offset=offset, limit=limit, **kw)
        out.append(page)
        offset += len(page)
        if len(page) < limit:
            return out


def test_pages_are_disjoint_consecutive_and_cover_the_job(farm):
    c = farm.client()
    [job_id] = c.submit(JOB)
    [other] = c.submit({"name": "other", "layers": [{"name": "r", "command": "x",
                                                     "range": "1-50"}]})
    everything = c.frames(job_id)
    assert len(everything) == TOTAL
    # The supervisor's order: layers as submitted, then frames in dispatch order.
    layers = [f["layer"] for f in everything]
    assert layers == ["sim"] * 1234 + ["comp"] * 700 + ["encode"] * 100
    assert [f["number"] for f in everything[:3]] == [1, 2, 3]
    assert [f["frames"] for f in everything[-2:]] == ["981-990", "991-999"]
    for limit in (1000, 700, 2034, TOTAL + 1):
        got = pages(c, job_id, limit)
        assert all(len(pg) == limit for pg in got[:-1]) and len(got[-1]) < limit
        ids = [f["id"] for pg in got for f in pg]
        assert len(ids) == len(set(ids)) == TOTAL
        assert [f for pg in got for f in pg] == everything
    assert c.frames(job_id, offset=TOTAL, limit=10) == []
    assert c.frames(job_id, offset=TOTAL + 500, limit=10) == []
    # A page of one layer, and of some states, is a page of that layer's or those states' frames.
    comp = c.frames(job_id, "comp")
    assert [f for pg in pages(c, job_id, 300, layer="comp") for f in pg] == comp
    assert {f["state"] for f in comp} == {"DEPEND"}
    waiting = c.frames(job_id, states=["WAITING"])
    assert len(waiting) == 1234 + 100
    assert [f for pg in pages(c, job_id, 500, states=["WAITING"]) for f in pg] == waiting
    assert c.frames(job_id, offset=5, limit=3) == everything[5:8]
    assert {f["job_id"] for f in c.frames(other, limit=100)} == {other}


@pytest.mark.parametrize("kw,field,words", [
    ({"offset": -1, "limit": 10}, "offset", "offset must be 0 or more, not -1"),
    ({"offset": -5}, "offset", "not -5"),
    ({"limit": 0}, "limit", f"limit must be from 1 to {p.MAX_FRAMES_PAGE}"),
    ({"limit": -3}, "limit", "not -3"),
    ({"limit": p.MAX_FRAMES_PAGE + 1}, "limit", f"not {p.MAX_FRAMES_PAGE + 1}"),
])
def test_bad_pages_are_refused(sqlite_farm, kw, field, words):
    c = sqlite_farm.client()
    [job_id] = c.submit({"name": "j", "layers": [{"name": "r", "command": "x", "range": "1-5"}]})
    before = c.frames(job_id)
    with pytest.raises(CueFarmError) as info:
        c.frames(job_id, **kw)
    assert (info.value.code, info.value.field) == ("invalid", field)
    assert words in str(info.value)
    assert c.frames(job_id) == before and c.job(job_id)["waiting"] == 5
    assert c.frames(job_id, limit=p.MAX_FRAMES_PAGE) == before      # the maximum itself is fine


def test_a_job_or_a_host_is_needed_and_not_both(sqlite_farm):
    c = sqlite_farm.client()
    [job_id] = c.submit({"name": "j", "layers": [{"name": "r", "command": "x", "range": "1"}]})
    cases = [({}, "invalid", "job_id", "needs a job_id, or a host"),
             ({"job_id": job_id, "host": "node1"}, "invalid", "job_id", "cannot be combined"),
             ({"host": "node1", "states": ["DEAD"]}, "invalid", "states", "cannot be combined"),
             ({"host": "nowhere"}, "not_found", "host", "no host named 'nowhere'"),
             ({"job_id": 999_999, "limit": 5}, "not_found", "job_id", "no job with id 999999")]
    for kw, code, field, words in cases:
        with pytest.raises(CueFarmError) as info:
            c.frames(**kw)
        assert (info.value.code, info.value.field) == (code, field), kw
        assert words in str(info.value), kw


def beat(peer: Peer, launches: list[p.Launch]) -> None:
    """A heartbeat naming what runs, so a slow test machine does not make the host look lost."""
    peer.send(p.Heartbeat(running=[p.RunningAttempt(la.attempt_id, pid=1) for la in launches]))


def test_a_hosts_running_frames_from_every_job(farm):
    node1, node2 = Peer(farm.port + 1), Peer(farm.port + 1)
    try:
        register(node1, "node1", slots=3)
        c = farm.client()
        [first] = c.submit({"name": "first", "layers": [
            {"name": "render", "command": "x", "range": "1-2"}]})
        launches = [node1.recv_type(p.Launch), node1.recv_type(p.Launch)]
        [second] = c.submit({"name": "second", "layers": [
            {"name": "fx", "command": "x", "range": "7", "slots": 1}]})
        launches.append(node1.recv_type(p.Launch))
        register(node2, "node2", slots=1)
        assert c.frames(host="node2") == []
        beat(node1, launches)
        running = c.frames(host="node1")
        assert {f["attempt_id"] for f in running} == {la.attempt_id for la in launches}
        assert [(f["job_id"], f["job_name"], f["layer"]) for f in running] == [
            (first, "first", "render"), (first, "first", "render"), (second, "second", "fx")]
        fx = running[2]
        assert (fx["number"], fx["frames"], fx["attempt"], fx["slots"], fx["state"],
                fx["host"]) == (7, "7", 1, 1, "RUNNING", "node1")
        starts = [f["started_at"] for f in running]
        assert all(starts) and starts == sorted(starts)
        assert c.frames(host="node1", offset=1, limit=1) == running[1:2]

        # A frame that ends leaves the list; the job's other frames stay.
        done = launches[0]
        node1.send(p.Complete([p.Completion(done.attempt_id, 0, 1.0, 2.0)]))
        node1.recv_type(p.CompleteAck)
        beat(node1, launches[1:])
        left = wait_until(lambda: (lambda fs: fs if len(fs) == 2 else None)(
            c.frames(host="node1")), 30, message="the finished frame to leave node1")
        assert {f["attempt_id"] for f in left} == {launches[1].attempt_id,
                                                   launches[2].attempt_id}
        assert next(f for f in c.frames(first) if f["attempt_id"] == done.attempt_id
                    )["state"] == "SUCCEEDED"
    finally:
        node1.close()
        node2.close()
