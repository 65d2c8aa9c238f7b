"""The dispatch pass's statements run straight on SQLite's cursor (supervisor.store.direct): the
same rows as SQLAlchemy's execution gives, the same writes, SQLAlchemy's errors, and the usual
path wherever the direct one does not apply (PostgreSQL, no transaction, an empty IN list)."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, select, text

from cuefarm.spec import validate_submission
from supervisor.store import counters, counts, direct, work
from supervisor.store import submit as submit_store
from supervisor.store.engine import make_engine, migrate
from supervisor.store.models import Attempt, Frame, Layer

# Every read the pass runs through `direct.execute`.
HOT = {"candidates": work._CANDIDATES, "claim": work._CLAIM,
       "lock running": work._LOCK_RUNNING, "layer counts": work._LAYER_COUNTS,
       "slots in use": counts._SLOTS_IN_USE}


@pytest.fixture
def store(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    specs = validate_submission([{"name": "shot", "project": "p", "priority": 7, "layers": [
        {"name": "render", "command": ["true"], "range": "1-6"},
        {"name": "comp", "command": ["true"], "range": "1-3", "depends_on": ["render"]}]}])
    with engine.begin() as conn:
        [job_id] = submit_store.submit(conn, specs, "ann", 100.0)
    yield engine, job_id
    engine.dispose()


def sqlite_only(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("the direct path is SQLite's")


def test_every_hot_statement_runs_directly_on_sqlite(store):
    engine, _ = store
    sqlite_only(engine)
    with engine.begin() as conn:
        for name, stmt in HOT.items():
            plan = direct._Plan(stmt, conn)
            assert plan.usable, name
            assert "POSTCOMPILE" not in plan.sql or plan.expanding, name


def claim_three(conn, job_id: int) -> list[work.Claimed]:
    [layer] = [lay for lay in work.candidate_layers(conn, 10) if lay["job_id"] == job_id]
    layer.update(work.layer_static(conn, [layer["id"]])[layer["id"]])
    deltas, touched = counters.Deltas(), work.Touched()
    [claims] = work.claim(conn, [(layer, [(1, "h1", 1), (2, "h2", 2), (1, "h1", 1)])], 101.0,
                          deltas, touched)
    work.settle(conn, deltas, touched, 101.0)
    return claims


def test_rows_are_those_sqlalchemy_gives(store):
    """Each SELECT's rows, direct and through SQLAlchemy, in the same transaction: the same
    values (a boolean column converted as SQLAlchemy converts it), the same names."""
    engine, job_id = store
    with engine.begin() as conn:
        claims = claim_three(conn, job_id)
        assert [c.slots for c in claims] == [1, 2, 1]
        render, comp = conn.execute(select(Layer.id).where(Layer.job_id == job_id)
                                    .order_by(Layer.idx)).scalars()
        asks = [(work._CANDIDATES, {"n": 10}), (work._CLAIM, {"lid": render, "n": 2}),
                (work._LOCK_RUNNING, {"frames": [c.frame_id for c in claims]}),
                (work._LAYER_COUNTS, {"ids": [render, comp]}), (counts._SLOTS_IN_USE, None)]
        for stmt, params in asks:
            mine = direct.execute(conn, stmt, params)
            theirs = conn.execute(stmt, params).all()
            assert mine == [tuple(r) for r in theirs] and mine, stmt
            assert [r._asdict() for r in mine][:1] == [dict(r._mapping) for r in theirs][:1]
        [cand] = direct.execute(conn, work._CANDIDATES, {"n": 10})
        assert cand.job_started is True and cand.priority == 7 and cand.user == "ann"
        running = direct.execute(conn, work._LOCK_RUNNING,
                                 {"frames": [c.frame_id for c in claims]})
        assert sorted((r.frame_id, r.host_id, r.slots) for r in running) == sorted(
            (c.frame_id, c.host_id, c.slots) for c in claims)
        assert direct.execute(conn, counts._SLOTS_IN_USE) == [(job_id, cand.project_id, 4)]


def test_writes_land_and_the_claims_counters_add_up(store):
    engine, job_id = store
    with engine.begin() as conn:
        claims = claim_three(conn, job_id)
    with engine.connect() as conn:
        attempts = conn.execute(select(Attempt.frame_id, Attempt.number, Attempt.host_name,
                                       Attempt.state, Attempt.stopped_at, Attempt.progress)
                                .order_by(Attempt.frame_id)).all()
        frames = conn.execute(select(Frame.id, Frame.state, Frame.attempt, Frame.host_id)
                              .where(Frame.state == "RUNNING").order_by(Frame.id)).all()
        render = conn.execute(select(Layer.waiting, Layer.running, Layer.slots_running)
                              .where(Layer.job_id == job_id, Layer.name == "render")).one()
    assert [tuple(a) for a in attempts] == [(c.frame_id, 1, c.host_name, "RUNNING", None, None)
                                            for c in claims]
    assert [tuple(f) for f in frames] == [(c.frame_id, "RUNNING", 1, c.host_id) for c in claims]
    assert tuple(render) == (3, 3, 4)


def test_a_refused_write_is_sqlalchemys_error_and_keeps_nothing(store):
    """A trigger refusing new attempts: the claim's write fails with SQLAlchemy's error (what
    the loop's error handling knows), and the transaction's frame moves roll back with it.
    On PostgreSQL the attempt rows go ahead of the counters' write, by name, in one round
    trip."""
    engine, job_id = store
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER no_attempts BEFORE INSERT ON attempt"
                                 " BEGIN SELECT RAISE(ABORT, 'no new attempts'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION no_attempts() RETURNS trigger LANGUAGE"
                                 " plpgsql AS $$ BEGIN RAISE EXCEPTION 'no new attempts'; END $$")
            conn.exec_driver_sql("CREATE TRIGGER no_attempts BEFORE INSERT ON attempt"
                                 " FOR EACH ROW EXECUTE FUNCTION no_attempts()")
    with pytest.raises(exc.DBAPIError, match="no new attempts") as refused:
        with engine.begin() as conn:
            claim_three(conn, job_id)
    assert isinstance(refused.value, exc.IntegrityError if engine.dialect.name == "sqlite"
                      else exc.InternalError)
    with engine.connect() as conn:
        assert conn.execute(select(Frame.id).where(Frame.state == "RUNNING")).all() == []
        assert conn.execute(select(Layer.running).where(Layer.job_id == job_id)).scalars() \
            .all() == [0, 0]


def test_the_usual_path_where_the_direct_one_does_not_apply(store):
    engine, job_id = store
    with engine.begin() as conn:
        assert direct.execute(conn, work._LAYER_COUNTS, {"ids": []}) == []
    with engine.connect() as conn:      # no transaction begun: SQLAlchemy begins one
        rows = direct.execute(conn, work._CANDIDATES, {"n": 10})
        assert [r.job_id for r in rows] == [job_id]
        conn.rollback()


def test_many_rows_in_one_statement_end_attempts_and_move_frames_in_chunks(store):
    """Ends of attempts and frame moves as one statement per chunk (SQLite 3.33 and later):
    each row lands as the executemany would have written it, over more rows than one chunk
    of SQLite's parameters holds."""
    engine, job_id = store
    sqlite_only(engine)
    if not direct.MANY_ROWS:
        pytest.skip("this SQLite has no UPDATE ... FROM")
    from cuefarm import protocol as p
    with engine.begin() as conn:
        claims = claim_three(conn, job_id)
        deltas, touched = counters.Deltas(), work.Touched()
        ended = work.end_attempts(conn, {
            (claims[0].frame_id, 1): p.Completion(claims[0].attempt_id, 0, 101.5, 102.5, 7,
                                                  1.5),
            (claims[1].frame_id, 1): p.Completion(claims[1].attempt_id, 3, 101.5, 103.0, 8,
                                                  2.0, reason="exit 3")}, 104.0, deltas,
            touched)
        work.settle(conn, deltas, touched, 104.0)
        assert sorted(e.frame_state.value for e in ended) == ["SUCCEEDED", "WAITING"]
        rows = conn.execute(select(Attempt.frame_id, Attempt.state, Attempt.stopped_at,
                                   Attempt.exit_status, Attempt.peak_rss, Attempt.cpu_time,
                                   Attempt.reason, Attempt.progress)
                            .order_by(Attempt.frame_id)).all()
        assert [tuple(r) for r in rows] == [
            (claims[0].frame_id, "SUCCEEDED", 102.5, 0, 7, 1.5, "", 100),
            (claims[1].frame_id, "FAILED", 103.0, 3, 8, 2.0, "exit 3", None),
            (claims[2].frame_id, "RUNNING", None, None, 0, 0.0, "", None)]
        # More rows than one statement's parameters allow: moved in several chunks.
        many = [(100_000 + i, i) for i in range(direct._MAX_PARAMS // 7 * 2 + 5)]
        conn.execute(text("INSERT INTO frame (id, job_id, layer_id, idx, number, frame_end,"
                          " label, state, retries, attempt, deps_left, updated_at)"
                          " SELECT :i, job_id, id, :i, :i, :i, 'x', 'WAITING', 0, 0, 0, 0"
                          " FROM layer WHERE job_id = :j AND name = 'render'"),
                     [{"i": fid, "j": job_id} for fid, _ in many])
        direct.many_rows(conn, counters._MOVE_FRAMES_SQLITE,
                         [(fid, "EATEN", 0, n % 5, None, None, 105.0) for fid, n in many])
        got = conn.execute(select(Frame.id, Frame.state, Frame.attempt, Frame.updated_at)
                           .where(Frame.id >= 100_000).order_by(Frame.id)).all()
        assert [tuple(r) for r in got] == [(fid, "EATEN", n % 5, 105.0) for fid, n in many]


def postgres_only(engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")


def prepared_here(conn) -> set[str]:
    return set(conn.execute(text("SELECT name FROM pg_prepared_statements")).scalars())


def test_postgresql_prepares_each_hot_statement_once_per_connection(store):
    """The pass's statements are prepared on the server the first time a connection runs
    them and then run by name: a second pass on the same connection prepares nothing more,
    and its rows are the same as the first's."""
    engine, job_id = store
    postgres_only(engine)
    with engine.begin() as conn:
        first = claim_three(conn, job_id)
        cands = direct.execute(conn, work._CANDIDATES, {"n": 10})
        names = prepared_here(conn)
        ours = conn.connection.info[direct.PREPARED]
        assert ours and ours <= names
        for stmt in (work._CANDIDATES, work._CLAIM_PG, work._LOCK_RUNNING_PG,
                     counts._SLOTS_IN_USE):
            assert direct._pg_plan(conn, stmt).usable
        assert direct._pg_plan(conn, work._CANDIDATES).name in names
    with engine.begin() as conn:
        assert prepared_here(conn) == names     # the pool's one connection, as it was
        again = direct.execute(conn, work._CANDIDATES, {"n": 10})
        assert again == cands and again[0].job_id == job_id
        second = claim_three(conn, job_id)
        assert prepared_here(conn) == names
    assert {c.frame_id for c in first}.isdisjoint(c.frame_id for c in second)


def test_postgresql_statements_lost_by_the_session_are_prepared_again(store):
    """A session that lost its prepared statements (DISCARD, a pooler handing out another
    session): the transaction that finds out fails with SQLAlchemy's error and keeps
    nothing; the next one prepares them again and goes through."""
    engine, job_id = store
    postgres_only(engine)
    with engine.begin() as conn:
        direct.execute(conn, work._CANDIDATES, {"n": 10})
    with engine.connect() as conn:
        conn.exec_driver_sql("DEALLOCATE ALL")
        conn.commit()
    with pytest.raises(exc.DBAPIError, match="does not exist"):
        with engine.begin() as conn:
            claim_three(conn, job_id)
    with engine.begin() as conn:
        assert conn.execute(select(Frame.id).where(Frame.state == "RUNNING")).all() == []
        claims = claim_three(conn, job_id)
        assert len(claims) == 3
        assert direct._pg_plan(conn, work._CANDIDATES).name in prepared_here(conn)


def test_a_cut_postgresql_connection_is_replaced_as_sqlalchemy_replaces_it(store):
    """The server ends the session under a prepared statement's run: the error is
    SQLAlchemy's, saying the connection was invalidated, and the next transaction gets a
    new connection, where the statements are prepared again."""
    from tests.farm import end_sessions
    engine, job_id = store
    postgres_only(engine)
    with engine.begin() as conn:
        direct.execute(conn, work._CANDIDATES, {"n": 10})
    with pytest.raises(exc.DBAPIError) as cut:
        with engine.begin() as conn:
            conn.execute(select(Layer.id)).all()          # checked out, transaction begun
            assert end_sessions(engine.url.render_as_string(hide_password=False)) >= 1
            direct.execute(conn, work._CANDIDATES, {"n": 10})
    assert cut.value.connection_invalidated
    with engine.begin() as conn:
        assert [r.job_id for r in direct.execute(conn, work._CANDIDATES, {"n": 10})] == [job_id]
        assert direct._pg_plan(conn, work._CANDIDATES).name in prepared_here(conn)


def test_postgresql_statements_whose_rows_changed_shape_are_prepared_again(store):
    """The schema changes under a prepared statement (another supervisor's upgrade altered a
    column it returns): the transaction that finds out fails with SQLAlchemy's error, and
    the next one drops the connection's statements and prepares them again."""
    engine, job_id = store
    postgres_only(engine)
    with engine.begin() as conn:
        assert direct.execute(conn, work._CANDIDATES, {"n": 10})[0].job_id == job_id
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE layer ALTER COLUMN waiting TYPE bigint")
    with pytest.raises(exc.DBAPIError, match="result type"):
        with engine.begin() as conn:
            direct.execute(conn, work._CANDIDATES, {"n": 10})
    with engine.begin() as conn:
        [row] = direct.execute(conn, work._CANDIDATES, {"n": 10})
        assert row.job_id == job_id and row.waiting == 6
        assert direct._pg_plan(conn, work._CANDIDATES).name in prepared_here(conn)
