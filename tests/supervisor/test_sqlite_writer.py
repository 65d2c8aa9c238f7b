"""SQLite's one writer, in one process: threads take turns on the engine's writer lock (given
back on commit, rollback, a connection closed or given back mid-transaction, and a failed
statement), reads run beside the writer, and a supervisor copies the write-ahead log into the
database on a thread of its own, not in whichever commit finds the log long."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import exc, text

from cuefarm.config import SupervisorConfig
from supervisor.server import Supervisor
from supervisor.store.engine import make_engine, reading


@pytest.fixture
def engine(tmp_path):
    e = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with e.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    yield e
    e.dispose()


def write_from_another_thread(engine, value: int) -> None:
    """A write on another thread gets its turn (it would wait 30 s for a turn never given
    back, then fail)."""
    errors: list[BaseException] = []

    def write() -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    t = threading.Thread(target=write)
    t.start()
    t.join(20)
    assert not t.is_alive(), "the writer's turn was not given back"
    assert not errors, errors


def values(engine) -> list[int]:
    with reading(engine) as conn:
        return [r[0] for r in conn.execute(text("SELECT x FROM t ORDER BY x"))]


def test_the_writers_turn_is_given_back_on_every_way_out(engine):
    with engine.begin() as conn:                         # commit
        conn.execute(text("INSERT INTO t VALUES (1)"))
    write_from_another_thread(engine, 2)
    with pytest.raises(RuntimeError):                    # rollback on an error
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (99)"))
            raise RuntimeError("boom")
    write_from_another_thread(engine, 3)
    conn = engine.connect()                              # closed mid-transaction
    conn.execute(text("INSERT INTO t VALUES (98)"))
    conn.close()
    write_from_another_thread(engine, 4)
    with engine.connect() as conn:                       # several commits on one connection
        for v in (5, 6):
            conn.execute(text("INSERT INTO t VALUES (:v)"), {"v": v})
            conn.commit()
            write_from_another_thread(engine, v + 10)
    with pytest.raises(Exception):                       # a failed statement, then rollback
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO no_such_table VALUES (1)"))
    write_from_another_thread(engine, 7)
    assert values(engine) == [1, 2, 3, 4, 5, 6, 7, 15, 16]


def test_a_begin_refused_by_another_process_is_sqlalchemys_error_and_gives_the_turn_back(
        engine, tmp_path):
    """Another process holds SQLite's write lock: BEGIN IMMEDIATE fails as SQLAlchemy's
    OperationalError (what the loop's error handling catches), and this process's writer's
    turn is given back, so the next transaction begins once the other one is done."""
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with engine.connect() as conn:
            conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=50")
            with pytest.raises(exc.OperationalError, match="database is locked"):
                conn.begin()
            conn.connection.dbapi_connection.execute("PRAGMA busy_timeout=30000")
    finally:
        other.execute("ROLLBACK")
        other.close()
    write_from_another_thread(engine, 8)
    assert values(engine) == [8]


def test_a_read_runs_beside_the_writer_and_sees_what_was_committed(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with engine.begin() as writer:
        writer.execute(text("INSERT INTO t VALUES (2)"))
        assert values(engine) == [1]         # not yet committed; and no wait for the writer
    assert values(engine) == [1, 2]


def test_a_supervisor_on_sqlite_copies_the_log_on_a_thread_of_its_own(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sv.db'}")
    sv = Supervisor(SupervisorConfig(metrics_port=0), engine)
    try:
        sv.start()
        assert sv.checkpointer is not None and sv.checkpointer.thread.is_alive()
        with engine.connect() as conn:          # no commit copies the log any more
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        for _ in range(50):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (1)"))
        deadline = time.monotonic() + 30
        while sv.checkpointer.copied == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sv.checkpointer.copied > 0
    finally:
        sv.close()
    assert not sv.checkpointer.thread.is_alive()
    raw = engine.raw_connection()        # everything in the log was copied on the way out
    try:
        busy, log, done = raw.driver_connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and done == log
    finally:
        raw.close()
    engine.dispose()


def test_a_supervisor_stepped_by_hand_leaves_the_log_to_sqlite(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'sv.db'}")
    sv = Supervisor(SupervisorConfig(metrics_port=0), engine, threads=False)
    try:
        sv.start()
        assert sv.checkpointer is None
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() > 0
    finally:
        sv.close()
        engine.dispose()
