"""Supervisor settings for host management are checked at start: a bad one is a usage error
(exit code 2) naming the setting, before the supervisor opens its database or its sockets."""

from __future__ import annotations

import os
import subprocess

import pytest

from supervisor.store.hostadmin import _refusal
from tests.farm import PYTHON, free_port_block


def start(db_url: str, tmp_path, toml: str = "", env: dict | None = None):
    config = tmp_path / "cuefarm.toml"
    config.write_text(toml)
    full_env = {**os.environ, "CUEFARM_CONFIG": str(config),
                "CUEFARM_DATA_DIR": str(tmp_path / "data"), **(env or {})}
    return subprocess.run(
        [PYTHON, "-m", "supervisor", "--port", str(free_port_block()), "--db", db_url],
        capture_output=True, text=True, env=full_env, timeout=60)


@pytest.mark.parametrize("toml,env,names", [
    ('[supervisor]\nadmission_networks = ["10.0.0.0/33"]\n', {},
     ["admission_networks", "10.0.0.0/33"]),
    ("", {"CUEFARM_SUPERVISOR_ADMISSION_NETWORKS": "10.1.0.0/16,bogus"},
     ["admission_networks", "bogus"]),
    ('[supervisor]\nadmission_mode = "Any"\n', {}, ["admission_mode", "'Any'"]),
    ("", {"CUEFARM_SUPERVISOR_ADMISSION_MODE": "named-only"}, ["admission_mode", "named-only"]),
    ('[supervisor]\ntimezone = "Europe/Lodnon"\n', {}, ["timezone", "Europe/Lodnon"]),
    ("", {"CUEFARM_SUPERVISOR_TIMEZONE": "../etc/passwd"}, ["timezone"]),
    ('[supervisor]\nadmission_retry = 0\n', {}, ["admission_retry"]),
    ('[supervisor]\nheartbeat_interval = 3600\n', {}, ["heartbeat_interval", "at most 60"]),
    ("", {"CUEFARM_SUPERVISOR_HEARTBEAT_INTERVAL": "0"}, ["heartbeat_interval"]),
    ('[supervisor]\nmax_frames_per_submit = 0\n', {}, ["max_frames_per_submit", "above 0"]),
    ("", {"CUEFARM_SUPERVISOR_MAX_LAYERS_PER_SUBMIT": "-5"}, ["max_layers_per_submit"]),
])
def test_bad_host_settings_stop_the_supervisor_at_start(db_url, tmp_path, toml, env, names):
    result = start(db_url, tmp_path, toml, env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in result.stderr, result.stderr
    if db_url.startswith("sqlite"):       # refused before the database was even created
        assert not (tmp_path / "cuefarm.db").exists()


def test_good_host_settings_pass_the_check(sqlite_url, tmp_path):
    """The same start with valid values gets past the check (and is stopped by a bad port
    instead, which proves the check ran and passed without leaving a supervisor running)."""
    config = tmp_path / "cuefarm.toml"
    config.write_text('[supervisor]\nadmission_mode = "ranges"\n'
                      'admission_networks = ["10.0.0.0/8"]\ntimezone = "Europe/London"\n')
    result = subprocess.run(
        [PYTHON, "-m", "supervisor", "--port", "65534", "--db", sqlite_url],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "CUEFARM_CONFIG": str(config)})
    assert result.returncode == 2
    assert "--port 65534 is out of range" in result.stderr


def test_a_bad_stored_policy_never_raises_at_registration():
    policy = {"mode": "ranges", "networks": ["10.0.0.0/33", "192.168.0.0/16"], "patterns": []}
    assert _refusal(policy, None, "ws1", "192.168.4.2") is None       # the good range applies
    assert "outside the admitted ranges" in _refusal(policy, None, "ws1", "10.0.0.1")
    odd = _refusal({"mode": "Any"}, None, "ws1", "10.0.0.1")
    assert "'Any'" in odd and "admission mode" in odd                   # not a silent "named"
    assert _refusal({"mode": "Any"}, "admitted", "ws1", "10.0.0.1") is None
    assert "banned" in _refusal({"mode": "any"}, "banned", "ws1", "10.0.0.1")
