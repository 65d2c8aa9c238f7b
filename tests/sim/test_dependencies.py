"""Dependencies by hand and dependencies on work that ends DEAD, on the in-process farm (both
databases)."""

from __future__ import annotations

import pytest

from tests.jobs import job, layer


def per_frame(name):
    return {"layer": name, "per_frame": True}


@pytest.mark.parametrize("action", ["drop", "satisfy"])
def test_per_frame_dependency_released_by_hand_when_other_target_is_done(farm, action):
    c = farm.client()
    farm.add_worker("h0", slots=4, runtime=0.05)
    # a can never run (no host has the tag); b runs; c waits frame by frame on both.
    [jid] = c.submit([job("pf", [layer("a", 3, tags=["never"]), layer("b", 3),
                                 layer("c", 3, depends_on=[per_frame("a"), per_frame("b")])])])
    farm.advance_until(lambda: c.layers(jid)[1]["succeeded"] == 3, 30, step=0.05)
    assert {f["state"] for f in c.frames(jid, layer="c")} == {"DEPEND"}
    [on_a] = [d for d in c.dependencies(jid) if d["target_layer"] == "a"]
    getattr(c, f"{action}_dependency")(jid, on_a["id"])
    assert c.layers(jid)[2]["running"] == 3     # at once: nothing else holds c
    farm.advance_until(lambda: c.layers(jid)[2]["succeeded"] == 3, 30, step=0.05)
    deps = c.dependencies(jid)
    assert [d["target_layer"] for d in deps] == (["b"] if action == "drop" else ["a", "b"])


def test_per_frame_drop_keeps_frames_waiting_on_the_other_target(farm):
    c = farm.client()
    farm.add_worker("h0", slots=4, runtime=0.05)
    # Neither a nor b can run: dropping the edge to a must leave c waiting on b.
    [jid] = c.submit([job("pf2", [layer("a", 2, tags=["never"]), layer("b", 2, tags=["nope"]),
                                  layer("c", 2, depends_on=[per_frame("a"), per_frame("b")])])])
    [on_a] = [d for d in c.dependencies(jid) if d["target_layer"] == "a"]
    c.drop_dependency(jid, on_a["id"])
    assert {f["state"] for f in c.frames(jid, layer="c")} == {"DEPEND"}
    c.set_layer(jid, "b", tags=[])
    farm.advance_until(lambda: c.layers(jid)[2]["succeeded"] == 2, 30, step=0.05)
    assert {f["state"] for f in c.frames(jid, layer="a")} == {"WAITING"}
