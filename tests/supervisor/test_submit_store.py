"""Storing a submission on SQLite and PostgreSQL (which loads frames by COPY)."""

from __future__ import annotations

from sqlalchemy import select

from cuefarm.spec import validate_submission
from supervisor.store import submit as submit_store
from supervisor.store.engine import make_engine, migrate
from supervisor.store.models import Frame, Layer


def test_frames_are_stored_in_order_with_their_labels_and_states(db_url):
    engine = make_engine(db_url)
    try:
        migrate(engine)
        specs = validate_submission([{"name": "shot", "project": "p", "layers": [
            {"name": "render", "command": ["true"], "range": "1-10x3,20-23", "chunk": 2},
            {"name": "comp", "command": ["true"], "range": "1-3", "depends_on": ["render"]}]}])
        with engine.begin() as conn:
            [job_id] = submit_store.submit(conn, specs, "ann", 100.5)
            layers = dict(conn.execute(select(Layer.name, Layer.id)
                                       .where(Layer.job_id == job_id)).all())
            # Labels are made by us, but one with a tab, backslash or newline must still land
            # in its own column (COPY's text format would otherwise shift them).
            submit_store._insert_frames(conn, job_id, layers["comp"], [7, 8, 9], [7, 8, 9],
                                        ["a\tb", "c\\d", "e\nf"], ["WAITING"] * 3, [0, 0, 0],
                                        100.5)
            render = conn.execute(select(Frame.idx, Frame.number, Frame.frame_end, Frame.label,
                                         Frame.state, Frame.deps_left, Frame.updated_at)
                                  .where(Frame.layer_id == layers["render"])
                                  .order_by(Frame.idx)).all()
            comp = conn.execute(select(Frame.number, Frame.label, Frame.state)
                                .where(Frame.layer_id == layers["comp"])
                                .order_by(Frame.number)).all()
    finally:
        engine.dispose()
    # 1-10x3 is 1,4,7,10; with 20-23 and chunks of 2: 1,4 | 7,10 | 20,21 | 22,23
    assert [tuple(r) for r in render] == [
        (0, 1, 4, "1,4", "WAITING", 0, 100.5), (1, 7, 10, "7,10", "WAITING", 0, 100.5),
        (2, 20, 21, "20-21", "WAITING", 0, 100.5), (3, 22, 23, "22-23", "WAITING", 0, 100.5)]
    assert [tuple(r) for r in comp] == [
        (1, "1", "DEPEND"), (2, "2", "DEPEND"), (3, "3", "DEPEND"),
        (7, "a\tb", "WAITING"), (8, "c\\d", "WAITING"), (9, "e\nf", "WAITING")]


def test_a_paced_submit_stores_the_same_frames(engine):
    # pace() is how a submit stored beside the supervisor's loop lets the loop's turns go
    # first: on PostgreSQL it is called before each COPY_CHUNK frames are made into COPY text.
    calls = []
    frames = 2 * submit_store.COPY_CHUNK + 1
    specs = validate_submission([{"name": "big", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": f"1-{frames}"}]}])
    with engine.begin() as conn:
        [job_id] = submit_store.submit(conn, specs, "ann", 100.5,
                                       pace=lambda: calls.append(1))
        rows = conn.execute(select(Frame.idx, Frame.number, Frame.label, Frame.state)
                            .where(Frame.job_id == job_id).order_by(Frame.idx)).all()
    assert [tuple(r) for r in rows] == [(i, i + 1, str(i + 1), "WAITING") for i in range(frames)]
    # And once after each slice of the job's columns freed (five columns, one slice each).
    assert len(calls) == (3 if engine.dialect.name == "postgresql" else 0) + 5


def test_ranges_checked_unexpanded_are_expanded_one_job_at_a_time(engine):
    # A huge submit is checked without expanding its ranges: each job's frame numbers are made
    # as it is stored and freed once it is, so the submit holds one job's at a time.
    jobs = [{"name": f"j{i}", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-20x2", "chunk": 3}]} for i in range(2)]
    lazy = validate_submission(jobs, expand=False)
    eager = validate_submission(jobs)
    assert [len(s.layers[0].frames) for s in lazy] == [0, 0]
    held = []
    with engine.begin() as conn:
        ids = submit_store.submit(conn, lazy + eager, "ann", 1.0,
                                  pace=lambda: held.append([len(s.layers[0].frames)
                                                            for s in lazy]))
        rows = {i: [tuple(r) for r in conn.execute(
            select(Frame.idx, Frame.number, Frame.frame_end, Frame.label)
            .where(Frame.job_id == i).order_by(Frame.idx))] for i in ids}
    assert rows[ids[0]] == rows[ids[1]] == rows[ids[2]] == rows[ids[3]]
    assert rows[ids[0]][:2] == [(0, 1, 5, "1-5x2"), (1, 7, 11, "7-11x2")]
    assert [10, 0] in held and [0, 10] in held and [10, 10] not in held
    # Frames expanded by the caller stay the caller's.
    assert [len(s.layers[0].frames) for s in lazy] == [0, 0]
    assert [len(s.layers[0].frames) for s in eager] == [10, 10]
