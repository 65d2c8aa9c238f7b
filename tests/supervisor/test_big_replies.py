"""Big jobs through a real supervisor: no reply and no event batch outgrows what a client accepts.

A reply over the client's MAXMSGSIZE makes ZeroMQ drop the connection without a word, so a job of
more frames than one page is listed in pages, and a change to more frames than one batch may carry
publishes a batch that asks subscribers to re-read instead of listing the rows."""

from __future__ import annotations

import pytest

from cuefarm import CueFarmError
from cuefarm import protocol as p
from cuefarm.client import Events
from supervisor.events import MAX_BATCH_FRAMES
from tests.farm import wait_until


def big_job(frames: int) -> dict:
    return {"name": "big", "project": "big", "layers": [
        {"name": "render", "command": "x", "range": f"1-{frames}"}]}


def test_a_job_bigger_than_a_page_is_listed_in_pages(farm):
    c = farm.client(timeout=60)
    total = p.MAX_FRAMES_PAGE + 7
    [job_id] = c.submit(big_job(total))
    everything = c.frames(job_id)                 # the client pages by itself
    assert len(everything) == total
    assert [f["number"] for f in everything] == list(range(1, total + 1))
    # Asked for all at once, the supervisor refuses rather than send a reply too big to take.
    with pytest.raises(CueFarmError) as info:
        c.request(p.ListFrames(job_id))
    assert (info.value.code, info.value.field) == ("too_large", "limit")
    assert "ask in pages" in str(info.value)
    # A job that fits in one page is still answered whole.
    [small] = c.submit(big_job(10))
    assert len(c.request(p.ListFrames(small)).rows) == 10


def test_changing_more_frames_than_a_batch_carries_asks_for_a_resync(sqlite_farm):
    c = sqlite_farm.client(timeout=60)
    events = Events(sqlite_farm.address)
    try:
        gaps: list[int] = []
        # Subscribing is asynchronous: wait until a first batch proves the supervisor knows of us.
        [small] = c.submit(big_job(3))
        wait_until(lambda: events.receive(0.2, on_gap=lambda: gaps.append(1)) is not None, 30,
                   message="a first event batch")
        gaps.clear()
        [job_id] = c.submit(big_job(MAX_BATCH_FRAMES + 5))
        c.kill(job_id)
        seen: list[p.EventBatch] = []

        def resync_batch():
            batch = events.receive(0.5, on_gap=lambda: gaps.append(1))
            if batch is not None:
                seen.append(batch)
            return any(b.resync for b in seen)
        wait_until(resync_batch, 60, message="a batch asking for a resync")
        batch = next(b for b in seen if b.resync)
        assert batch.frames == []                     # no rows: re-read instead
        assert job_id in {j["id"] for j in batch.jobs}  # the job's own row still comes
        assert gaps, "a resync batch must reach the caller as a gap"
        assert all(len(b.frames) <= MAX_BATCH_FRAMES for b in seen)
        # A small change is listed row by row as before.
        c.kill(small)

        def small_rows():
            batch = events.receive(0.5)
            return batch is not None and not batch.resync and \
                {f["job_id"] for f in batch.frames} == {small}
        wait_until(small_rows, 30, message="the small job's frame rows")
    finally:
        events.close()
