"""Lost PostgreSQL connections: the supervisor goes on dispatching, and nothing stored is lost,
after every connection it had was cut (a database restart or failover)."""

from __future__ import annotations

import psycopg2
import pytest

from tests.farm import PG_ADMIN
from tests.scheduling.sim import wait_finished

pytestmark = pytest.mark.postgres


def cut_connections(url: str) -> int:
    """Terminate every server process connected to the database in `url`."""
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            return cur.fetchone()[0]
    finally:
        admin.close()


def test_the_supervisor_dispatches_on_after_its_connections_are_cut(farm, fleet_factory):
    if not farm.db_url.startswith("postgresql"):
        pytest.skip("PostgreSQL connections only")
    c = farm.client()
    fleet_factory([{"name": "h0", "slots": 2}], runtime=0.05)
    [a] = c.submit([{"name": "before", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-4", "max_retries": 0}]}])
    assert wait_finished(c, [a])[0]["succeeded"] == 4
    assert cut_connections(farm.db_url) >= 1
    [b] = c.submit([{"name": "after", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-4", "max_retries": 0}]}])
    assert wait_finished(c, [b])[0]["succeeded"] == 4
    assert c.job(a)["succeeded"] == 4          # what was stored before the cut is still there
