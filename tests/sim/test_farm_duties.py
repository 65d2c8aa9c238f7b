"""Housekeeping done once per farm (host expiry, lock schedules, usage, metrics retention,
metering reports): among supervisors sharing a PostgreSQL database, one does each duty at a
time, and when it stops another takes the duty on."""

from __future__ import annotations

import pytest

from tests.farm import PostgresDatabase
from tests.simfarm import SimFarm

DUTIES = ["host expiry", "lock schedules", "usage accounting", "metrics retention",
          "metering reports"]


@pytest.fixture
def shared_db(require_postgres):
    with PostgresDatabase() as db:
        yield db.url


def test_each_duty_is_held_by_one_supervisor_and_passes_on_when_it_stops(shared_db):
    a = SimFarm(shared_db)
    b = SimFarm(shared_db)
    try:
        assert all(a.sv.loop.holds(d) for d in DUTIES)
        assert not any(b.sv.loop.holds(d) for d in DUTIES)
        assert all(a.sv.loop.holds(d) for d in DUTIES)      # kept, not taken again
        a.close()
        assert all(b.sv.loop.holds(d) for d in DUTIES)
    finally:
        a.close()
        b.close()


def test_a_periodic_duty_runs_only_where_it_is_held(shared_db):
    a = SimFarm(shared_db)
    b = SimFarm(shared_db)
    ran = {"a": 0, "b": 0}
    try:
        a.sv.loop.add_periodic(1.0, lambda cx: ran.__setitem__("a", ran["a"] + 1), duty="probe")
        b.sv.loop.add_periodic(1.0, lambda cx: ran.__setitem__("b", ran["b"] + 1), duty="probe")
        for _ in range(3):
            a.advance(1.5)
            b.advance(1.5)
        assert ran["a"] >= 2 and ran["b"] == 0
        a.close()
        for _ in range(3):
            b.advance(1.5)
        assert ran["b"] >= 2
    finally:
        a.close()
        b.close()


def test_on_a_database_of_its_own_a_supervisor_does_every_duty(tmp_path):
    farm = SimFarm(f"sqlite:///{tmp_path / 'farm.db'}")
    try:
        assert all(farm.sv.loop.holds(d) for d in DUTIES)
    finally:
        farm.close()
