"""`cuefarm up`: a local farm (supervisor, workers, desktop client) as child processes."""

from __future__ import annotations

import json
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
import psutil

from cuefarm import config, watchdog
from cuefarm import keys as keyfiles
from cuefarm.client import Client, CueFarmError, Unreachable, current_user

log = logging.getLogger("cuefarm.cli")
STOP_GRACE = 15.0   # seconds a child has to stop before its process tree is killed


def has_display() -> bool:
    """True where a GUI can open: Windows, macOS, or an X11/Wayland session."""
    return (sys.platform in ("win32", "darwin")
            or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")))


class Child:
    """One program of the local farm, its output going to a log file."""

    def __init__(self, label: str, argv: list[str], log_path: Path, env: dict[str, str],
                 watch_fd: int | None = None):
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
        if watch_fd is not None:
            # The read end of `up`'s watch pipe: the child stops when `up` is gone.
            kwargs["pass_fds"] = (watch_fd,)
            env = dict(env, **{watchdog.ENV: str(watch_fd)})
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env, **kwargs)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, stop: StopRequest, grace: float = STOP_GRACE) -> None:
        """Ask the process to stop; ask again each time `stop` is asked again (a worker then
        kills its frames at once); kill its process tree after `grace` seconds."""
        if self.alive():
            self.proc.terminate()
            asked = stop.count
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                if stop.count != asked:
                    asked = stop.count
                    self.proc.terminate()
                time.sleep(0.1)
            if self.alive():
                log.warning("%s did not stop within %g s; killing it", self.label, grace)
                _kill_tree(self.proc.pid)
                self.proc.wait()
        self._log.close()

    def tail(self, nbytes: int = 4000) -> str:
        try:
            data = self.log_path.read_bytes()[-nbytes:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and everything it started."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP (the terminal closed) as a count: the first asks for the farm
    to stop, each further one hurries the stop under way.  The handler only counts; the main
    loop looks, so a signal never interrupts a child being started or stopped."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                    if hasattr(signal, name))

    def __init__(self) -> None:
        self.count = 0
        self._previous: dict[int, Any] = {}

    def __bool__(self) -> bool:
        return self.count > 0

    def _handle(self, signum: int, frame: Any) -> None:
        self.count += 1

    def install(self) -> None:
        for sig in self.SIGNALS:
            # An ignored SIGHUP (nohup) or SIGINT (a shell's background job) stays ignored.
            if sig != signal.SIGTERM and signal.getsignal(sig) is signal.SIG_IGN:
                continue
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _say(text: str, err: bool = False) -> None:
    """Print, unless the terminal is gone (after SIGHUP a write fails): stopping goes on."""
    try:
        click.echo(text, err=err)
    except OSError:
        pass


def _wait_for_supervisor(sup: Child, address: str, stop: StopRequest,
                         limit: float = 60.0) -> bool:
    """Ping until the supervisor answers; False if it exits, stays silent for `limit` seconds
    or a stop is asked for."""
    deadline = time.monotonic() + limit
    with Client(address, timeout=1.0, connect_timeout=1.0) as client:
        while time.monotonic() < deadline and not stop:
            if not sup.alive():
                return False
            try:
                client.ping(timeout=1.0)
                return True
            except Unreachable:
                continue
    return False


def _stop_all(children: list[Child], stop: StopRequest) -> None:
    """Stop the children in the order given."""
    for child in children:
        if child.alive():
            _say(f"stopping {child.label}")
        child.stop(stop)


# --- the state file: which `cuefarm up` runs from a data directory --------------------------------

STATE_FILE = "up.json"


def _state_path(base: Path) -> Path:
    return base / STATE_FILE


def _running_up(base: Path) -> dict[str, Any] | None:
    """The record of the `cuefarm up` running from `base`, or None (a stale record, of a
    process that is gone, is removed)."""
    path = _state_path(base)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        proc = psutil.Process(int(record["pid"]))
        if abs(proc.create_time() - float(record["created"])) < 1.0 and proc.is_running():
            return record
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, psutil.Error):
        pass
    path.unlink(missing_ok=True)
    return None


def _write_state(base: Path, address: str) -> None:
    me = psutil.Process()
    _state_path(base).write_text(json.dumps({
        "pid": me.pid, "created": me.create_time(), "address": address}), encoding="utf-8")


