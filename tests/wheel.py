"""The cuefarm wheel, built from a copy of this source tree: tests running at once in parallel
each build one, and setuptools builds in the tree's own build/ directory, which two builds
cannot share."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEFT_OUT = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                  ".pytest_cache", ".venv", "venv", ".hypothesis")


def build_wheel(where: Path) -> Path:
    """Build the wheel into `where` (created if missing) and return its path."""
    where.mkdir(parents=True, exist_ok=True)
    src = where / "source"
    shutil.copytree(ROOT, src, ignore=LEFT_OUT)
    try:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                        str(where), str(src)], check=True)
    finally:
        shutil.rmtree(src, ignore_errors=True)
    [wheel] = where.glob("cuefarm-*.whl")
    return wheel
