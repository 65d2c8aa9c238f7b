"""`cuefarm done`, `front`, `stagger`, `retry --more-memory`, `deps add` and `deps on` against a
real supervisor (a simulated worker speaking the real protocol where frames must run)."""

from __future__ import annotations

import json

from cuefarm import protocol as p
from tests.farm import wait_until
from tests.supervisor.test_wire import Peer, register


def numbers(c, job_id, layer=None):
    return [f["number"] for f in c.frames(job_id, layer)]


def test_front_stagger_and_done(sqlite_farm):
    farm, c = sqlite_farm, sqlite_farm.client()
    [job_id] = c.submit({"name": "q", "layers": [
        {"name": "a", "command": "x", "range": "1-6"},
        {"name": "b", "command": "x", "range": "1-6", "depends_on": ["a"]}]})
    result = farm.cli("front", str(job_id), "--layer", "a", "--frame", "5-6")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "moved 2 frames to the front"
    assert numbers(c, job_id, "a") == [5, 6, 1, 2, 3, 4]
    result = farm.cli("stagger", str(job_id), "--layer", "b", "--every", "2")
    assert result.stdout.strip() == "staggered 6 frames every 2"
    assert numbers(c, job_id, "b") == [1, 3, 5, 2, 4, 6]
    result = farm.cli("done", str(job_id), "--layer", "a", "--frame", "1-6")
    assert result.exit_code == 0 and result.stdout.strip() == "marked 6 frames done"
    assert {f["state"] for f in c.frames(job_id, "b")} == {"WAITING"}

    # Refusals are the supervisor's words, and change nothing.
    result = farm.cli("front", str(job_id), "--layer", "nope", "--frame", "1")
    assert result.exit_code == 1 and "has no layer 'nope'" in result.stderr
    result = farm.cli("front", str(job_id), "--layer", "a", "--frame", "1")
    assert result.exit_code == 1 and "none of these frames is waiting" in result.stderr
    result = farm.cli("stagger", str(job_id), "--layer", "b", "--every", "1")
    assert result.exit_code == 2           # a usage error: nothing sent
    result = farm.cli("done", str(job_id))
    assert result.exit_code == 2 and "--frame" in result.stderr
    assert numbers(c, job_id, "b") == [1, 3, 5, 2, 4, 6]


def test_retry_with_more_memory(sqlite_farm):
    farm, c = sqlite_farm, sqlite_farm.client()
    [job_id] = c.submit({"name": "m", "layers": [
        {"name": "r", "command": "x", "range": "1", "memory": 2000, "max_retries": 0}]})
    w = Peer(farm.port + 1)
    register(w, "w1", slots=1)
    launch = w.recv_type(p.Launch)
    w.send(p.Complete([p.Completion(launch.attempt_id, 137, 1.0, 2.0)]))
    wait_until(lambda: c.frames(job_id)[0]["state"] == "DEAD", message="a dead frame")

    result = farm.cli("retry", str(job_id), "--more-memory", "lots", "--frame", "1")
    assert result.exit_code == 2 and "neither a factor" in result.stderr
    result = farm.cli("retry", str(job_id), "--more-memory", "1000", "--frame", "1")
    assert result.exit_code == 1 and "already reserves 2000 MB" in result.stderr
    result = farm.cli("retry", str(job_id), "--more-memory")
    assert result.exit_code == 2 and "--frame" in result.stderr
    assert c.frames(job_id)[0]["state"] == "DEAD"

    result = farm.cli("retry", str(job_id), "--more-memory", "--frame", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["layer r: memory 2000 MB -> 3000 MB",
                                          "requeued 1 frame"]
    assert w.recv_type(p.Launch).memory_mb == 3000
    result = farm.cli("retry", str(job_id), "--frame", "1", "--more-memory", "x2")
    assert result.stdout.splitlines()[0] == "layer r: memory 3000 MB -> 6000 MB"
    w.close()


def test_deps_add_and_on(sqlite_farm):
    farm, c = sqlite_farm, sqlite_farm.client()
    [a] = c.submit({"name": "plates", "layers": [{"name": "x", "command": "x",
                                                  "range": "1-3"}]})
    [b] = c.submit({"name": "comp", "layers": [{"name": "y", "command": "x",
                                                "range": "1-3"}]})
    result = farm.cli("deps", "add", str(b), f"{a}/x", "--per-frame", "--layer", "y")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {b}/y waits for {a}/x frame by frame (1 added)"
    assert {f["state"] for f in c.frames(b)} == {"DEPEND"}
    result = farm.cli("deps", "add", str(a), str(b))
    assert result.exit_code == 1 and "circle" in result.stderr
    result = farm.cli("deps", "add", str(b), f"{a}/x", "--per-frame")
    assert result.exit_code == 1 and "needs the waiting layer" in result.stderr
    result = farm.cli("deps", "add", str(b), "x/y")
    assert result.exit_code == 2 and "TARGET is JOB or JOB/LAYER" in result.stderr
    result = farm.cli("deps", "on", str(a), "--json")
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.stdout)
    assert (row["job_id"], row["kind"], row["layer"], row["target_layer"]) == (b, "frame", "y",
                                                                               "x")
    result = farm.cli("deps", "on", str(a))
    assert "comp" in result.stdout and "frame" in result.stdout
    c.frame_control("done", a, numbers=[2])
    assert {f["number"]: f["state"] for f in c.frames(b)} == {1: "DEPEND", 2: "WAITING",
                                                              3: "DEPEND"}


def test_layer_range(sqlite_farm):
    farm, c = sqlite_farm, sqlite_farm.client()
    [job_id] = c.submit({"name": "r", "layers": [{"name": "r", "command": "x",
                                                  "range": "1-4"}]})
    c.pause([job_id])
    result = farm.cli("layer", "range", str(job_id), "r", "1-100", "--chunk", "10")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"job {job_id} layer r: range 1-100, 10 frames"
    assert [f["frames"] for f in c.frames(job_id)][:2] == ["1-10", "11-20"]
    result = farm.cli("layer", "range", str(job_id), "r", "ten")
    assert result.exit_code == 1 and "cannot parse 'ten'" in result.stderr
    assert c.layers(job_id)[0]["range"] == "1-100"
