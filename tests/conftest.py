"""Shared fixtures: databases (SQLite and PostgreSQL) and real farms."""

from __future__ import annotations

import os

import pytest
import zmq

from tests.farm import PostgresDatabase, postgres_available, running_farm

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(autouse=True)
def _own_config_dir(monkeypatch, tmp_path_factory):
    """Each test its own user config directory: keys and supervisors' keys that one test
    notes (cuefarm up, keys use) never meet a farm of another test on the same port."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("config")))


def pytest_configure(config):
    """The tests never see the keys of whoever runs them (their user config directory):
    every test that uses keys makes its own."""
    import tempfile
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="cuefarm-test-config-")
    for name in ("CUEFARM_KEY", "CUEFARM_SUPERVISOR_KEY"):
        os.environ.pop(name, None)


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
    with PostgresDatabase() as db:
        yield db.url


@pytest.fixture
def postgres_url(require_postgres):
    """A fresh, empty PostgreSQL database (what several supervisors share)."""
    with PostgresDatabase() as db:
        yield db.url


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'cuefarm.db'}"


@pytest.fixture
def engine(db_url):
    """An engine on a migrated database of either kind (store tests)."""
    from supervisor.store.engine import make_engine, migrate
    e = make_engine(db_url)
    migrate(e)
    yield e
    e.dispose()


@pytest.fixture
def farm(db_url, tmp_path):
    """A running supervisor (no workers yet) on a fresh database of each kind."""
    with running_farm(db_url, tmp_path) as f:
        yield f


@pytest.fixture
def sqlite_farm(sqlite_url, tmp_path):
    """A running supervisor on SQLite only (for tests whose subject is not the database)."""
    with running_farm(sqlite_url, tmp_path) as f:
        yield f


ROLES = {"CUEFARM_SUPERVISOR_ADMINS": "boss", "CUEFARM_SUPERVISOR_WRANGLERS": "wendy, walt"}


@pytest.fixture
def roles_farm(db_url, tmp_path):
    """A supervisor with roles: boss is an admin, wendy and walt wranglers, everyone else an
    artist (farm.client(user=...) speaks as one of them)."""
    with running_farm(db_url, tmp_path, ROLES) as f:
        yield f


@pytest.fixture
def sqlite_roles_farm(sqlite_url, tmp_path):
    """The roles_farm on SQLite only."""
    with running_farm(sqlite_url, tmp_path, ROLES) as f:
        yield f


@pytest.fixture
def zctx():
    """A ZeroMQ context for a test's own sockets, destroyed afterwards."""
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(0)


@pytest.fixture
def require_postgres():
    """Skip (or, under CI, fail) when PostgreSQL is unreachable."""
    postgres_or_skip()


# The longest tests (building and starting the deployment artefacts: minutes each) go first, so
# that in a parallel run they overlap the rest instead of finishing alone at the end.
FIRST = ("tests/test_deploy_",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not item.nodeid.startswith(FIRST))
