"""The entry points: `cuegui`, `python -m cuegui` and `cuefarm gui` share one click command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from click.testing import CliRunner

from cuegui.main import command, display_problem


def test_help_lists_the_options():
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    assert "--supervisor" in result.output and "--screenshots" in result.output


def test_a_bad_address_is_refused_before_qt_starts():
    result = CliRunner().invoke(command, ["--supervisor", "nohost:notaport"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output
    # Several supervisors: the one that does not parse is named; an empty list is refused.
    result = CliRunner().invoke(command, ["--supervisor", "127.0.0.1:9770,nohost:x"])
    assert result.exit_code == 2 and "'nohost:x'" in result.output
    result = CliRunner().invoke(command, ["--supervisor", " , "])
    assert result.exit_code == 2 and "no supervisor address" in result.output


def test_python_dash_m_and_cuefarm_gui_run_the_same_command():
    # `cuefarm gui` goes through the installed console script and its entry point.
    cuefarm = Path(sys.executable).with_name("cuefarm")
    if not cuefarm.exists():
        pytest.skip("the cuefarm console script is not installed next to this Python")
    for argv in ([sys.executable, "-m", "cuegui", "--help"], [str(cuefarm), "gui", "--help"]):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "--screenshots" in proc.stdout


def test_importing_the_command_does_not_start_qt():
    code = "import sys, cuegui.main; print(any(m.startswith('PySide6') for m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "False", proc.stderr


def _env_without_display(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(extra)
    return env


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux display variables")
def test_without_a_display_it_says_so_instead_of_aborting():
    proc = subprocess.run([sys.executable, "-m", "cuegui", "--supervisor", "127.0.0.1:9"],
                          capture_output=True, text=True, timeout=60,
                          env=_env_without_display())
    assert proc.returncode == 1, proc.stderr
    assert "no display" in proc.stderr and "DISPLAY" in proc.stderr
    assert "xvfb-run" in proc.stderr and "Aborted" not in proc.stderr


@pytest.mark.parametrize("env, problem", [
    ({}, True),
    ({"QT_QPA_PLATFORM": "offscreen"}, False),
    ({"WAYLAND_DISPLAY": "wayland-0"}, False),
    ({"QT_QPA_PLATFORM": "wayland", "DISPLAY": ":0"}, True),
    ({"QT_QPA_PLATFORM": "xcb", "WAYLAND_DISPLAY": "wayland-0"}, True),
])
def test_which_sessions_have_a_display(env, problem):
    assert (display_problem(env, "linux") is not None) is problem
    assert display_problem(env, "darwin") is None
