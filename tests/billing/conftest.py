"""Fixtures: farms configured before their supervisor starts, a metering sink over HTTP."""

from __future__ import annotations

import os

import pytest

from tests.billing.helpers import Sink
from tests.farm import Farm


@pytest.fixture
def new_farm(db_url, tmp_path):
    """Farm(s) on a fresh database of each kind, not started: configure, then start."""
    farms = []

    def make() -> Farm:
        f = Farm(db_url, tmp_path)
        farms.append(f)
        return f
    yield make
    for f in farms:
        f.stop()
        if os.environ.get("CUEFARM_TEST_SHOW_LOGS"):
            print(f.supervisor_log())


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()
