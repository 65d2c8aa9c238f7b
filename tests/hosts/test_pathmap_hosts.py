"""Path maps per worker OS through check_path against a real supervisor (SQLite and
PostgreSQL).  The Windows and macOS workers are simulated: each is a real ZeroMQ DEALER that
registers over the worker link with the real protocol, as rqd on that OS would."""

from __future__ import annotations

import pytest
import zmq

import cuefarm
from cuefarm import CueFarmError
from cuefarm import protocol as p


def register(farm, ctx, name: str, os_name: str, tags: list[str] = (),
             own: list[p.PathRule] = ()) -> zmq.Socket:
    """Register a simulated worker; return its socket once the supervisor said Registered."""
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{farm.port + 1}")
    sock.send(p.encode(p.Register(
        name=name, hostname=name, os=os_name, cores=4, memory_mb=8000, slots=4,
        version=cuefarm.__version__, tags=list(tags), path_maps=list(own)), 1))
    assert sock.poll(15000), f"no answer to {name}'s registration"
    _, body = p.decode(sock.recv(), p.MAX_WORKER_MESSAGE)
    assert isinstance(body, p.Registered), body
    return sock


def test_each_os_gets_its_own_rules_per_tag_and_its_own_override(farm, zctx):
    c = farm.client()
    register(farm, zctx, "win-01", "windows")
    register(farm, zctx, "win-gpu", "windows", tags=["gpu"])
    register(farm, zctx, "mac-01", "darwin")
    register(farm, zctx, "mac-own", "darwin",
             own=[p.PathRule("/mnt/proj/shots", "/Users/artist/shots")])
    c.add_path_map("windows", "/mnt/proj", "P:\\proj")
    c.add_path_map("windows", "/mnt/proj", "G:\\proj", tag="gpu")
    c.add_path_map("darwin", "/mnt/proj", "/Volumes/proj")
    c.add_path_map("linux", "/mnt/proj", "/srv/proj")

    def check(host, path):
        r = c.check_path(host, path)
        return r["result"], (r["rule"] or {}).get("origin")

    assert check("win-01", "/mnt/proj/shots/a.exr") == ("P:\\proj\\shots\\a.exr", "supervisor")
    # A tag's central rule comes before the OS-wide one.
    assert check("win-gpu", "/mnt/proj/shots/a.exr") == ("G:\\proj\\shots\\a.exr", "supervisor")
    assert check("mac-01", "/mnt/proj/shots/a.exr") == ("/Volumes/proj/shots/a.exr",
                                                        "supervisor")
    # The worker's own rule wins where it applies; the central ones still cover the rest.
    assert check("mac-own", "/mnt/proj/shots/a.exr") == ("/Users/artist/shots/a.exr", "worker")
    assert check("mac-own", "/mnt/proj/assets/b.abc") == ("/Volumes/proj/assets/b.abc",
                                                          "supervisor")
    # Not a prefix at a separator, or no rule at all: unchanged.
    assert check("win-01", "/mnt/projX/a") == ("/mnt/projX/a", None)
    assert check("mac-01", "/elsewhere/a") == ("/elsewhere/a", None)
    # A tag added by an admin brings its rules.
    c.host_tags("win-01", add=["gpu"])
    assert check("win-01", "/mnt/proj/a.exr") == ("G:\\proj\\a.exr", "supervisor")
    with pytest.raises(CueFarmError) as info:
        c.check_path("win-99", "/mnt/proj/a")
    assert info.value.field == "host"
