"""A flood of reads from one client does not starve another: each client connection has a few
reads on the reader thread at a time, so another client's request is read next to the flood,
not behind all of it."""

from __future__ import annotations

import zmq

from cuefarm import protocol as p
from tests.farm import wait_until


def test_a_flood_of_reads_does_not_hold_another_clients_request(sqlite_farm):
    farm = sqlite_farm
    c = farm.client()
    [job] = c.submit([{"name": "big", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-3000"}]}])
    ctx = zmq.Context.instance()
    flood = ctx.socket(zmq.DEALER)
    flood.setsockopt(zmq.LINGER, 0)
    flood.setsockopt(zmq.SNDHWM, 0)
    flood.connect(f"tcp://{farm.address}")
    count = 5000
    for i in range(count):
        flood.send(p.encode(p.ListFrames(job), i + 1, "mallory"))
    flood_replies = 0

    def read_flood():
        nonlocal flood_replies
        while flood.poll(0):
            flood.recv()
            flood_replies += 1
    # The supervisor is working through the flood.
    wait_until(lambda: (read_flood(), flood_replies > 0)[1], 60, message="the flood served")
    jobs = c.jobs()                   # another client: served next to the flood
    read_flood()
    assert [j["id"] for j in jobs] == [job]
    assert flood_replies < count, flood_replies     # it did not wait for the whole flood
    flood.close(0)
