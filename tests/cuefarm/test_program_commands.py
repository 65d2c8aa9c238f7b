"""The supervisor runs as a `cuefarm` subcommand (`cuefarm supervisor`), where the click
context holds the command line's settings."""

from __future__ import annotations

from tests.farm import Farm


def test_cuefarm_supervisor_runs(tmp_path):
    farm = Farm(f"sqlite:///{tmp_path / 'farm.db'}", tmp_path)
    farm.launcher = ["-m", "cuefarm.cli", "supervisor"]
    try:
        farm.start_supervisor()              # it answers a ping
        assert farm.client().hosts() == []
    finally:
        farm.stop()
