"""The rows the supervisor sends have exactly the shapes `cuefarm.rows` declares, on both
databases: every key, no other key, every value of its type, in list replies and in events."""

from __future__ import annotations

import msgspec
import pytest

from cuefarm.rows import FrameRow, HostRow, JobRow, LayerRow, RunningFrameRow, check, sample
from supervisor.events import read_batch
from supervisor.store.work import Touched


def varied_farm(farm):
    """Jobs, layers, frames and hosts in many of the states they take."""
    farm.add_worker("h1", slots=2, runtime=None)
    farm.add_worker("h2", slots=4, runtime=1.0)
    farm.add_worker("h3", slots=1, runtime=1.0)
    [busy, done, failing] = farm.submit([
        {"name": "busy", "project": "p", "max_slots": 3, "min_slots": 1,
         "layers": [{"name": "a", "command": ["echo", "#"], "range": "1-6", "chunk": 2,
                     "tags": ["linux"], "os": "linux", "requirements": "host.memory >= 100",
                     "timeout": 60},
                    {"name": "b", "command": ["echo"], "range": "1-2",
                     "depends_on": ["a"]}]},
        {"name": "done", "project": "q", "layers": [{"name": "x", "command": ["true"],
                                                      "range": "1"}]},
        {"name": "failing", "project": "q", "layers": [{"name": "y", "command": ["false"],
                                                         "range": "1-2", "max_retries": 0}]}])
    farm.advance(3)
    c = farm.client()
    c.lock("h3", slots=1)
    c.set_host_slots("h2", 3)
    c.pause(failing)
    return c, [busy, done, failing]


@pytest.mark.parametrize("with_finished", [True, False])
def test_list_replies_have_the_declared_shapes(farm, with_finished):
    c, jobs = varied_farm(farm)
    job_rows = c.jobs(include_finished=with_finished)
    assert job_rows
    for row in job_rows:
        check(row, JobRow)
    for j in jobs:
        for row in c.layers(j):
            check(row, LayerRow)
        for row in c.frames(j):
            check(row, FrameRow)
    for row in c.hosts():
        check(row, HostRow)
    running = c.frames(host="h1")
    assert running
    for row in running:
        check(row, RunningFrameRow)


def test_event_rows_have_the_declared_shapes(farm):
    c, jobs = varied_farm(farm)
    frames = [f["id"] for j in jobs for f in c.frames(j)]
    layers = [l["id"] for j in jobs for l in c.layers(j)]
    hosts = [h["id"] for h in c.hosts()]
    batch = read_batch(farm.engine, Touched(set(jobs), set(layers), set(frames), set(hosts)),
                       1, "sv", 10_000)
    assert len(batch.jobs) == 3 and len(batch.frames) == len(frames)
    for kind, rows in ((JobRow, batch.jobs), (LayerRow, batch.layers),
                       (FrameRow, batch.frames), (HostRow, batch.hosts)):
        for row in rows:
            check(row, kind)


def test_a_row_with_a_key_too_many_or_too_few_or_of_the_wrong_type_is_refused():
    good = dict(id=1, name="h", hostname="h", address="", os="linux", cores=2, memory_mb=1,
                memory_free_mb=1, disk_free_mb=0, gpus=0, tags=[], state="UP", lock="OPEN",
                lock_kind="", lock_slots=None, nimby=False, draining=False, drain=None, slots=2,
                slots_configured=2, slots_override=None, slots_total=2, slots_used=0, running=0,
                load=0.0, cpu_percent=0.0, last_seen=None, comments=0)
    assert sample(HostRow, **good) == good
    with pytest.raises(msgspec.ValidationError, match="unknown field `os_name`"):
        check({**good, "os_name": "Linux"}, HostRow)
    with pytest.raises(msgspec.ValidationError, match="missing required field `running`"):
        check({k: v for k, v in good.items() if k != "running"}, HostRow)
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int`, got `str` - at `\$.cores`"):
        check({**good, "cores": "2"}, HostRow)
