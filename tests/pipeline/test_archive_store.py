"""Retention's store on SQLite and PostgreSQL: what is due, the rows written and put back,
and a job that changes while it is being archived."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from benchmarks.retention import fill
from supervisor import retention
from supervisor.retention import DAY, RetentionConfig, archive_pass
from supervisor.store import archive
from supervisor.store.models import Job


def rows(engine, ids):
    with engine.connect() as conn:
        return sorted((t, sorted(r.items())) for t, r in archive.job_rows(conn, ids))


def test_old_jobs_go_to_files_and_come_back_equal(engine, tmp_path):
    now = time.time()
    fill(engine, 12, 5, now)           # finished over the last year, one a month
    cfg = RetentionConfig(finished_job_days=100, directory=str(tmp_path), batch_frames=20)
    with engine.connect() as conn:
        due = [j for j, _ in archive.due_jobs(conn, now - 100 * DAY, 0, 100)]
    assert due == list(range(1, 9))           # older than 100 days, oldest first
    before = rows(engine, due)
    result = archive_pass(engine, cfg, now)
    assert (result.jobs, result.frames, len(result.files)) == (8, 40, 2)   # 4 jobs a file
    with engine.connect() as conn:
        assert archive.live_size(conn) == {"job": 4, "layer": 4, "frame": 20, "attempt": 20}
    assert archive_pass(engine, cfg, now).jobs == 0
    listed = retention.listing(cfg)
    assert [e["job_ids"] for e in listed] == [[1, 2, 3, 4], [5, 6, 7, 8]]
    for entry in listed:
        retention.restore_file(engine, cfg, entry["file"], now)
    assert rows(engine, due) == before
    with engine.connect() as conn:
        assert archive.restored_among(conn, [1, 8, 9]) == [1, 8]
        # restored jobs stay for restored_days, then are due again
        assert archive.due_jobs(conn, now - 100 * DAY, now - 1, 100) == []
        assert len(archive.due_jobs(conn, now - 100 * DAY, now + 1, 100)) == 8


def test_a_job_changed_while_archived_is_kept(engine, tmp_path):
    now = time.time()
    fill(engine, 2, 3, now)
    path, finished = retention._write(engine, tmp_path, [1, 2], now)
    with engine.begin() as conn:       # job 2 is retried meanwhile
        conn.execute(update(Job).where(Job.id == 2).values(state="ACTIVE", finished_at=None))
    with engine.begin() as conn:
        gone = archive.unchanged(conn, finished)
        archive.delete_jobs(conn, gone)
    assert gone == [1]
    with engine.connect() as conn:
        assert list(conn.execute(select(Job.id)).scalars()) == [2]
    cfg = RetentionConfig(finished_job_days=1, directory=str(tmp_path))
    # The file holds both; restoring brings back the one not live.
    assert retention.restore_file(engine, cfg, path.name, now) == [1]


def test_jobs_after_the_meters_watermark_stay(engine):
    from sqlalchemy import insert

    from supervisor.store.billing_models import LicenceTerms

    now = time.time()
    fill(engine, 12, 2, now)
    with engine.begin() as conn:
        conn.execute(insert(LicenceTerms), [{"id": 1, "installed_set": False, "revoked": False,
                                             "metered_through": int(now - 300 * DAY)}])
        due = [j for j, _ in archive.due_jobs(conn, now - 30 * DAY, 0, 100)]
    assert due == [1, 2]        # finished more than 300 days ago: the meter is past them


def test_comments_go_with_their_job_and_come_back(engine, tmp_path):
    from sqlalchemy import insert

    from supervisor.store.models import Comment
    now = time.time()
    fill(engine, 2, 3, now)
    with engine.begin() as conn:
        conn.execute(insert(Comment), [
            {"job_id": 1, "host_id": None, "author": "ann", "text": "hold for notes",
             "created_at": now - 300 * DAY},
            {"job_id": 1, "host_id": None, "author": "bob", "text": "approved",
             "created_at": now - 299 * DAY},
            {"job_id": 2, "host_id": None, "author": "ann", "text": "still live",
             "created_at": now}])

    def comments():
        with engine.connect() as conn:
            return sorted((r.job_id, r.author, r.text, r.created_at) for r in conn.execute(
                select(Comment.job_id, Comment.author, Comment.text, Comment.created_at)))
    before = comments()
    cfg = RetentionConfig(finished_job_days=100, directory=str(tmp_path))
    assert archive_pass(engine, cfg, now).jobs == 1          # job 1 only: half a year old
    assert [c[0] for c in comments()] == [2]
    with engine.begin() as conn:                             # a new comment takes an id
        conn.execute(insert(Comment), [{"job_id": 2, "host_id": None, "author": "cy",
                                        "text": "new", "created_at": now}])
    [entry] = retention.listing(cfg)
    assert retention.restore_file(engine, cfg, entry["file"], now) == [1]
    assert [c for c in comments() if c[2] != "new"] == before
