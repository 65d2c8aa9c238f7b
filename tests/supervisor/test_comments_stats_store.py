"""Comments, layer statistics and host history in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, insert, select

from cuefarm.spec import validate_submission
from supervisor.store import comments, hosthistory, layerstats
from supervisor.store import jobs as rows
from supervisor.store import submit as submit_store
from supervisor.store.errors import ControlError
from supervisor.store.models import Attempt, Comment, Frame, Host, HostSample, Job, Layer

NOW = 1_750_000_000.0


def _host(conn, name: str) -> int:
    return conn.execute(insert(Host).values(
        name=name, hostname=name, os="linux", cores=8, memory_mb=1000, slots_configured=8,
        state="UP", last_seen=NOW, registered_at=NOW).returning(Host.id)).scalar_one()


def _job(conn, layers=("render", "comp")) -> int:
    specs = validate_submission([{"name": "shot", "project": "p", "layers": [
        {"name": n, "command": ["true"], "range": "1-4"} for n in layers]}])
    [job_id] = submit_store.submit(conn, specs, "ann", NOW)
    return job_id


def test_comments_are_kept_with_author_and_time_and_counted_in_rows(engine):
    with engine.begin() as conn:
        job_id, host_id = _job(conn), _host(conn, "render01")
        kind, sid = comments.subject(conn, job_id, None)
        first = comments.add(conn, kind, sid, "ann", "  waiting on textures\n", NOW)
        second = comments.add(conn, kind, sid, "bob", "textures are in", NOW + 5)
        kind_h, hid = comments.subject(conn, None, "render01")
        comments.add(conn, kind_h, hid, "boss", "fan is loud", NOW + 7)
    assert (kind, kind_h, hid) == ("job", "host", host_id)
    with engine.connect() as conn:
        on_job = comments.rows(conn, "job", job_id)
        on_host = comments.rows(conn, "host", host_id)
        job_row = rows.job_rows(conn, [job_id])[0]
        host_row = rows.host_rows(conn, [host_id])[0]
    assert [(c["id"], c["author"], c["text"], c["created_at"], c["job_id"]) for c in on_job] == [
        (first, "ann", "waiting on textures", NOW, job_id),
        (second, "bob", "textures are in", NOW + 5, job_id)]
    assert [(c["author"], c["text"], c["host"]) for c in on_host] == [
        ("boss", "fan is loud", "render01")]
    assert (job_row["comments"], host_row["comments"]) == (2, 1)

    with engine.begin() as conn:
        assert comments.find(conn, first).author == "ann"
        comments.remove(conn, first)
        with pytest.raises(ControlError) as info:
            comments.find(conn, first)
        assert info.value.code == "not_found"
        assert rows.job_rows(conn, [job_id])[0]["comments"] == 1
        # A job deleted takes its comments with it.
        conn.execute(delete(Frame).where(Frame.job_id == job_id))
        conn.execute(delete(Layer).where(Layer.job_id == job_id))
        conn.execute(delete(Job).where(Job.id == job_id))
        assert conn.execute(select(Comment.id).where(Comment.job_id == job_id)).all() == []


@pytest.mark.parametrize("text, message", [
    ("", "needs some text"), ("   \n\t", "needs some text"),
    ("x" * 10_001, "at most 10,000 characters; this one has 10,001")])
def test_empty_or_overlong_comments_are_refused_and_nothing_is_stored(engine, text, message):
    with engine.begin() as conn:
        job_id = _job(conn)
        with pytest.raises(ControlError) as info:
            comments.add(conn, "job", job_id, "ann", text, NOW)
    assert message in str(info.value) and info.value.field == "text"
    with engine.connect() as conn:
        assert conn.execute(select(Comment.id)).all() == []
    with engine.begin() as conn:     # the longest allowed is kept whole
        cid = comments.add(conn, "job", job_id, "ann", "y" * 10_000, NOW)
        assert len(comments.rows(conn, "job", job_id)[0]["text"]) == 10_000 and cid


def test_a_comment_names_one_existing_job_or_host(engine):
    with engine.begin() as conn:
        job_id = _job(conn)
        missing = job_id + 1
        for job, host, code, words in [(missing, None, "not_found", f"no job with id {missing}"),
                                       (None, "nowhere", "not_found", "no host named 'nowhere'"),
                                       (None, None, "invalid", "name a job or a host"),
                                       (job_id, "render01", "invalid", "name a job or a host")]:
            with pytest.raises(ControlError) as info:
                comments.subject(conn, job, host)
            assert (info.value.code, words in str(info.value)) == (code, True)


def _attempt(conn, frame, number, host_id, start, stop, state, slots=1, peak=0):
    conn.execute(insert(Attempt).values(
        frame_id=frame.id, number=number, job_id=frame.job_id, layer_id=frame.layer_id,
        host_id=host_id, host_name="render01", state=state, slots=slots, memory=0, gpus=0,
        started_at=start, stopped_at=stop, peak_rss=peak, reason=""))


def test_layer_statistics_come_from_the_attempts(engine):
    with engine.begin() as conn:
        job_id, host_id = _job(conn), _host(conn, "render01")
        other = _job(conn, ("render",))      # another job's attempts never count
        frames = conn.execute(select(Frame.id, Frame.job_id, Frame.layer_id, Layer.name)
                              .join(Layer, Layer.id == Frame.layer_id)
                              .order_by(Frame.layer_id, Frame.idx)).all()
        render = [f for f in frames if f.name == "render" and f.job_id == job_id]
        foreign = [f for f in frames if f.job_id == other]
        _attempt(conn, render[0], 1, host_id, NOW, NOW + 100, "FAILED", slots=2, peak=5 << 20)
        _attempt(conn, render[0], 2, host_id, NOW + 100, NOW + 400, "SUCCEEDED", slots=2,
                 peak=3 << 20)
        _attempt(conn, render[1], 1, host_id, NOW, NOW + 600, "SUCCEEDED", slots=2)
        _attempt(conn, render[2], 1, host_id, NOW, None, "RUNNING", slots=2, peak=9 << 20)
        _attempt(conn, foreign[0], 1, host_id, NOW, NOW + 9000, "SUCCEEDED", slots=8)
    with engine.connect() as conn:
        stats = layerstats.layer_stats(conn, job_id)
        [only] = layerstats.layer_stats(conn, job_id, render[0].layer_id)
        times = layerstats.runtimes(conn, render[0].layer_id, 10)
        assert layerstats.runtimes(conn, render[0].layer_id, 1) == [600.0]   # the latest
    assert [s["layer"] for s in stats] == ["render", "comp"]
    r, comp = stats
    assert (r["succeeded"], r["failed"], r["avg"], r["min"], r["max"]) == (2, 1, 450.0, 300.0,
                                                                           600.0)
    # The running attempt's peak counts (it is the heaviest), its time does not yet.
    assert r["peak_rss"] == 9 << 20
    assert r["core_hours"] == pytest.approx((100 + 300 + 600) * 2 / 3600, abs=1e-4)
    assert (comp["succeeded"], comp["avg"], comp["core_hours"], comp["peak_rss"]) == (0, None,
                                                                                      0.0, 0)
    assert only == r
    assert times == [300.0, 600.0]      # in the order they finished


def test_host_history_is_written_in_batches_once_per_step_and_pruned(engine):
    with engine.begin() as conn:
        ids = [_host(conn, f"render{i:02d}") for i in range(3)]
        hosthistory.write_samples(conn, [
            {"hid": h, "t": NOW + step * 60, "load": float(step), "mem": 100 * step,
             "running": step} for h in ids for step in range(5)])
        # A point already kept for that step stays as it was.
        hosthistory.write_samples(conn, [{"hid": ids[0], "t": NOW, "load": 99.0, "mem": 1,
                                          "running": 9}])
    with engine.connect() as conn:
        points = hosthistory.history(conn, ids[0], NOW + 60)
    assert [(p["t"] - NOW, p["load"], p["memory_used_mb"], p["running"]) for p in points] == [
        (60, 1.0, 100, 1), (120, 2.0, 200, 2), (180, 3.0, 300, 3), (240, 4.0, 400, 4)]
    with engine.begin() as conn:
        assert hosthistory.history(conn, ids[0], NOW)[0]["load"] == 0.0
        assert hosthistory.prune(conn, NOW + 180) == 3 * 3
        assert [p["t"] - NOW for p in hosthistory.history(conn, ids[1], 0)] == [180, 240]
        conn.execute(delete(Host).where(Host.id == ids[2]))    # a host forgotten: its history too
        assert conn.execute(select(HostSample.t).where(HostSample.host_id == ids[2])).all() == []
