"""Fixtures for the scheduling tests: fleets of simulated workers on a real farm."""

from __future__ import annotations

import pytest

from tests.farm import FleetThread


@pytest.fixture
def fleet_factory(farm):
    """start(hosts, runtime): a fleet of simulated workers, UP before it returns."""
    fleets = []

    def start(hosts, runtime=0.05):
        f = FleetThread(farm.address, hosts, runtime)
        fleets.append(f)
        farm.wait_hosts_up([h["name"] for h in hosts])
        return f
    yield start
    for f in fleets:
        if not f.stop.is_set():
            f.close()
