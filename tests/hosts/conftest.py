"""Fixtures for the host tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def quick_admission(farm):
    """Refused workers ask again after a second (instead of a minute)."""
    farm.kill_supervisor()
    farm.env["CUEFARM_SUPERVISOR_ADMISSION_RETRY"] = "1"
    farm.start_supervisor()
    return farm
