"""The wheel ships every package, the migrations and the GUI's resources."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("cuefarm", "supervisor", "rqd", "cuegui")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {found - listed}"


def test_wheel_holds_migrations_and_resources(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                    "-q", "-w", str(tmp_path), str(ROOT)], check=True)
    [wheel] = tmp_path.glob("cuefarm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("supervisor/migrations/env.py", "supervisor/migrations/script.py.mako",
                   "supervisor/migrations/versions/0001_initial_schema.py",
                   "cuegui/resources/cuegui.qss", "cuegui/resources/icons/pause.svg",
                   "cuegui/resources/examples/job.yaml", "cuefarm/cli/__init__.py"):
        assert needed in names, needed
