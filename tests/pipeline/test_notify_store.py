"""The notification outbox in the database (SQLite and PostgreSQL): claims, leases, marks,
and two senders sharing one PostgreSQL database sending each notification once."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import insert, select

from supervisor.notify import NotificationsConfig, Sender
from supervisor.store import notifications as store
from supervisor.store.engine import make_engine, migrate
from supervisor.store.pipeline_models import Notification
from tests.farm import wait_until
from tests.pipeline.receivers import HookServer


def add(engine, n: int, target: str = "http://127.0.0.1:9/x", now: float = 100.0) -> None:
    with engine.begin() as conn:
        conn.execute(insert(Notification), [
            {"job_id": i, "event": "finished", "channel": "webhook", "target": target,
             "body": {"event": "finished", "job": {"id": i}}, "state": store.PENDING,
             "tries": 0, "next_at": now, "last_error": "", "created_at": now}
            for i in range(1, n + 1)])


def test_a_claim_holds_its_rows_for_the_lease(engine):
    add(engine, 3)
    with engine.begin() as conn:
        mine = store.claim(conn, "a", 100.0, 60.0)
    assert [r["job_id"] for r in mine] == [1, 2, 3]
    with engine.begin() as conn:
        assert store.claim(conn, "b", 120.0, 60.0) == []          # within a's lease
        store.mark_sent(conn, mine[0]["id"], "a", 121.0)
        store.mark_failed(conn, mine[1]["id"], "a", 121.0, "boom", retry_at=200.0)
        store.mark_failed(conn, mine[2]["id"], "b", 121.0, "not b's", retry_at=None)
    with engine.begin() as conn:
        # a's lease over: what a did not mark is b's now; the failed one waits for its time
        assert [r["job_id"] for r in store.claim(conn, "b", 161.0, 60.0)] == [3]
        assert [r["job_id"] for r in store.claim(conn, "c", 201.0, 60.0)] == [2]
        rows = {r["job_id"]: r for r in store.listing(conn, [store.PENDING, store.SENT])}
    assert rows[1]["state"] == "sent" and rows[1]["tries"] == 1
    assert rows[2]["last_error"] == "boom" and rows[2]["tries"] == 1


def test_failed_rows_are_kept_and_retried_on_request(engine):
    add(engine, 2)
    with engine.begin() as conn:
        a, b = store.claim(conn, "a", 100.0, 60.0)
        store.mark_failed(conn, a["id"], "a", 101.0, "gone", retry_at=None)
        store.mark_failed(conn, b["id"], "a", 101.0, "gone", retry_at=None)
    with engine.begin() as conn:
        assert {r["state"] for r in store.listing(conn, [store.FAILED])} == {"failed"}
        assert store.claim(conn, "a", 1000.0, 60.0) == []
        assert store.retry(conn, [a["id"]], 1000.0) == 1
        assert [r["id"] for r in store.claim(conn, "a", 1000.0, 60.0)] == [a["id"]]


@pytest.mark.postgres
def test_an_open_claim_is_skipped_by_another_supervisor(postgres_url):
    engine = make_engine(postgres_url)
    try:
        migrate(engine)
        add(engine, 4)
        with engine.begin() as first:
            mine = store.claim(first, "a", 100.0, 60.0, limit=2)
            with engine.begin() as second:        # a's claim is not committed yet
                theirs = store.claim(second, "b", 100.0, 60.0)
        assert {r["id"] for r in mine}.isdisjoint(r["id"] for r in theirs)
        assert len(mine) == 2 and len(theirs) == 2
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_two_senders_on_one_database_send_each_once(postgres_url):
    hook = HookServer()
    engines = [make_engine(postgres_url) for _ in range(2)]
    cfg = NotificationsConfig(poll=0.05, timeout=5)
    senders = [Sender(e, cfg, f"supervisor-{i}") for i, e in enumerate(engines)]
    try:
        migrate(engines[0])
        add(engines[0], 60, hook.url(), now=time.time())
        for s in senders:
            s.start()
        wait_until(lambda: len(hook.received) >= 60, 60, message="60 deliveries")
        time.sleep(0.5)     # a duplicate would arrive now
        ids = sorted(r["body"]["job"]["id"] for r in hook.received)
        assert ids == list(range(1, 61))
        with engines[0].connect() as conn:
            who = set(conn.execute(select(Notification.claimed_by)).scalars())
            states = set(conn.execute(select(Notification.state)).scalars())
        assert states == {"sent"} and who <= {"supervisor-0", "supervisor-1"}
    finally:
        for s in senders:
            s.stop()
        for e in engines:
            e.dispose()
        hook.close()
