"""A Register that was on its way before a launch reached the worker does not make that
launch lost: the worker's word proves an absence only for the launches it had received when it
spoke (Register carries the highest launch it had, as heartbeats do).  Seen on a real farm as
one frame running twice at once after a supervisor restart: rqd answered each of several queued
Reregister messages with a fresh Register, and the supervisor took a frame it had just
launched for gone on reading the later ones."""

from __future__ import annotations

from cuefarm import protocol as p


def one_frame(farm) -> tuple[int, object]:
    w = farm.add_worker("w1", slots=1, runtime=None)
    [job] = farm.submit([{"name": "j", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1", "max_retries": 3}]}])
    farm.settle()
    assert list(w.running) == ["1.1"]
    return job, w


def stale_register(w, launch_seq: int) -> p.Register:
    """The Register the worker sent before the launch reached it: it runs nothing yet."""
    f = w.facts
    return p.Register(name=w.name, hostname=w.name, os=f["os"], cores=f["cores"],
                      memory_mb=f["memory_mb"], slots=w.slots, version="test", running=[],
                      launch_seq=launch_seq)


def test_a_register_sent_before_a_launch_arrived_does_not_lose_it(farm):
    job, w = one_frame(farm)
    w.send(stale_register(w, launch_seq=0))      # written before Launch 1.1 arrived
    farm.settle()
    farm.advance(2 * farm.cfg.heartbeat_interval)    # its heartbeats now name 1.1 again
    [frame] = farm.client().frames(job)
    assert (frame["state"], frame["attempt"]) == ("RUNNING", 1)
    launches = [e for e in farm.ledger if e[0] == "launch"]
    assert [e[3].attempt_id for e in launches] == ["1.1"]      # never sent twice


def test_a_register_that_had_the_launch_and_lacks_it_ends_it(farm):
    job, w = one_frame(farm)
    seq = w.launch_seq
    w.running.clear()                             # the process is gone (rqd restarted)
    w.send(stale_register(w, launch_seq=seq))
    farm.settle()
    frames = farm.client().frames(job)
    assert frames[0]["attempt"] == 2              # 1.1 was lost and the frame ran again
    assert any(e[0] == "launch" and e[3].attempt_id == "1.2" for e in farm.ledger)
