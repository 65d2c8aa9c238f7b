"""Wrangling submitted work through a real supervisor, on SQLite and PostgreSQL: frames to the
front and staggered, marked done, retried with more memory; dependencies added between jobs
already on the farm (workers are simulated peers speaking the real protocol)."""

from __future__ import annotations

import pytest

from cuefarm import CueFarmError
from cuefarm import protocol as p
from tests.farm import wait_until
from tests.supervisor.test_wire import Peer, register


def numbers(c, job_id, layer=None):
    return [f["number"] for f in c.frames(job_id, layer)]


def states(c, job_id, layer=None):
    return {f["number"]: f["state"] for f in c.frames(job_id, layer)}


def refused(fn, *args, **kw) -> CueFarmError:
    with pytest.raises(CueFarmError) as info:
        fn(*args, **kw)
    return info.value


def test_frames_to_the_front_and_staggered_are_dispatched_in_that_order(farm):
    c = farm.client()
    [job_id] = c.submit({"name": "order", "layers": [
        {"name": "r", "command": "x", "range": "1-10"}]})
    [other] = c.submit({"name": "other", "layers": [{"name": "o", "command": "x",
                                                     "range": "1-3"}]})
    assert c.frames_to_front(job_id, numbers=[7, 9]) == 2
    assert numbers(c, job_id) == [7, 9, 1, 2, 3, 4, 5, 6, 8, 10]
    # Every 3rd first, over the places the frames held.
    assert c.stagger(job_id, 3, layer="r") == 10
    assert numbers(c, job_id) == [7, 2, 5, 10, 9, 3, 6, 1, 4, 8]
    ids = {f["number"]: f["id"] for f in c.frames(job_id)}
    # Named frames are staggered in their dispatch order (2, 3, 1, 4) over their places.
    assert c.stagger(job_id, 2, [ids[1], ids[2], ids[3], ids[4]]) == 4
    assert numbers(c, job_id) == [7, 2, 5, 10, 9, 1, 6, 3, 4, 8]

    err = refused(c.stagger, job_id, 1, layer="r")
    assert err.field == "every" and "2 or more" in str(err)
    err = refused(c.frames_to_front, job_id, [c.frames(other)[0]["id"]])
    assert err.code == "not_found" and "has no frame with id" in str(err)
    err = refused(c.frames_to_front, job_id, numbers=[11])
    assert "no frame 11" in str(err)
    assert numbers(c, job_id) == [7, 2, 5, 10, 9, 1, 6, 3, 4, 8]      # nothing moved

    w = Peer(farm.port + 1)
    register(w, "w1", slots=1)
    first = w.recv_type(p.Launch)
    assert (first.job_id, first.frame_start) == (job_id, 7)
    w.send(p.Complete([p.Completion(first.attempt_id, 0, 1.0, 2.0)]))
    second = w.recv_type(p.Launch)
    assert second.frame_start == 2
    # A frame that has started has no place in the queue any more.
    err = refused(c.frames_to_front, job_id, numbers=[7])
    assert "none of these frames is waiting" in str(err)
    w.close()


def test_marking_frames_done_releases_dependants_and_kills_what_runs(farm):
    c = farm.client()
    [job_id] = c.submit({"name": "done", "layers": [
        {"name": "a", "command": "x", "range": "1-3"},
        {"name": "b", "command": "x", "range": "1-3", "depends_on": ["a"]}]})
    w = Peer(farm.port + 1)
    register(w, "w1", slots=1)
    launch = w.recv_type(p.Launch)
    assert launch.frame_start == 1
    assert c.frame_control("done", job_id, layer="a", numbers=[1, 2, 3]) == 3
    kill = w.recv_type(p.Kill)
    assert kill.attempt_ids == [launch.attempt_id]
    assert states(c, job_id, "a") == {1: "RUNNING", 2: "EATEN", 3: "EATEN"}
    assert set(states(c, job_id, "b").values()) == {"DEPEND"}
    w.send(p.Complete([p.Completion(launch.attempt_id, -9, 1.0, 2.0, reason="killed")]))
    wait_until(lambda: states(c, job_id, "a")[1] == "EATEN", message="the killed frame eaten")
    wait_until(lambda: "DEPEND" not in states(c, job_id, "b").values(), message="b released")
    [a, b] = c.layers(job_id)
    assert (a["eaten"], a["running"], a["waiting"]) == (3, 0, 0)
    assert b["depend"] == 0 and b["waiting"] + b["running"] == 3
    err = refused(c.frame_control, "mark", job_id, layer="a", numbers=[1])
    assert err.field == "action" and "done" in str(err)
    w.close()


