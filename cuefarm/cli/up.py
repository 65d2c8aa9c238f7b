"""`cuefarm up`: a local farm (supervisor, workers, desktop client) as child processes."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from cuefarm import config
from cuefarm.client import Client, CueFarmError, Unreachable

log = logging.getLogger("cuefarm.cli")

def has_display() -> bool:
    """True where a GUI can open: Windows, macOS, or an X11/Wayland session."""
    return (sys.platform in ("win32", "darwin")
            or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")))


class Child:
    """One program of the local farm, its output going to a log file."""

    def __init__(self, label: str, argv: list[str], log_path: Path, env: dict[str, str]):
        self.label = label
        self.log_path = log_path
        self._log = open(log_path, "ab")
        kwargs: dict[str, Any] = {}
        # Own process group: a Ctrl-C in the terminal reaches only `cuefarm up`, which then
        # stops the children in order (workers before the supervisor).
        if sys.platform == "win32":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, **kwargs)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        """Ask the process to stop; kill it after `grace` seconds."""
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %g s; killing it", self.label, grace)
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def tail(self, nbytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()[-nbytes:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")


class _Stop(Exception):
    """SIGTERM, turned into an exception so the main loop unwinds like on Ctrl-C."""


def _wait_for_supervisor(sup: Child, address: str, limit: float = 60.0) -> bool:
    """Ping until the supervisor answers; False if it exits or stays silent for `limit` seconds."""
    deadline = time.monotonic() + limit
    with Client(address, timeout=1.0) as client:
        while time.monotonic() < deadline:
            if not sup.alive():
                return False
            try:
                client.ping(timeout=1.0)
                return True
            except Unreachable:
                continue
    return False


def _stop_all(children: list[Child]) -> None:
    for child in children:
        if child.alive():
            click.echo(f"stopping {child.label}")
        child.stop()


@click.command(short_help="Run a local farm until Ctrl-C.")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True,
              help="How many worker daemons to start.")
@click.option("--slots", type=click.IntRange(min=1),
              help="Slots per worker [default: the cores shared among the workers].")
@click.option("--port", type=click.IntRange(1, 65533), default=config.DEFAULT_PORT,
              show_default=True,
              help="Client API port (PORT+1 workers, PORT+2 events, PORT+3 metrics).")
@click.option("--db", metavar="URL", help="Database URL [default: SQLite in the data directory].")
@click.option("--no-gui", is_flag=True, help="Do not open the desktop client.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where the database, logs and worker state go [default: the user data dir].")
def up(workers: int, slots: int | None, port: int, db: str | None, no_gui: bool,
       data_dir: str | None) -> None:
    """Run a local farm: a supervisor, workers and the desktop client, until Ctrl-C."""
    base = Path(data_dir).resolve() if data_dir else config.data_dir()
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    db = config.database_url(db) if db else f"sqlite:///{base / 'cuefarm.db'}"
    slots = slots or max(1, (os.cpu_count() or 1) // max(1, workers))
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, CUEFARM_DATA_DIR=str(base))

    with Client(address, timeout=0.5) as probe:
        try:
            probe.ping()
        except Unreachable:
            pass
        else:
            raise CueFarmError(f"a supervisor already answers at {address}; use --port for "
                               "another farm, or just use that one")

    def on_sigterm(signum: int, frame: Any) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    py = sys.executable
    children: list[Child] = []  # in stop order: workers, gui, supervisor
    sup: Child | None = None
    try:
        sup = Child("supervisor", [py, "-m", "supervisor", "--port", str(port), "--db", db],
                    logs / "supervisor.log", env)
        click.echo(f"starting the supervisor on {address} (log: {sup.log_path})")
        if not _wait_for_supervisor(sup, address):
            click.echo(sup.tail(), err=True)
            raise CueFarmError(f"the supervisor did not start; see {sup.log_path}")
        host = socket.gethostname().split(".")[0] or "localhost"
        for i in range(1, workers + 1):
            name = f"{host}-{i}"
            state_dir = base / "rqd" / name
            children.append(Child(
                f"worker {name}",
                # Frames run as whoever submits them; on this one machine that may be root.
                [py, "-m", "rqd", "--supervisor", address, "--name", name,
                 "--slots", str(slots), "--state-dir", str(state_dir), "--min-uid", "0"],
                logs / f"rqd-{name}.log", env))
        gui: Child | None = None
        if not no_gui and has_display():
            gui = Child("gui", [py, "-m", "cuegui", "--supervisor", address],
                        logs / "cuegui.log", env)
            children.append(gui)
        elif not no_gui:
            click.echo("no display (neither DISPLAY nor WAYLAND_DISPLAY is set): the desktop "
                       "client is not opened; run `cuefarm gui` where there is one, or pass "
                       "--no-gui to skip it quietly")
        children.append(sup)
        _print_up_summary(address, port, db, base, children, slots)
        _watch(sup, children, gui)
    except (KeyboardInterrupt, _Stop):
        click.echo("\nstopping the farm")
        _stop_all(children or ([sup] if sup else []))
        return
    except BaseException:
        _stop_all(children or ([sup] if sup else []))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    # _watch returns only when the supervisor died.
    click.echo(sup.tail(), err=True)
    _stop_all(children)
    raise CueFarmError(f"the supervisor exited with status {sup.proc.returncode}; "
                       f"see {sup.log_path}")


def _watch(sup: Child, children: list[Child], gui: Child | None) -> None:
    """Report children that exit; return when the supervisor is gone."""
    reported: set[str] = set()
    while sup.alive():
        for child in children:
            if child is not sup and not child.alive() and child.label not in reported:
                reported.add(child.label)
                if child is gui:
                    click.echo("the desktop client closed; the farm keeps running "
                               "(Ctrl-C stops it)")
                else:
                    click.echo(f"{child.label} exited with status {child.proc.returncode}; "
                               f"see {child.log_path}", err=True)
        time.sleep(0.5)


def _print_up_summary(address: str, port: int, db: str, base: Path, children: list[Child],
                      slots: int) -> None:
    click.echo(f"CueFarm is running at {address}")
    click.echo(f"  database:  {db}")
    click.echo(f"  data dir:  {base}")
    click.echo(f"  metrics:   http://127.0.0.1:{port + 3}/metrics")
    for child in children:
        extra = ""
        if child.label.startswith("worker"):
            extra = f" ({slots} slot{'' if slots == 1 else 's'})"
        click.echo(f"  {child.label}{extra}: pid {child.proc.pid}, log {child.log_path}")
    prefix = "" if port == config.DEFAULT_PORT else f"CUEFARM_SUPERVISOR={address} "
    click.echo("Submit a job: put this in hello.yaml")
    click.echo("    name: hello")
    click.echo("    layers:")
    click.echo('      - {name: say, command: "echo frame #FRAME#", range: 1-10}')
    click.echo("and run")
    click.echo(f"    {prefix}cuefarm submit hello.yaml")
    click.echo(f"    {prefix}cuefarm jobs")
    click.echo("Press Ctrl-C to stop.")
