"""Heartbeat figures as PostgreSQL array literals: what the server reads back is what was sent."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text

from supervisor.store.engine import make_engine
from supervisor.store.telemetry import array_literal, relaxed_commit
from tests.farm import PostgresDatabase

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_engine(require_postgres):
    with PostgresDatabase() as db:
        engine = make_engine(db.url)
        try:
            yield engine
        finally:
            engine.dispose()


CASES = [
    ("float8[]", [0.1 + 0.2, 1796425829.0784097, 1e-05, -0.0, 1e300, None]),
    ("bigint[]", [0, -1, 2**62, None, 5 * 2**32 + 7]),
    ("integer[]", [2**31 - 1, -(2**31)]),
    ("boolean[]", [True, False, None]),
    ("float8[]", []),
]


@pytest.mark.parametrize("kind, values", CASES)
def test_literals_read_back_as_sent(pg_engine, kind, values):
    with pg_engine.connect() as conn:
        got = conn.execute(text(f"SELECT CAST(:x AS {kind})"),
                           {"x": array_literal(values)}).scalar_one()
    assert got == values


def test_not_finite_floats_read_back(pg_engine):
    with pg_engine.connect() as conn:
        got = conn.execute(text("SELECT CAST(:x AS float8[])"),
                           {"x": array_literal([math.inf, -math.inf, math.nan])}).scalar_one()
    assert got[:2] == [math.inf, -math.inf] and math.isnan(got[2])


def test_relaxed_commit_holds_for_its_transaction_only(pg_engine):
    with pg_engine.begin() as conn:
        relaxed_commit(conn)
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "off"
    with pg_engine.begin() as conn:
        assert conn.exec_driver_sql("SHOW synchronous_commit").scalar_one() == "on"
