"""The wheel ships every package, the migrations and the GUI's resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for top in ("cuefarm", "supervisor", "rqd", "cuegui")
             for p in (ROOT / top).rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml [tool.setuptools] packages: {found - listed}"


def test_wheel_holds_migrations_and_resources(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("supervisor/migrations/env.py", "supervisor/migrations/script.py.mako",
                   "supervisor/migrations/versions/0001_initial_schema.py",
                   "cuegui/resources/cuegui.qss", "cuegui/resources/icons/pause.svg",
                   "cuegui/resources/examples/job.yaml", "cuefarm/cli/__init__.py"):
        assert needed in names, needed


# Run by the installed cuegui, from outside the source tree: where its resources are, which
# icons load, and whether the stylesheet was applied.
_LOOK = """
import json, sys
from qtpy.QtWidgets import QApplication
import cuegui, cuegui.theme as theme
from cuegui.hostactions import HOST_ACTIONS
from cuegui.jobactions import DEPENDENCY_ACTIONS, FRAME_ACTIONS, JOB_ACTIONS
app = QApplication([])
theme.apply(app, "dark")
names = sorted({s.icon for s in JOB_ACTIONS + FRAME_ACTIONS + DEPENDENCY_ACTIONS + HOST_ACTIONS}
               | set(json.loads(sys.argv[1])))
print(json.dumps({"package": cuegui.__file__, "resources": str(theme.resources_dir()),
                  "missing": [n for n in names if theme.icon(n).isNull()],
                  "stylesheet": len(app.styleSheet()),
                  "window_icon": not app.windowIcon().isNull()}))
"""


def test_the_installed_gui_finds_every_icon_and_its_stylesheet(tmp_path):
    """The wheel installed (not editable) into a fresh venv, run from another directory."""
    wheel = build_wheel(tmp_path / "dist")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", str(wheel)], check=True)
    # The dependencies (Qt, pyqtgraph, ...) come from this interpreter's site-packages, added
    # after the venv's own: a directory named in a .pth file has its own .pth files ignored,
    # so this tree's editable install does not come along.
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site.stdout.strip()) / "dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    icons = [p.stem for p in (ROOT / "resources" / "icons").glob("*.svg")]
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "CUEGUI_RESOURCES")}
    env.update(QT_QPA_PLATFORM="offscreen", QT_API="pyside6")
    proc = subprocess.run([str(python), "-c", _LOOK, json.dumps(icons)], cwd=outside, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["package"].startswith(str(env_dir)), found      # the wheel, not this tree
    assert Path(found["resources"]).is_relative_to(env_dir), found
    assert found["missing"] == []
    assert found["stylesheet"] > 0 and found["window_icon"]
