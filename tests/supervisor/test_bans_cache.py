"""The dispatcher's cached view of bad-host bans, against a real store (SQLite and
PostgreSQL): reused for BAN_REFRESH seconds, read again at once after this supervisor records
failures, and never applying a ban past its end."""

from __future__ import annotations

from sqlalchemy import insert

from cuefarm.spec import validate_submission
from supervisor.live import BAN_REFRESH, Bans
from supervisor.store import submit as submit_store
from supervisor.store.engine import make_engine, migrate
from supervisor.store.models import JobHost
from supervisor.store.work import FailurePolicy, Touched


def test_bans_are_reused_briefly_and_reread_after_a_failure_is_recorded(db_url):
    engine = make_engine(db_url)
    try:
        migrate(engine)
        specs = validate_submission([{"name": n, "project": "p", "layers": [
            {"name": "render", "command": ["true"], "range": "1-2"}]} for n in ("a", "b")])
        policy = FailurePolicy(threshold=1, period=100.0)
        bans, now, mono = Bans(), 1000.0, 50.0
        with engine.begin() as conn:
            a, b = submit_store.submit(conn, specs, "ann", now)
            conn.execute(insert(JobHost).values(job_id=a, host_id=7, failures=3,
                                                banned_until=now + 10))
            first = bans.of_jobs(conn, {a, b}, now, mono, policy.writes)
            # Another supervisor bans host 8 from job b: not seen until the refresh is due...
            conn.execute(insert(JobHost).values(job_id=b, host_id=8, failures=3,
                                                banned_until=now + 50))
            cached = bans.of_jobs(conn, {a, b}, now + 1, mono + BAN_REFRESH / 2, policy.writes)
            later = bans.of_jobs(conn, {a, b}, now + 2, mono + BAN_REFRESH, policy.writes)
            # ...but a failure this supervisor records is seen by the next pass at once.
            policy.record(conn, {(b, 9): 1}, now + 2, Touched())
            recorded = bans.of_jobs(conn, {a, b}, now + 2, mono + BAN_REFRESH, policy.writes)
            only_b = bans.of_jobs(conn, {b}, now + 3, mono + BAN_REFRESH, policy.writes)
            # A ban that ended is not applied, even from the cached rows.
            ended = bans.of_jobs(conn, {a, b}, now + 11, mono + BAN_REFRESH, policy.writes)
    finally:
        engine.dispose()
    assert first == {a: {7}}
    assert cached == {a: {7}}
    assert later == {a: {7}, b: {8}}
    assert recorded == {a: {7}, b: {8, 9}}
    assert only_b == {b: {8, 9}}
    assert ended == {b: {8, 9}}
