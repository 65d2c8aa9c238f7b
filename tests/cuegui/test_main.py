"""The entry points: `cuegui`, `python -m cuegui` and `cuefarm gui` share one click command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from click.testing import CliRunner

from cuegui.main import command


def test_help_lists_the_options():
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0
    assert "--supervisor" in result.output and "--screenshots" in result.output


def test_a_bad_address_is_refused_before_qt_starts():
    result = CliRunner().invoke(command, ["--supervisor", "nohost:notaport"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output


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