def test_retry_with_more_memory_raises_the_reservation_the_next_launch_carries(farm):
    c = farm.client()
    [job_id] = c.submit({"name": "mem", "layers": [
        {"name": "r", "command": "x", "range": "1-2", "memory": 1000, "max_retries": 0}]})
    w = Peer(farm.port + 1)
    register(w, "w1", slots=1)
    first = w.recv_type(p.Launch)
    assert first.memory_mb == 1000
    w.send(p.Complete([p.Completion(first.attempt_id, 137, 1.0, 2.0,
                                    peak_rss=1500 * 1024 * 1024)]))
    other = w.recv_type(p.Launch)          # the second frame meanwhile: it succeeds
    assert other.memory_mb == 1000
    w.send(p.Complete([p.Completion(other.attempt_id, 0, 1.0, 2.0)]))
    wait_until(lambda: states(c, job_id) == {1: "DEAD", 2: "SUCCEEDED"}, message="1 dead")
    [dead] = [f for f in c.frames(job_id) if f["state"] == "DEAD"]

    for kw, field, words in [({"memory": 800}, "memory", "already reserves 1000 MB"),
                             ({"memory": 2000, "factor": 2.0}, "memory", "not both"),
                             ({"factor": 0.5}, "factor", "above 1"),
                             ({"memory": 0}, "memory", "from 1 to")]:
        err = refused(c.retry_more_memory, job_id, [dead["id"]], **kw)
        assert err.field == field and words in str(err), (kw, str(err))
    assert c.layers(job_id)[0]["memory"] == 1000          # nothing changed
    assert states(c, job_id) == {1: "DEAD", 2: "SUCCEEDED"}

    # 1.5 times the larger of the reservation and the peak (1500 MB).
    got = c.retry_more_memory(job_id, [dead["id"]])
    assert got == {"retried": 1, "layers": [{"layer": "r", "was": 1000, "memory": 2250}]}
    assert c.layers(job_id)[0]["memory"] == 2250
    again = w.recv_type(p.Launch)
    assert (again.frame_id, again.memory_mb) == (dead["id"], 2250)
    assert again.attempt_id == f"{dead['id']}.2"
    w.send(p.Complete([p.Completion(again.attempt_id, 0, 3.0, 4.0)]))
    wait_until(lambda: c.job(job_id)["state"] == "FINISHED", message="the job finished")
    # Given an amount, succeeded frames run again too (the job is active again).
    assert c.retry_more_memory(job_id, numbers=[1, 2], memory=3000)["retried"] == 2
    assert c.job(job_id)["state"] == "ACTIVE"
    assert {w.recv_type(p.Launch).memory_mb for _ in range(1)} == {3000}
    w.close()


def test_dependencies_added_between_submitted_jobs(farm):
    c = farm.client()
    [a] = c.submit({"name": "a", "layers": [{"name": "x", "command": "x", "range": "1-4"},
                                            {"name": "y", "command": "x", "range": "1-4"}]})
    [b] = c.submit({"name": "b", "layers": [{"name": "z", "command": "x", "range": "1-4"}]})
    [d] = c.submit({"name": "d", "layers": [{"name": "f", "command": "x", "range": "1-4"}]})
    [e] = c.submit({"name": "e", "layers": [{"name": "g", "command": "x", "range": "1-6"}]})

    assert c.add_dependency("job", b, a) == 1
    assert set(states(c, b).values()) == {"DEPEND"}
    assert [(r["kind"], r["target_job_id"], r["satisfied"]) for r in c.dependencies(b)] == [
        ("job", a, False)]

    for args, kw, field, words in [
            (("job", a, b), {}, "target_job_id", "circle"),
            (("layer", a, b), {"layer": "x", "target_layer": "z"}, "target_job_id", "circle"),
            (("job", b, b), {}, "target_job_id", "itself"),
            (("job", b, 999), {}, "target_job_id", "no job with id 999"),
            (("layer", b, a), {"target_layer": "nope"}, "target_layer", "no layer 'nope'"),
            (("layer", b, a), {}, "target_layer", "needs the layer"),
            (("job", b, a), {}, "target_job_id", "already waits"),
            (("frame", e, a), {"layer": "g", "target_layer": "x"}, "target_layer",
             "has frames 5-6"),
            (("sideways", b, a), {}, "kind", "unknown dependency kind")]:
        err = refused(c.add_dependency, *args, **kw)
        assert err.field == field and words in str(err), (args, str(err))
    assert len(c.dependencies(a)) == 0 and len(c.dependencies(e)) == 0

    # Frame by frame: frames already done on the other side count as met.
    c.frame_control("done", a, layer="x", numbers=[1, 2])
    assert c.add_dependency("frame", d, a, layer="f", target_layer="x") == 1
    assert states(c, d) == {1: "WAITING", 2: "WAITING", 3: "DEPEND", 4: "DEPEND"}
    c.frame_control("done", a, layer="x", numbers=[3])
    assert states(c, d) == {1: "WAITING", 2: "WAITING", 3: "WAITING", 4: "DEPEND"}
    # Layer on layer of another job: held until the whole layer is complete.
    assert c.add_dependency("layer", e, a, target_layer="y") == 1
    assert set(states(c, e).values()) == {"DEPEND"}
    c.frame_control("done", a, layer="y", numbers=[1, 2, 3, 4])
    assert set(states(c, e).values()) == {"WAITING"}

    got = {(r["job_id"], r["kind"], r["layer"], r["target_layer"], r["satisfied"])
           for r in c.dependants(a)}
    assert got == {(b, "job", "z", None, False), (d, "frame", "f", "x", False),
                   (e, "layer", "g", "y", True)}
    assert c.dependants(b) == []
    assert refused(c.dependants, 999).code == "not_found"
    # The whole job done: what waited on the job runs.
    c.frame_control("done", a, layer="x", numbers=[4])
    assert set(states(c, b).values()) == {"WAITING"}
    assert set(states(c, d).values()) == {"WAITING"}
    # A dependency on a finished job is met at once: nothing is held.
    [g] = c.submit({"name": "g", "layers": [{"name": "h", "command": "x", "range": "1-2"}]})
    assert c.add_dependency("job", g, a) == 1
    assert set(states(c, g).values()) == {"WAITING"}
    assert c.dependencies(g)[0]["satisfied"] is True


