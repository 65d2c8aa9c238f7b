"""Database failures in the middle of the loop's work: the supervisor goes on dispatching, and
nothing stored is lost, after every connection it had was cut (a database restart or failover)
or after a transaction failed."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text

from supervisor.store.engine import make_engine
from tests.farm import end_sessions, wait_until
from tests.scheduling.sim import Ledger, wait_finished


def test_the_supervisor_dispatches_on_after_its_connections_are_cut(farm, fleet_factory):
    if not farm.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL connections only")
    c = farm.client()
    fleet_factory([{"name": "h0", "slots": 2}], runtime=0.05)
    [a] = c.submit([{"name": "before", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-4", "max_retries": 0}]}])
    assert wait_finished(c, [a])[0]["succeeded"] == 4
    assert end_sessions(farm.db_url) >= 1
    [b] = c.submit([{"name": "after", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-4", "max_retries": 0}]}])
    assert wait_finished(c, [b])[0]["succeeded"] == 4
    assert c.job(a)["succeeded"] == 4          # what was stored before the cut is still there


def test_cut_while_frames_end_and_start_loses_and_doubles_nothing(farm, fleet_factory):
    """Completions and the claims filling their slots share a transaction: cut in the middle,
    neither is kept, the workers send their completions again, and each frame still runs to
    success with no host over its slots."""
    if not farm.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL connections only")
    c = farm.client()
    fleet = fleet_factory([{"name": "h0", "slots": 2}, {"name": "h1", "slots": 1}],
                          runtime=0.05)
    [jid] = c.submit([{"name": "busy", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-60", "max_retries": 0}]}])
    cuts = 0
    for _ in range(8):
        time.sleep(0.15)
        cuts += end_sessions(farm.db_url)
    assert cuts >= 1
    [done] = wait_finished(c, [jid], timeout=120)
    assert done["succeeded"] == 60 and done["dead"] == 0, done
    ledger = Ledger.of(fleet.close())
    assert len({r.launch.frame_id for r in ledger.runs}) == 60
    peaks = ledger.peak(lambda r: r.worker, lambda r: r.launch.slots)
    assert peaks["h0"] <= 2 and peaks["h1"] <= 1, peaks


def refuse_attempts(url: str, on: bool) -> None:
    """A trigger that makes every new attempt fail to insert (on), or its removal."""
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                if on:
                    conn.execute(text(
                        "CREATE FUNCTION no_attempts() RETURNS trigger LANGUAGE plpgsql AS"
                        " $$ BEGIN RAISE EXCEPTION 'no new attempts'; END $$"))
                    conn.execute(text("CREATE TRIGGER no_attempts BEFORE INSERT ON attempt"
                                      " FOR EACH ROW EXECUTE FUNCTION no_attempts()"))
                else:
                    conn.execute(text("DROP TRIGGER no_attempts ON attempt"))
                    conn.execute(text("DROP FUNCTION no_attempts()"))
            elif on:
                conn.execute(text("CREATE TRIGGER no_attempts BEFORE INSERT ON attempt"
                                  " BEGIN SELECT RAISE(ABORT, 'no new attempts'); END"))
            else:
                conn.execute(text("DROP TRIGGER no_attempts"))
    finally:
        engine.dispose()


def test_a_failed_claim_undoes_the_completion_recorded_with_it(farm, fleet_factory):
    """The completion and the claim of the slot it frees fail together: the frame is not
    recorded as done, its slot stays taken, and once the database accepts claims again the
    resent completion is recorded and the job runs to the end."""
    c = farm.client()
    fleet = fleet_factory([{"name": "h0", "slots": 1}], runtime=1.0)
    [jid] = c.submit([{"name": "one", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-3", "max_retries": 0}]}])
    wait_until(lambda: c.job(jid)["running"] == 1, 30)
    refuse_attempts(farm.db_url, True)
    time.sleep(2.0)                # the first frame ends; its slot cannot be refilled
    job = c.job(jid)
    assert job["succeeded"] == 0 and job["running"] == 1, job
    assert c.hosts()[0]["slots_used"] == 1
    refuse_attempts(farm.db_url, False)
    [done] = wait_finished(c, [jid], timeout=60)
    assert done["succeeded"] == 3
    ledger = Ledger.of(fleet.close())
    assert ledger.peak(lambda r: r.worker, lambda r: 1)["h0"] == 1
