"""The log relay: a worker's answer reaches the client that asked, and an attempt with no log
says why it ended instead."""

from __future__ import annotations

from cuefarm import protocol as p
from supervisor.logrelay import LogRelay


def test_no_log_says_why_the_attempt_ended():
    relay = LogRelay()
    token = relay.ask([b"client"], 7, "w1", 0.0, "lost: refused by the worker: launch could "
                                                "not be delivered")
    route, rid, body = relay.answer(p.LogReply(token, "1.2", error="no log of attempt 1.2 on w1"))
    assert route == [b"client"] and rid == 7 and isinstance(body, p.Error)
    assert body.message == ("w1: no log of attempt 1.2 on w1 (the attempt ended: lost: refused "
                            "by the worker: launch could not be delivered)")
    assert relay.pending == {} and relay.ended == {}


def test_a_log_is_passed_on_as_it_is():
    relay = LogRelay()
    token = relay.ask([b"client"], 8, "w1", 0.0, "killed: requested")
    _, _, body = relay.answer(p.LogReply(token, "1.1", 0, 3, b"abc"))
    assert isinstance(body, p.LogChunk) and body.data == b"abc" and relay.ended == {}