def test_artists_wrangle_their_own_jobs_and_see_no_hidden_ones(sqlite_roles_farm):
    farm = sqlite_roles_farm
    ann, bob, wendy = (farm.client(user=u) for u in ("ann", "bob", "wendy"))
    [mine] = ann.submit({"name": "anns", "layers": [{"name": "r", "command": "x",
                                                     "range": "1-4"}]})
    [theirs] = bob.submit({"name": "bobs", "layers": [{"name": "r", "command": "x",
                                                       "range": "1-4"}]})
    for call in (lambda: bob.frames_to_front(mine, numbers=[3]),
                 lambda: bob.stagger(mine, 2, layer="r"),
                 lambda: bob.retry_more_memory(mine, numbers=[1], memory=100),
                 lambda: bob.add_dependency("job", mine, theirs)):
        err = refused(call)
        assert err.code == "forbidden" and "another user's job" in str(err)
    assert numbers(ann, mine) == [1, 2, 3, 4] and ann.dependencies(mine) == []
    # Waiting for another user's job is the owner's choice; a wrangler may wrangle any job.
    assert ann.add_dependency("job", mine, theirs) == 1
    assert wendy.frames_to_front(mine, numbers=[4]) == 1
    assert numbers(ann, mine) == [4, 1, 2, 3]
    # A restricted project's jobs are not there for those outside it.
    wendy.set_project_members("secret", ["carol"])
    [hidden] = farm.client(user="carol").submit({"name": "hid", "project": "secret", "layers": [
        {"name": "r", "command": "x", "range": "1"}]})
    err = refused(ann.add_dependency, "job", mine, hidden)
    assert err.code == "not_found" and f"no job with id {hidden}" in str(err)
    assert [r["job_id"] for r in wendy.dependants(theirs)] == [mine]


def test_a_frame_retried_after_a_dependency_was_added_waits_for_it(farm):
    c = farm.client()
    [a] = c.submit({"name": "a", "layers": [{"name": "x", "command": "x", "range": "1-2"}]})
    c.pause([a])
    [b] = c.submit({"name": "b", "layers": [{"name": "y", "command": "x", "range": "1-2",
                                             "max_retries": 0}]})
    w = Peer(farm.port + 1)
    register(w, "w1", slots=1)
    for _ in range(2):
        launch = w.recv_type(p.Launch)
        assert launch.job_id == b
        w.send(p.Complete([p.Completion(launch.attempt_id, 1, 1.0, 2.0)]))
    wait_until(lambda: set(states(c, b).values()) == {"DEAD"}, message="b dead")
    assert c.add_dependency("layer", b, a, target_layer="x") == 1
    assert set(states(c, b).values()) == {"DEAD"}       # finished frames are left alone
    # Retried, by frame or by job: held until what they now wait for is done.
    assert c.frame_control("retry", b, layer="y", numbers=[1]) == 1
    assert c.retry(b) == 1
    assert states(c, b) == {1: "DEPEND", 2: "DEPEND"}
    layer = c.layers(b)[0]
    assert (layer["depend"], layer["dead"], layer["waiting"]) == (2, 0, 0)
    c.frame_control("done", a, numbers=[1, 2])
    assert set(states(c, b).values()) <= {"WAITING", "RUNNING"}
    w.close()


