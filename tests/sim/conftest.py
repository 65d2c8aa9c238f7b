"""Fixtures of the in-process farm tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from supervisor.store.engine import make_engine, migrate
from tests.conftest import postgres_or_skip
from tests.farm import PostgresDatabase
from tests.simfarm import SimFarm, wipe


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def farm(request, sim_db):
    """An in-process farm (no workers yet) on an empty database of each kind."""
    f = SimFarm(sim_db(request.param))
    yield f
    f.close()


@pytest.fixture(scope="session")
def sim_db():
    """sim_db(kind): an engine on a migrated database of `kind` ("sqlite" or "postgres"),
    kept for the session and emptied for each call.  Hundreds of examples each migrating a
    database of their own, and compiling every statement for a new engine, would cost more
    than running them."""
    made: dict[str, tuple] = {}

    def get(kind: str):
        if kind not in made:
            if kind == "sqlite":
                db = None
                engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'cuefarm.db'}")
            else:
                postgres_or_skip()
                db = PostgresDatabase()
                engine = make_engine(db.url)
            migrate(engine)
            made[kind] = (engine, db)
        engine = made[kind][0]
        wipe(engine)
        return engine
    yield get
    for engine, db in made.values():
        engine.dispose()
        if db is not None:
            db.drop()
