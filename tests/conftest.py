"""Shared fixtures: databases (SQLite and PostgreSQL) and real farms."""

from __future__ import annotations

import os

import pytest

from tests.farm import Farm, PostgresDatabase, postgres_available

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def postgres_or_skip() -> None:
    """Skip the test (under CI=true: fail it) when PostgreSQL is unreachable."""
    reason = postgres_available()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
        pytest.skip(reason)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A database URL for a fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cuefarm.db'}"
        return
    postgres_or_skip()
    db = PostgresDatabase()
    try:
        yield db.url
    finally:
        db.drop()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'cuefarm.db'}"


@pytest.fixture
def farm(db_url, tmp_path):
    """A running supervisor (no workers yet) on a fresh database of each kind."""
    f = Farm(db_url, tmp_path)
    f.start_supervisor()
    try:
        yield f
    finally:
        f.stop()
        if os.environ.get("CUEFARM_TEST_SHOW_LOGS"):
            print(f.supervisor_log())


@pytest.fixture
def sqlite_farm(sqlite_url, tmp_path):
    """A running supervisor on SQLite only (for tests whose subject is not the database)."""
    f = Farm(sqlite_url, tmp_path)
    f.start_supervisor()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture
def require_postgres():
    """Skip (or, under CI, fail) when PostgreSQL is unreachable."""
    postgres_or_skip()
