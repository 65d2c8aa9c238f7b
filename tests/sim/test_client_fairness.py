"""One client's flood of requests slows that client only: requests are served one per client
connection in turn, and a client with too many waiting is told to wait for its replies."""

from __future__ import annotations

import zmq

from cuefarm import protocol as p
from supervisor.loop import CLIENT_DRAIN, PEER_QUEUE


def flooder(farm):
    s = farm.ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    s.connect(farm.endpoints[0])
    return s


def replies(sock) -> list[p.Envelope]:
    out = []
    while True:
        try:
            out.append(p.decode_envelope(sock.recv(zmq.NOBLOCK)))
        except zmq.Again:
            return out


def test_another_clients_request_is_served_within_a_round_of_a_flood(farm):
    farm.add_worker("h1", slots=1)
    [job] = farm.submit([{"name": "j", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-50"}]}])
    flood = flooder(farm)
    count = 3 * CLIENT_DRAIN
    for i in range(count):
        flood.send(p.encode(p.ListFrames(job), 10_000 + i, "mallory"), zmq.NOBLOCK)
    farm.loop.step(50)            # reads the flood: the first round of it is served
    mine = farm.client_sock
    mine.send(p.encode(p.ListJobs(), 7, "alice"), zmq.NOBLOCK)
    got_mine, flood_answered = None, 0
    for _ in range(100):
        farm.loop.step(0)
        flood_answered += len(replies(flood))
        for env in replies(mine):
            got_mine = env
        if got_mine is not None:
            break
    assert got_mine is not None and got_mine.id == 7 and got_mine.type == "rows"
    # Served in the round after it arrived, not behind the rest of the flood.
    assert flood_answered <= 2 * CLIENT_DRAIN < count
    farm.settle()
    assert flood_answered + len(replies(flood)) == count      # the flood is answered too
    flood.close(0)


def test_a_client_with_too_many_requests_waiting_is_told_to_wait(farm):
    flood = flooder(farm)
    count = PEER_QUEUE + CLIENT_DRAIN + 50
    for i in range(count):
        flood.send(p.encode(p.ListJobs(), i + 1, "mallory"), zmq.NOBLOCK)
    farm.settle()
    got = [p.decode_body(env) for env in replies(flood)]
    busy = [r for r in got if isinstance(r, p.Error)]
    assert len(got) == count                       # every request answered
    assert busy and all(r.code == "busy" and "wait for replies" in r.message for r in busy)
    assert count - len(busy) >= PEER_QUEUE        # the ones within the limit were served
    assert farm.sv.cx.live.errors["busy"] == len(busy)
    flood.close(0)
