"""PostgreSQL connections from the pool: one that sat idle is pinged, one the server ended is
replaced, one lost silently while in use fails one statement and the pool reconnects."""

from __future__ import annotations

import os
import resource
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from supervisor.store import engine as engine_mod
from supervisor.store.engine import make_engine
from tests.farm import PG_ADMIN, end_sessions


@pytest.fixture
def pg_url(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL connections only")
    return db_url


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_an_idle_connection_is_pinged_and_replaced_when_dead(pg_url, monkeypatch):
    monkeypatch.setattr(engine_mod, "PING_IDLE", 0.2)
    engine = make_engine(pg_url)
    try:
        first = backend_pid(engine)
        assert end_sessions(pg_url) == 1
        time.sleep(0.3)
        assert backend_pid(engine) != first
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_replaced_when_the_server_ended_it(pg_url, monkeypatch):
    monkeypatch.setattr(engine_mod, "PING_IDLE", 3600.0)     # never idle long enough
    engine = make_engine(pg_url)
    try:
        first = backend_pid(engine)
        assert end_sessions(pg_url) == 1
        time.sleep(0.2)                # the server's goodbye reaches the socket
        assert backend_pid(engine) != first
    finally:
        engine.dispose()


def last_query(pid: int) -> str:
    """What the server process `pid` last ran (from another session)."""
    import psycopg2
    admin = psycopg2.connect(PG_ADMIN)
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
            return cur.fetchone()[0]
    finally:
        admin.close()


def test_a_connection_past_a_thousand_descriptors_is_not_pinged_in_steady_use(pg_url,
                                                                             monkeypatch):
    """A supervisor with thousands of workers connected holds thousands of descriptors: its
    database sockets are past select()'s limit, and a healthy connection is still handed out
    without a round trip."""
    monkeypatch.setattr(engine_mod, "PING_IDLE", 3600.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this machine allows {hard} open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            assert conn.connection.dbapi_connection.fileno() >= 1024
        before = last_query(pid)
        with engine.connect() as conn:
            assert conn.connection.dbapi_connection.get_backend_pid() == pid
            assert last_query(pid) == before, "the checkout sent a ping"
        assert end_sessions(pg_url) == 1          # and one the server ended is replaced
        with engine.connect() as conn:
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_session_ended_while_checked_out_fails_one_statement_then_reconnects(pg_url,
                                                                            monkeypatch):
    monkeypatch.setattr(engine_mod, "PING_IDLE", 3600.0)
    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            first = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
            conn.commit()
            assert end_sessions(pg_url) == 1
            time.sleep(0.2)
            with pytest.raises(DBAPIError) as info:
                conn.execute(text("SELECT 1"))
            assert info.value.connection_invalidated
        assert backend_pid(engine) != first
    finally:
        engine.dispose()