def test_a_layer_gets_a_new_range_and_chunk_while_none_of_its_frames_has_run(farm):
    c = farm.client()
    [job_id] = c.submit({"name": "reframe", "layers": [
        {"name": "a", "command": "x", "range": "1-4"},
        {"name": "b", "command": "x", "range": "1-4", "depends_on": ["a"]},
        {"name": "f", "command": "x", "range": "1-4",
         "depends_on": [{"layer": "a", "per_frame": True}]}]})
    c.pause([job_id])
    assert c.set_layer_range(job_id, "b", "1-10x2", chunk=2) == 3
    b = c.frames(job_id, "b")
    assert [f["frames"] for f in b] == ["1,3", "5,7", "9"]
    assert {f["state"] for f in b} == {"DEPEND"}          # still waits for a
    layer = next(r for r in c.layers(job_id) if r["name"] == "b")
    assert (layer["range"], layer["chunk"], layer["frames_total"], layer["depend"]) == (
        "1-10x2", 2, 3, 3)
    assert c.job(job_id)["frames_total"] == 4 + 3 + 4

    before = c.frames(job_id)
    for args, kw, field, words in [
            (("b", "1-x"), {}, "range", "cannot parse '1-x'"),
            (("b", "1-4"), {"chunk": 0}, "chunk", "from 1 to"),
            (("nope", "1-4"), {}, "layer", "has no layer 'nope'"),
            (("a", "1-4"), {}, "range", "frame-by-frame dependency"),
            (("b", f"1-{10**9}"), {}, "range", "more than the maximum")]:
        err = refused(c.set_layer_range, job_id, *args, **kw)
        assert err.field == field and words in str(err), (args, str(err))
    assert c.frames(job_id) == before

    c.resume([job_id])
    w = Peer(farm.port + 1)
    register(w, "w1", slots=1)
    launch = w.recv_type(p.Launch)
    assert launch.job_id == job_id
    err = refused(c.set_layer_range, job_id, "a", "1-8")
    assert err.field == "range" and "have run" in str(err)
    # Once every frame of a is done, b runs its new frames.
    c.frame_control("done", job_id, layer="a", numbers=[1, 2, 3, 4])
    wait_until(lambda: "DEPEND" not in states(c, job_id, "b").values(), message="b released")
    w.close()


def test_frames_past_what_one_request_names_are_sent_in_parts(farm, monkeypatch):
    c = farm.client()
    [job_id] = c.submit({"name": "parts", "layers": [
        {"name": "r", "command": "x", "range": "1-10"}]})
    # The supervisor takes MAX_REQUEST_ITEMS at a time; this client splits at 3.
    monkeypatch.setattr(p, "MAX_REQUEST_ITEMS", 3)
    assert c.frame_control("eat", job_id, layer="r", numbers=list(range(1, 8))) == 7
    assert sorted(n for n, s in states(c, job_id).items() if s == "EATEN") == [1, 2, 3, 4, 5,
                                                                              6, 7]
    ids = [f["id"] for f in c.frames(job_id)]
    assert c.frame_control("eat", job_id, ids) == 3          # 8, 9, 10; the rest were eaten
    assert set(states(c, job_id).values()) == {"EATEN"}


def test_a_whole_layer_over_what_one_request_names_is_marked_done(sqlite_farm):
    c = sqlite_farm.client(timeout=60)
    frames = p.MAX_REQUEST_ITEMS * 2 + 500
    [job_id] = c.submit({"name": "wide", "layers": [
        {"name": "r", "command": "x", "range": f"1-{frames}"}]})
    # As cuegui's "mark layer done" sends it: every number of the layer's range.
    assert c.frame_control("done", job_id, layer="r", numbers=range(1, frames + 1)) == frames
    assert c.job(job_id)["state"] == "FINISHED"
    # Jobs too (a list past what one request names: the same job over and over here).
    [other] = c.submit({"name": "other", "layers": [{"name": "r", "command": "x",
                                                     "range": "1"}]})
    assert c.pause([other] * (p.MAX_REQUEST_ITEMS + 1)) >= 1
    assert c.job(other)["state"] == "PAUSED"
