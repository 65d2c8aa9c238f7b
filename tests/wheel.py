"""The cuefarm wheel, built from a copy of this source tree (setuptools builds in the tree's
own build/ directory, which a build beside a test run must not share), once per test run."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".venv", "venv", ".hypothesis")


def build_wheel(where: Path) -> Path:
    """The wheel in `where` (created if missing); its path.  It is built once per test run and
    copied: parallel workers of one run (pytest-xdist) share it under a lock."""
    where.mkdir(parents=True, exist_ok=True)
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    shared = Path(tempfile.gettempdir()) / f"cuefarm-test-wheel-{run}"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = list(shared.glob("cuefarm-*.whl"))
        if not built:
            built = [_build(shared)]
    return Path(shutil.copy2(built[0], where))


def _build(where: Path) -> Path:
    src = where / "source"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(ROOT, src, ignore=LEFT_OUT)
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(where), str(src)], check=True)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    [wheel] = where.glob("cuefarm-*.whl")
    return wheel
