"""Two supervisors sharing one PostgreSQL database: one starting leaves the other's hosts and
running frames alone."""

from __future__ import annotations

from tests.farm import Farm, PostgresDatabase, wait_until
from tests.integration import ledger


def test_a_second_supervisor_leaves_the_first_ones_work_alone(require_postgres, tmp_path):
    db = PostgresDatabase()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Farm(db.url, tmp_path / "a")
    # The second one expires and releases fast: if it took the first one's host for its own,
    # it would mark it DOWN and requeue its frames long before they end.
    second = Farm(db.url, tmp_path / "b", host_expiry=1.0, release_after=1.0)
    try:
        first.start_supervisor()
        cmd, book = ledger.command(tmp_path, 10.0)
        first.start_rqd("w1", 2)
        first.wait_hosts_up(["w1"])
        c = first.client()
        [job_id] = c.submit([{"name": "shared", "project": "test", "layers": [
            {"name": "r", "command": cmd, "range": "1-2", "max_retries": 0}]}])
        wait_until(lambda: c.job(job_id)["running"] == 2, 60, message="both frames running")
        second.start_supervisor()
        job = c.wait(job_id, timeout=120)
        assert job["succeeded"] == 2, job
        runs = ledger.attempts(book)
        assert len(runs) == 2 and all(r["how"] == "end" for r in runs.values()), runs
        assert all(f["attempt"] == 1 and f["retries"] == 0 for f in c.frames(job_id))
        hosts = {h["name"]: h for h in second.client().hosts()}
        assert hosts["w1"]["state"] == "UP"
        assert "w1 is DOWN" not in second.supervisor_log().replace("worker w1", "w1")
    finally:
        second.stop()
        first.stop()
        db.drop()
