"""Entry points: the `cuegui` console script and the `cuefarm gui` subcommand."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from cuefarm.client import parse_addresses
from cuefarm.config import DEFAULT_ADDRESS, ConfigError

log = logging.getLogger("cuegui")


# Qt platforms that draw without a screen.
HEADLESS = ("offscreen", "minimal", "vnc", "linuxfb", "eglfs")
# What the GUI needs of the system on Debian and Ubuntu (README, "GUI system packages").
PACKAGES = ("libegl1 libgl1 libxkbcommon0 libfontconfig1 libfreetype6 libglib2.0-0 "
            "libdbus-1-3; for X11 also libxcb-cursor0 libxkbcommon-x11-0 libx11-xcb1 "
            "libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 "
            "libxcb-shape0 libxcb-xkb1")


def display_problem(environ=None, platform: str | None = None) -> str | None:
    """Why the GUI cannot open a window here (None: it can, as far as can be told before
    Qt starts, which aborts the process instead of saying what is wrong)."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return None
    qpa = (environ.get("QT_QPA_PLATFORM") or "").split(":")[0].strip().lower()
    if qpa in HEADLESS:
        return None
    if qpa.startswith("wayland"):
        if environ.get("WAYLAND_DISPLAY"):
            return None
    elif qpa == "xcb":
        if environ.get("DISPLAY"):
            return _xcb_libraries()
    elif environ.get("WAYLAND_DISPLAY"):
        return None
    elif environ.get("DISPLAY"):
        return _xcb_libraries()
    return ("no display: cuegui opens a window, and this session has none (neither DISPLAY "
            "nor WAYLAND_DISPLAY is set).\nRun it on a desktop, over `ssh -X`, or under a "
            "virtual display (`xvfb-run cuegui`); `cuegui --screenshots DIR` works without "
            "one.")


def _xcb_libraries() -> str | None:
    """X11 needs libxcb-cursor (Qt 6.5 and later), which many servers lack."""
    import ctypes.util
    if ctypes.util.find_library("xcb-cursor") is None and ctypes.util.find_library("xcb"):
        return ("Qt cannot open an X11 window without libxcb-cursor.so.0: install it "
                "(Debian/Ubuntu: sudo apt install libxcb-cursor0).\nThe GUI needs: "
                + PACKAGES)
    return None


def run(address: str, screenshots: Path | None = None, timeout: float = 60.0,
        mode: str | None = None, theme_name: str | None = None) -> int:
    """Open the window on `address` and run the Qt event loop; return the exit code."""
    if screenshots is not None and not os.environ.get("QT_QPA_PLATFORM") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) \
            and sys.platform.startswith("linux"):
        # A screenshot run needs no screen; without one, render offscreen.
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    # qtpy would take another binding if one happened to be installed; cuegui is built on
    # PySide6.  Qt is imported here, not at module import, so `cuefarm --help` stays light.
    os.environ.setdefault("QT_API", "pyside6")
    problem = display_problem()
    if problem is not None:
        raise click.ClickException(problem)
    try:
        from qtpy.QtWidgets import QApplication
    except ImportError as exc:
        # Usually a system library Qt is built against (libEGL, libGL, libxkbcommon...).
        raise click.ClickException(
            f"Qt cannot be loaded: {exc}.\nInstall PySide6 (pip install 'cuefarm[gui]') and "
            f"the system libraries it needs; on Debian/Ubuntu: sudo apt install "
            f"{PACKAGES.replace('; for X11 also', '')}") from None

    from cuegui import settings as stored
    from cuegui import theme
    from cuegui.connection import Connection
    from cuegui.window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "cuegui"])
    app.setApplicationName("cuegui")
    app.setOrganizationName("CueFarm")
    # A screenshot run neither reads nor changes the user's remembered layout.
    prefs = None if screenshots is not None else stored.default_settings()
    theme.apply(app, theme_name or (stored.theme_name(prefs) if prefs is not None else "dark"))
    connection = Connection(address)
    window = MainWindow(connection, settings=prefs, mode=mode)
    from cuegui.views.preview import machine_path_rules
    window.preview_panel.rules = machine_path_rules()
    tour = None
    if screenshots is not None:
        from cuegui.screenshots import ScreenshotTour
        tour = ScreenshotTour(window, screenshots, timeout)
    window.show()
    connection.start()
    code = app.exec()
    connection.stop()
    if tour is not None:
        for path in tour.saved:
            click.echo(str(path))
    window.deleteLater()
    return code


@click.command("gui", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--supervisor", "address", envvar="CUEFARM_SUPERVISOR", default=DEFAULT_ADDRESS,
              show_default=True, metavar="HOST:PORT",
              help="The supervisor's client API address, or several sharing one farm "
                   "(a:9770,b:9770: the next when one does not answer; env "
                   "CUEFARM_SUPERVISOR).")
@click.option("--screenshots", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR", help="Open each view against live data, save one PNG per view "
                                  "(jobs, job, log, hosts, charts, submit, why, window) into "
                                  "DIR, then exit.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="With --screenshots: how long to wait for live data.")
@click.option("--mode", type=click.Choice(["artist", "wrangler", "admin"]), default=None,
              help="What you act on: your jobs (artist), every job (wrangler), hosts too "
                   "(admin).  Default: as last time, else artist.")
@click.option("--theme", "theme_name", type=click.Choice(["dark", "light"]), default=None,
              help="Look (default: as last time, else dark).")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def command(address: str, screenshots: Path | None, timeout: float, mode: str | None,
            theme_name: str | None, log_level: str) -> None:
    """The CueFarm desktop client: jobs, frames, hosts, logs and charts, updated live."""
    try:
        addresses = parse_addresses(address)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--supervisor") from None
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run(",".join(f"{host}:{port}" for host, port in addresses), screenshots, timeout,
                 mode, theme_name))


def main(argv: list[str] | None = None) -> None:
    """The `cuegui` console script."""
    command.main(args=argv, prog_name="cuegui")


if __name__ == "__main__":
    main()