def _remove_state(base: Path) -> None:
    record = None
    try:
        record = json.loads(_state_path(base).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(record, dict) and record.get("pid") == os.getpid():
        _state_path(base).unlink(missing_ok=True)


# --- cuefarm up -----------------------------------------------------------------------------------

@click.command(short_help="Run a local farm until Ctrl-C (or in the background).")
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
@click.option("--background", is_flag=True,
              help="Start the farm detached from this terminal and return; `cuefarm down` "
                   "stops it.")
def up(workers: int, slots: int | None, port: int, db: str | None, no_gui: bool,
       data_dir: str | None, background: bool) -> None:
    """Run a local farm: a supervisor, workers and the desktop client, until Ctrl-C (or
    SIGTERM, or the terminal closing); with --background, detached until `cuefarm down`.

    The farm stops in order (workers, desktop client, supervisor) however `up` ends; if `up`
    itself is killed, its supervisor and workers notice and stop by themselves."""
    base = Path(data_dir).resolve() if data_dir else config.data_dir()
    logs = base / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    db = config.database_url(db) if db else f"sqlite:///{base / 'cuefarm.db'}"
    slots = slots or max(1, (os.cpu_count() or 1) // max(1, workers))
    address = f"127.0.0.1:{port}"
    env = dict(os.environ, CUEFARM_DATA_DIR=str(base))

    _make_keys(base, address)
    running = _running_up(base)
    if running is not None:
        raise CueFarmError(f"a farm started by `cuefarm up` already runs from {base} (pid "
                           f"{running['pid']}, at {running['address']}); use it, or stop it "
                           f"with `cuefarm down{_data_dir_flag(base)}`")
    with Client(address, timeout=0.5) as probe:
        try:
            probe.ping()
        except Unreachable:
            pass
        except CueFarmError as exc:
            if exc.code != "unauthenticated":
                raise
            raise CueFarmError(f"another supervisor (with other keys) already answers at "
                               f"{address}; use --port for this farm") from None
        else:
            raise CueFarmError(f"a supervisor already answers at {address}; use --port for "
                               "another farm, or just use that one")
    if background:
        argv = [sys.executable, "-m", "cuefarm.cli", "up", "--workers", str(workers),
                "--slots", str(slots), "--port", str(port), "--db", db, "--data-dir", str(base)]
        return _start_background(argv + (["--no-gui"] if no_gui else []), address, base, logs)

    stop = StopRequest()
    stop.install()
    watch_r, watch_w = watchdog.parent_pipe() if watchdog.supported() else (None, None)
    py = sys.executable
    workers_and_gui: list[Child] = []
    sup: Child | None = None
    try:
        _write_state(base, address)
        sup = Child("supervisor", [py, "-m", "supervisor", "--port", str(port), "--db", db],
                    logs / "supervisor.log", env, watch_r)
        _say(f"starting the supervisor on {address} (log: {sup.log_path})")
        if not _wait_for_supervisor(sup, address, stop) and not stop:
            _say(sup.tail(), err=True)
            raise CueFarmError(f"the supervisor did not start; see {sup.log_path}")
        host = socket.gethostname().split(".")[0] or "localhost"
        names = [f"{host}-{i}" for i in range(1, workers + 1)]
        worker_keys = _worker_keys(base, address, names)
        for name in names:
            if stop:
                break
            state_dir = base / "rqd" / name
            workers_and_gui.append(Child(
                f"worker {name}",
                # Frames run as whoever submits them; on this one machine that may be root.
                [py, "-m", "rqd", "--supervisor", address, "--name", name,
                 "--slots", str(slots), "--state-dir", str(state_dir), "--min-uid", "0",
                 "--key", str(worker_keys[name])],
                logs / f"rqd-{name}.log", env, watch_r))
        gui: Child | None = None
        if stop:
            pass
        elif not no_gui and has_display():
            gui = Child("gui", [py, "-m", "cuefarm.watchdog", "cuegui", "--supervisor",
                                address], logs / "cuegui.log", env, watch_r)
            workers_and_gui.append(gui)
        elif not no_gui:
            _say("no display (neither DISPLAY nor WAYLAND_DISPLAY is set): the desktop "
                 "client is not opened; run `cuefarm gui` where there is one, or pass "
                 "--no-gui to skip it quietly")
        if not stop:
            _print_up_summary(address, port, db, base, [*workers_and_gui, sup], slots)
            _watch(sup, workers_and_gui, gui, stop)
        if stop:
            _say("\nstopping the farm")
            return
        # _watch returns without a stop asked for only when the supervisor died.
        _say(sup.tail(), err=True)
        raise CueFarmError(f"the supervisor exited with status {sup.proc.returncode}; "
                           f"see {sup.log_path}")
    finally:
        # However `up` ends: workers first (they report their frames), the supervisor last.
        _stop_all([*workers_and_gui, *([sup] if sup else [])], stop)
        for fd in (watch_r, watch_w):
            if fd is not None:
                os.close(fd)
        _remove_state(base)
        stop.restore()


def _make_keys(base: Path, address: str) -> None:
    """Keys for the farm on this machine, made once: the supervisor's (in the data dir),
    yours (in your config dir, an admin's: the supervisor records it as its owner's), and
    the supervisor's public key noted for its address, so the CLI and the GUI connect with
    no setup.  Its workers make their own keys and are admitted as they come."""
    try:
        mine = keyfiles.find_user_key()
        if mine is None:
            mine = keyfiles.new("user", current_user(), role="admin")
            keyfiles.write(keyfiles.user_key_path(), mine)
        sv = keyfiles.make_supervisor_keys(base / "keys", owner=mine)
        keyfiles.remember_supervisor(address, sv.public)
    except (keyfiles.KeyFileError, OSError) as exc:
        raise CueFarmError(f"cannot set up this farm's keys: {exc}") from None


def _worker_keys(base: Path, address: str, names: list[str]) -> dict[str, Path]:
    """A key file for each of this farm's workers, issued (as you, its owner) the first time:
    the supervisor knows them, so they come in without waiting for an admin."""
    out: dict[str, Path] = {}
    with Client(address, timeout=10) as client:
        for name in names:
            path = base / "keys" / "workers" / f"{name}.key"
            out[name] = path
            if path.exists():
                continue
            key = keyfiles.new("worker", name)
            try:
                client.add_key("worker", name, key.public)
            except CueFarmError as exc:
                if "already has a key" not in str(exc):
                    raise
                # Issued by an earlier run whose key file is gone: replace it.
                client.revoke_key(name)
                client.add_key("worker", name, key.public)
            keyfiles.write(path, key)
    return out


def _start_background(argv: list[str], address: str, base: Path, logs: Path) -> None:
    """Start `cuefarm up` detached (its own session, output to logs/up.log); return once its
    supervisor answers."""
    log_path = logs / "up.log"
    with open(log_path, "ab") as out:
        kwargs: dict[str, Any] = ({"creationflags": subprocess.DETACHED_PROCESS
                                   | subprocess.CREATE_NEW_PROCESS_GROUP}
                                  if sys.platform == "win32" else {"start_new_session": True})
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, **kwargs)
    deadline = time.monotonic() + 90
    with Client(address, timeout=1.0, connect_timeout=1.0) as client:
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                client.ping(timeout=1.0)
                break
            except Unreachable:
                continue
    if proc.poll() is not None or time.monotonic() >= deadline:
        try:
            click.echo(log_path.read_text(errors="replace")[-4000:], err=True)
        except OSError:
            pass
        raise CueFarmError(f"the farm did not start; see {log_path}")
    click.echo(f"CueFarm is running in the background at {address} (pid {proc.pid})")
    click.echo(f"  data dir:  {base}")
    click.echo(f"  log:       {log_path}")
    prefix = "" if address.endswith(f":{config.DEFAULT_PORT}") else \
        f"CUEFARM_SUPERVISOR={address} "
    click.echo(f"Stop it with `cuefarm down{_data_dir_flag(base)}`; submit jobs with "
               f"`{prefix}cuefarm submit FILE`.")


def _data_dir_flag(base: Path) -> str:
    return "" if base == config.data_dir() else f" --data-dir {base}"


@click.command(short_help="Stop a farm started with `cuefarm up`.")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="The farm's data directory, as given to `cuefarm up` [default: the user "
                   "data dir].")
