"""Large replies and batches decoded in slices read exactly like a one-shot decode."""

from __future__ import annotations

import time

import msgspec
import pytest

from cuefarm import protocol as p
from cuegui import wire
from cuegui.connection import Connection
from tests import rows
from tests.cuegui.simsupervisor import SimSupervisor


@pytest.mark.parametrize("n", [0, 1, 15, 16, wire.SLICE, wire.SLICE + 1, 70_000])
def test_decode_rows_in_slices(n):
    frames = [rows.frame(i, host=f"h{i % 7}", peak_rss=i * 1000) for i in range(n)]
    env = p.decode_envelope(p.encode(p.Rows(frames)))
    pauses = []
    out = wire.decode_rows(wire._lazy_rows.decode(env.body).rows, lambda: pauses.append(1))
    assert out == frames
    assert len(pauses) == max(0, (n - 1) // wire.SLICE)


@pytest.fixture
def sim():
    s = SimSupervisor()
    s.jobs = {1: rows.job(1, frames_total=30_000)}
    s.frames = {i: rows.frame(i, job_id=1) for i in range(1, 30_001)}
    s.start()
    yield s
    s.stop()


def test_a_large_reply_and_a_large_batch(sim):
    client = wire.GuiClient(sim.address, timeout=10)
    events = wire.GuiEvents(sim.address)
    try:
        got = client.frames(1)
        assert got == list(sim.frames.values())
        assert client.jobs() == [sim.jobs[1]]
        with pytest.raises(wire.CueFarmError, match="no job 9"):
            client.frames(9)
        deadline = time.monotonic() + 10
        while sim.subscribers == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        changed = [{**f, "state": "RUNNING"} for f in list(sim.frames.values())[:20_000]]
        sim.publish(frames=changed, jobs=[sim.jobs[1]])
        gaps = []
        batch = events.receive(10, on_gap=lambda: gaps.append(1))
        assert batch is not None and batch.frames == changed and batch.jobs == [sim.jobs[1]]
        assert gaps == [1]               # the first batch always counts as a gap
    finally:
        client.close()
        events.close()


def test_the_connection_loads_a_large_job_in_pages(qtbot, sim):
    conn = Connection(sim.address, idle_ping=0.5, request_timeout=10.0)
    loaded, pages = [], []
    conn.job_loaded.connect(loaded.append)
    conn.frames_page.connect(pages.append)
    conn.start()
    try:
        conn.select_job(1)
        qtbot.waitUntil(lambda: bool(pages) and pages[-1].done, timeout=20_000)
        assert len(loaded[0].frames) == conn.first_page and not loaded[0].complete
        # Pages of 10,000 rows are decoded in slices; together they are the job, in order.
        assert [len(pg.frames) for pg in pages] == [10_000, 10_000, 9_000]
        got = loaded[0].frames + [f for pg in pages for f in pg.frames]
        assert got == list(sim.frames.values())
        assert sim.requests["list_frames"] == 4
    finally:
        conn.stop()


def test_the_gui_client_reads_a_real_supervisor_like_the_client(sqlite_farm):
    plain = sqlite_farm.client()
    [job_id] = plain.submit({"name": "big", "layers": [
        {"name": "render", "command": "x", "range": f"1-{wire.LAZY_FROM + 500}"}]})
    env = plain.request_raw(p.ListFrames(job_id))
    assert env.type == "rows" and isinstance(env.body, msgspec.Raw)
    expected = plain.decode_reply(env).rows
    assert len(expected) == wire.LAZY_FROM + 500
    gui = wire.GuiClient(sqlite_farm.address, timeout=15)
    try:
        assert gui.frames(job_id) == expected                   # decoded in slices
        assert gui.frames(job_id, limit=10) == expected[:10]    # decoded at once
        assert gui.job(job_id)["frames_total"] == len(expected)
        for client in (plain, gui):
            with pytest.raises(wire.CueFarmError) as info:
                client.request_raw(p.ListFrames(999_999))
            assert (info.value.code, info.value.field) == ("not_found", "job_id")
    finally:
        gui.close()


def test_a_batch_too_big_to_list_makes_the_gui_resync(qtbot, sqlite_farm):
    """Killing a job of more frames than a batch carries publishes a batch asking for a resync
    (no frame rows); the GUI's slice decoder keeps that flag and its connection re-reads."""
    from supervisor.events import MAX_BATCH_FRAMES

    client = sqlite_farm.client(timeout=60)
    conn = Connection(sqlite_farm.address, idle_ping=1.0)
    snapshots, changes = [], []
    conn.snapshot.connect(snapshots.append)
    conn.changes.connect(changes.append)
    conn.start()
    try:
        # Until the supervisor has heard of the subscription its changes are not published,
        # and the first batch after it may bring a resync instead of changes: small jobs
        # are submitted and killed until one reaches the connection as a change.
        qtbot.waitUntil(lambda: len(snapshots) >= 1, timeout=60_000)
        for _ in range(60):
            [small] = client.submit({"name": "small", "layers": [
                {"name": "r", "command": "x", "range": "1-2"}]})
            client.kill(small)
            try:
                qtbot.waitUntil(lambda: any(small in c.jobs for c in changes), timeout=1000)
                break
            except qtbot.TimeoutError:
                continue
        else:
            pytest.fail("no change event reached the connection in 60 s")
        before = len(snapshots)
        [big] = client.submit({"name": "big", "layers": [
            {"name": "r", "command": "x", "range": f"1-{MAX_BATCH_FRAMES + 5}"}]})
        client.kill(big)
        qtbot.waitUntil(lambda: len(snapshots) > before and any(
            j["id"] == big and j["state"] == "FINISHED" for j in snapshots[-1].jobs),
            timeout=60_000)
    finally:
        conn.stop()
