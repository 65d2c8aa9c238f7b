"""One client with 5,000 requests in flight does not keep another client's `jobs` from being
answered (a real supervisor process; benchmarks/flood.py measures how fast)."""

from __future__ import annotations

import zmq

from cuefarm import protocol as p
from tests import jobs

FLOOD = 5000


def flood_socket(port: int) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s


def test_another_clients_jobs_is_answered_while_one_client_floods(sqlite_farm):
    c = sqlite_farm.client(timeout=60)
    [job_id] = c.submit([jobs.job("mine", [jobs.layer(frames=3)])])
    flood = flood_socket(sqlite_farm.port)
    try:
        # Reads (served on the reader thread) and pings (on the loop), none of them read back
        # until the other client has its answer: 5,000 in flight at once.
        for i in range(FLOOD):
            body = p.ListJobs() if i % 2 else p.ListFrames(job_id)
            flood.send(p.encode(body, 1 + i, "mallory"))
        listed = c.jobs()
        assert [j["id"] for j in listed] == [job_id]
        assert listed[0]["name"] == "mine" and listed[0]["frames_total"] == 3
        # Every flood request is answered too: its rows, or "busy" beyond the per-client
        # queue; none lost, none answered twice.
        ids, busy = set(), 0
        while len(ids) < FLOOD:
            assert flood.poll(60_000), f"{FLOOD - len(ids)} flood requests never answered"
            env, body = p.decode(flood.recv())
            assert env.id not in ids
            ids.add(env.id)
            if isinstance(body, p.Error):
                assert body.code == "busy", body
                busy += 1
            else:
                assert isinstance(body, p.Rows)
        assert ids == set(range(1, FLOOD + 1))
        assert 0 < busy < FLOOD
        errors = {r["name"]: r["value"] for r in c.metrics()}
        assert errors["errors.busy"] == busy
    finally:
        flood.close(0)