@click.option("--wait", "wait_for", type=click.FloatRange(min=0), default=60.0,
              show_default=True, metavar="SECONDS", help="How long to wait for it to stop.")
def down(data_dir: str | None, wait_for: float) -> None:
    """Stop the farm that `cuefarm up` (in the background, or in another terminal) runs from
    the data directory: workers first, then the supervisor."""
    base = Path(data_dir).resolve() if data_dir else config.data_dir()
    record = _running_up(base)
    if record is None:
        raise CueFarmError(f"no farm started by `cuefarm up` runs from {base}")
    click.echo(f"stopping the farm at {record['address']} (pid {record['pid']})")
    try:
        proc = psutil.Process(int(record["pid"]))
        proc.terminate()
        proc.wait(wait_for)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        raise CueFarmError(f"the farm (pid {record['pid']}) is still stopping after "
                           f"{wait_for:g} s; see {base / 'logs'}") from None
    click.echo("stopped")


def _watch(sup: Child, children: list[Child], gui: Child | None, stop: StopRequest) -> None:
    """Report children that exit; return when the supervisor is gone or a stop is asked for."""
    reported: set[str] = set()
    while sup.alive() and not stop:
        for child in children:
            if not child.alive() and child.label not in reported:
                reported.add(child.label)
                if child is gui:
                    _say("the desktop client closed; the farm keeps running "
                         "(Ctrl-C stops it)")
                else:
                    _say(f"{child.label} exited with status {child.proc.returncode}; "
                         f"see {child.log_path}", err=True)
        time.sleep(0.2)


def _print_up_summary(address: str, port: int, db: str, base: Path, children: list[Child],
                      slots: int) -> None:
    _say(f"CueFarm is running at {address}")
    _say(f"  database:  {db}")
    _say(f"  data dir:  {base}")
    _say(f"  metrics:   http://127.0.0.1:{port + 3}/metrics")
    for child in children:
        extra = ""
        if child.label.startswith("worker"):
            extra = f" ({slots} slot{'' if slots == 1 else 's'})"
        _say(f"  {child.label}{extra}: pid {child.proc.pid}, log {child.log_path}")
    prefix = "" if port == config.DEFAULT_PORT else f"CUEFARM_SUPERVISOR={address} "
    _say("Submit a job: put this in hello.yaml")
    _say("    name: hello")
    _say("    layers:")
    _say('      - {name: say, command: "echo frame #FRAME#", range: 1-10}')
    _say("and run")
    _say(f"    {prefix}cuefarm submit hello.yaml")
    _say(f"    {prefix}cuefarm jobs")
    _say(f"Press Ctrl-C to stop (or run `cuefarm down{_data_dir_flag(base)}`).")
