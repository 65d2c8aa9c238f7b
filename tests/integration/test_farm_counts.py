"""Two supervisor processes on one PostgreSQL database, simulated workers spread over them:
the counts of the farm (job and project maximum slots, limits) hold across both at every
moment, and edits of limits and layers made through both while both dispatch never deadlock."""

from __future__ import annotations

import threading

import psycopg2
import pytest

from tests.farm import PG_ADMIN, Farm, FleetThread, PostgresDatabase
from tests.jobs import job, layer
from tests.scheduling.sim import Ledger, wait_finished

PER_SIDE = 4          # workers on each supervisor, 2 slots each
# Short frames: many passes of both supervisors meet at the last slot of a count.


@pytest.fixture
def two_fleets(require_postgres, tmp_path):
    """Supervisors A and B on one new database, each with PER_SIDE simulated workers of its
    own; yields (farms, fleets, database name)."""
    db = PostgresDatabase()
    farms, fleets = [], []
    try:
        for side in ("a", "b"):
            (tmp_path / side).mkdir()
            farm = Farm(db.url, tmp_path / side)
            farm.env["CUEFARM_SUPERVISOR_METRICS_PORT"] = "0"
            farm.start_supervisor()
            farms.append(farm)
            names = [f"{side}{i}" for i in range(PER_SIDE)]
            fleets.append(FleetThread(farm.address, [{"name": n, "slots": 2} for n in names],
                                      runtime=0.03))
            farm.wait_hosts_up(names)
        yield farms, fleets, db.name
    finally:
        for f in fleets:
            try:
                f.close()
            except Exception:   # noqa: BLE001 - already closed by the test
                pass
        for f in farms:
            f.stop()
        db.drop()


def deadlocks(dbname: str) -> int:
    """Deadlocks PostgreSQL detected (and broke with an error) in this database so far."""
    conn = psycopg2.connect(PG_ADMIN)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")
            cur.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (dbname,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_job_and_project_maximums_and_limits_hold_across_supervisors(two_fleets):
    (a, b), fleets, _ = two_fleets
    ca, cb = a.client(), b.client()
    ca.set_project("capped", max_slots=5)
    ca.set_limit("lic", 3)
    # Each would fill all sixteen slots of the farm: only the caps keep them down.  Submitted
    # through both, so both supervisors hear of new work first in turn.
    [capped_job] = ca.submit([job("capped_job", [layer(frames=150)], project="capped",
                                  max_slots=3)])
    [capped_other] = cb.submit([job("capped_other", [layer(frames=150)], project="capped")])
    [free_job] = cb.submit([job("free_job", [layer(frames=150)], project="free",
                                max_slots=4)])
    [licensed] = ca.submit([job("licensed", [layer(frames=150, limits=["lic"])],
                                project="free")])
    done = wait_finished(ca, [capped_job, capped_other, free_job, licensed], 180)
    assert [j["succeeded"] for j in done] == [150] * 4, done
    events = [e for f in fleets for e in f.close()]
    ledger = Ledger.of(events)
    by_job = ledger.peak(lambda r: r.launch.job, lambda r: r.launch.slots)
    by_project = ledger.peak(lambda r: r.launch.project, lambda r: r.launch.slots)
    # What the workers ran, as they saw it (from the launch received to the completion sent:
    # inside the time the database counts each frame): never past a maximum...
    assert by_job["capped_job"] <= 3 and by_job["free_job"] <= 4, by_job
    assert by_project["capped"] <= 5, by_project
    assert by_job["licensed"] <= 3, by_job
    # ...and reaching it (the caps, not a lack of work or workers, held them).
    assert by_job["free_job"] == 4 and by_project["capped"] == 5, (by_job, by_project)
    assert {r.worker[0] for r in ledger.runs} == {"a", "b"}     # both dispatched


def test_edits_of_limits_and_layers_through_both_while_both_dispatch_never_deadlock(
        two_fleets):
    (a, b), fleets, dbname = two_fleets
    ca = a.client()
    for name in ("l1", "l2", "l3"):
        ca.set_limit(name, 6)
    # Jobs of several layers, each layer needing limits, in the other order on each side.
    jobs = []
    for i, c in enumerate((ca, b.client()) * 2):
        names = ["l1", "l2", "l3"] if i % 2 else ["l3", "l2", "l1"]
        jobs += c.submit([job(f"j{i}", [layer(f"r{k}", frames=40, limits=names[k:])
                                        for k in range(3)])])
    errors: list[BaseException] = []
    stop = threading.Event()

    def edit(farm: Farm, flip: int) -> None:
        # Its own clients: a Client is for one thread.
        c = farm.client(timeout=30)
        n = 0
        try:
            while not stop.is_set():
                n += 1
                j = jobs[n % len(jobs)]
                lay = f"r{(n + flip) % 3}"
                names = ["l1", "l2", "l3"][(n + flip) % 3:] or ["l2"]
                c.set_layer(j, lay, limits=names[::-1] if flip else names)
                c.set_limit(f"l{1 + (n + flip) % 3}", 5 + n % 3)
        except BaseException as exc:    # noqa: BLE001 - reported below
            errors.append(exc)

    editors = [threading.Thread(target=edit, args=(f, k)) for k, f in enumerate((a, b))]
    for t in editors:
        t.start()
    try:
        done = wait_finished(ca, jobs, 240)
    finally:
        stop.set()
        for t in editors:
            t.join(60)
    assert not errors, errors
    assert all(j["succeeded"] == 120 for j in done), done
    logs = "".join((f.workdir / "supervisor.log").read_text(errors="replace") for f in (a, b))
    assert "deadlock detected" not in logs and "dispatch pass failed" not in logs, logs
    assert deadlocks(dbname) == 0
