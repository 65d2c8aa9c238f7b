"""Database failures in the middle of the loop's work, on the in-process farm: the supervisor
goes on dispatching, and nothing stored is lost, after every connection it had was cut (a
database restart or failover) or after a transaction failed.  The cuts fall where the test
says, statement by statement, rather than wherever real time put them."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import event, text

from supervisor.store.engine import make_engine
from tests.farm import end_sessions
from tests.scheduling.sim import Ledger
from tests.simfarm import SimFarm


@pytest.fixture
def farm(db_url):
    """A farm on a database of its own: these tests end its sessions and change its
    triggers, which a database shared between tests must not see."""
    f = SimFarm(db_url)
    yield f
    f.close()


def needs_postgres(farm) -> None:
    if not farm.db.startswith("postgresql"):
        pytest.skip("PostgreSQL connections only")


def frames_job(name: str, frames: int) -> dict:
    return {"name": name, "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": f"1-{frames}", "max_retries": 0}]}


class Cuts:
    """Ends every session on the farm's database (a restart, as the supervisor sees it) just
    before the supervisor sends its statement number `first`, `first + every`, ... (`times`
    cuts in all), counting only while `armed`: each falls in the middle of whatever
    transaction is under way."""

    def __init__(self, farm, first: int, every: int, times: int):
        self.url, self.due, self.every, self.left = farm.db, first, every, times
        self.count = self.sessions = 0
        self.armed = False
        self.at: list[str] = []         # the statements the cuts fell before
        event.listen(farm.engine, "before_cursor_execute", self._before)

    def _before(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if not self.armed:
            return
        self.count += 1
        if self.left and self.count == self.due:
            self.left -= 1
            self.due += self.every
            self.sessions += end_sessions(self.url)
            self.at.append(statement.split("(")[0][:60])


def test_the_supervisor_dispatches_on_after_its_connections_are_cut(farm):
    needs_postgres(farm)
    c = farm.client()
    farm.add_worker("h0", slots=2, runtime=0.05)
    [a] = c.submit([frames_job("before", 4)])
    assert farm.run_until_done([a])[0]["succeeded"] == 4
    assert end_sessions(farm.db) >= 1
    [b] = c.submit([frames_job("after", 4)])
    assert farm.run_until_done([b])[0]["succeeded"] == 4
    assert c.job(a)["succeeded"] == 4          # what was stored before the cut is still there


def test_cut_while_frames_end_and_start_loses_and_doubles_nothing(farm, caplog):
    """Completions and the claims filling their slots share a transaction: cut in the middle,
    neither is kept, the workers send their completions again, and each frame still runs to
    success with no host over its slots."""
    needs_postgres(farm)
    c = farm.client()
    farm.add_worker("h0", slots=2, runtime=0.05)
    farm.add_worker("h1", slots=1, runtime=0.05)
    [jid] = c.submit([frames_job("busy", 60)])
    cuts = Cuts(farm, first=11, every=13, times=12)
    with caplog.at_level(logging.ERROR, logger="supervisor"):
        cuts.armed = True           # while the farm works, not while the test asks
        farm.advance(30.0)
        cuts.armed = False
    assert cuts.left == 0 and cuts.sessions >= 12, (cuts.count, cuts.at)
    [done] = farm.run_until_done([jid], 600)
    # Some cuts fell in a turn that recorded completions: that turn kept none of them.
    assert any("could not record" in r.getMessage() for r in caplog.records), cuts.at
    assert done["succeeded"] == 60 and done["dead"] == 0, done
    ledger = Ledger.of(farm.ledger)
    # A rolled-back claim sent no launch: every frame was launched once, and ran once.
    assert len({r.launch.frame_id for r in ledger.runs}) == len(ledger.runs) == 60
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


def test_a_failed_claim_undoes_the_completion_recorded_with_it(farm):
    """The completion and the claim of the slot it frees fail together: the frame is not
    recorded as done, its slot stays taken, and once the database accepts claims again the
    resent completion is recorded and the job runs to the end."""
    c = farm.client()
    w = farm.add_worker("h0", slots=1, runtime=1.0)
    [jid] = c.submit([frames_job("one", 3)])
    assert c.job(jid)["running"] == 1
    [first] = w.running
    refuse_attempts(farm.db, True)
    farm.advance(2.0)              # the first frame ends; its slot cannot be refilled
    job = c.job(jid)
    assert job["succeeded"] == 0 and job["running"] == 1, job
    assert c.hosts()[0]["slots_used"] == 1
    assert list(w.unacked) == [first]          # never acknowledged: the worker keeps it
    refuse_attempts(farm.db, False)
    [done] = farm.run_until_done([jid], 60)
    assert done["succeeded"] == 3
    ledger = Ledger.of(farm.ledger)
    assert len(ledger.runs) == 3               # nothing ran twice
    assert ledger.peak(lambda r: r.worker, lambda r: 1)["h0"] == 1


def test_a_farm_duty_asked_on_a_lost_bus_connection_listens_again(farm):
    """The farm bus's own connection is cut and the first to find out is a farm duty's
    lock query: the duty is not taken then, the loop goes on, and its next turn listens
    again on a new connection, where the duty is taken."""
    needs_postgres(farm)
    loop = farm.loop
    loop.step(0)
    assert loop.holds("test duty")
    assert end_sessions(farm.db) >= 1
    assert loop.holds("another duty") is False
    assert loop.listener.lost()
    loop.step(0)
    assert loop.listener is not None and not loop.listener.lost()
    assert loop.holds("another duty")
    c = farm.client()
    farm.add_worker("h0", slots=1, runtime=0.05)
    [jid] = c.submit([frames_job("after", 2)])
    assert farm.run_until_done([jid])[0]["succeeded"] == 2
