"""SQLite's one writer, in one process: threads take turns on the engine's writer lock (given
back on commit, rollback, a connection closed or given back mid-transaction, and a failed
statement), and reads run beside the writer."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

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


def test_a_read_runs_beside_the_writer_and_sees_what_was_committed(engine):
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
    with engine.begin() as writer:
        writer.execute(text("INSERT INTO t VALUES (2)"))
        assert values(engine) == [1]         # not yet committed; and no wait for the writer
    assert values(engine) == [1, 2]
