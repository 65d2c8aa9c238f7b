"""cuegui for desktops: the desktop entry (packaging/desktop) and the one-file bundle
(packaging/gui), built with PyInstaller from the wheel and started offscreen against a live
supervisor."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.farm import free_port_block
from tests.wheel import build_wheel

ROOT = Path(__file__).resolve().parent.parent
DESKTOP = ROOT / "packaging" / "desktop" / "cuegui.desktop"
ICONS = ROOT / "resources" / "icons"


def desktop_entry() -> dict[str, str]:
    lines = DESKTOP.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(ln.split("=", 1) for ln in lines[1:] if ln and not ln.startswith("#"))


def test_desktop_entry_is_valid():
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.fail("desktop-file-validate is missing (.ci/run installs desktop-file-utils)")
    done = subprocess.run([tool, str(DESKTOP)], capture_output=True, text=True)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_desktop_entry_starts_the_console_script_with_the_shipped_icon():
    import tomllib
    entry = desktop_entry()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry["Exec"].split()[0] in scripts and entry["TryExec"] in scripts
    # Icon=cuegui is resources/icons/cuegui.svg, installed as hicolor/scalable/apps/cuegui.svg
    assert (ICONS / f"{entry['Icon']}.svg").is_file()
    # the window's WM class is the application name cuegui sets
    assert f'setApplicationName("{entry["StartupWMClass"]}")' in \
        (ROOT / "cuegui" / "main.py").read_text()


def build_bundle(base: Path) -> tuple[Path, Path]:
    """packaging/gui/build.sh run for real: (the bundle, the build venv's bin, kept for its
    tools)."""
    # The fastest compression: what is in the file and how it starts are the same at any level.
    env = {**os.environ, "BUILD_VENV": str(base / "venv"), "PYTHON": sys.executable,
           "CUEFARM_WHEEL": str(build_wheel(base / "wheel")),
           "PYINSTALLER_ZLIB_COMPRESSION_LEVEL": "1"}
    subprocess.run(["sh", str(ROOT / "packaging" / "gui" / "build.sh"), str(base / "dist")],
                   cwd=base, env=env, check=True)
    exe = base / "dist" / "cuegui"
    assert os.access(exe, os.X_OK)
    return exe, base / "venv" / "bin"


def gui_env(tmp: Path) -> dict[str, str]:
    """Offscreen, with a home of its own and no pointer to the source tree's resources."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("CUEGUI_RESOURCES", "PYTHONPATH", "CUEFARM_SUPERVISOR")}
    env.update(QT_QPA_PLATFORM="offscreen", HOME=str(tmp), XDG_CONFIG_HOME=str(tmp / "config"),
               XDG_DATA_HOME=str(tmp / "data"), XDG_RUNTIME_DIR=str(tmp))
    return env


# One test (one build of about 3 minutes on 2 cores) so that parallel runs build it once.
@pytest.mark.timeout(900)
def test_bundle_holds_its_resources_and_starts_offscreen_against_a_live_supervisor(tmp_path):
    (tmp_path / "build").mkdir()
    exe, venv_bin = build_bundle(tmp_path / "build")

    # the stylesheet and every icon are inside the one file
    listing = subprocess.run([str(venv_bin / "pyi-archive_viewer"), "--list", "--brief",
                              str(exe)], capture_output=True, text=True, check=True).stdout
    names = {ln.strip() for ln in listing.splitlines()}
    assert "cuegui/resources/cuegui.qss" in names
    missing = {f"cuegui/resources/icons/{p.name}" for p in ICONS.glob("*.svg")} - names
    assert not missing

    cwd = tmp_path / "cwd"          # away from the source tree
    cwd.mkdir()
    helped = subprocess.run([str(exe), "--help"], cwd=cwd, env=gui_env(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--screenshots" in helped.stdout, helped.stderr

    port = free_port_block(4)
    env = {**os.environ, "CUEFARM_DATA_DIR": str(tmp_path / "sup"),
           "CUEFARM_CONFIG": str(tmp_path / "none.toml"), "CUEFARM_SUPERVISOR_PORT": str(port)}
    sup = subprocess.Popen([sys.executable, "-m", "supervisor"], env=env, cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    def tour(shots: Path, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(exe), "--supervisor", f"127.0.0.1:{port}", "--screenshots",
                               str(shots), "--timeout", "120", "--log-level", "debug"],
                              cwd=cwd, env={**gui_env(tmp_path), **env}, capture_output=True,
                              text=True, timeout=300)

    try:
        shots = tmp_path / "shots"
        done = tour(shots)
        # the check below sees missing icons: pointed at an empty directory, it reports them
        (tmp_path / "empty").mkdir()
        without = tour(tmp_path / "shots-without", CUEGUI_RESOURCES=str(tmp_path / "empty"))
    finally:
        sup.send_signal(signal.SIGTERM)
        sup.wait(60)
    assert done.returncode == 0, done.stdout + done.stderr
    tour = json.loads((shots / "tour.json").read_text())
    assert {"jobs.png", "hosts.png", "charts.png", "window.png"} <= set(tour["files"])
    for name in tour["files"]:
        assert (shots / name).stat().st_size > 0
    # a missing icon is logged at debug level; none is missing
    assert "not found" not in done.stdout + done.stderr
    assert without.returncode == 0 and "icon cuegui not found" in without.stderr
