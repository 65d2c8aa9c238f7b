"""Real farms for tests: a supervisor process, rqd processes, simulated workers in a thread,
databases on SQLite or PostgreSQL, and the `cuefarm` command run against them."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import psutil
from click.testing import CliRunner, Result

from cuefarm import Client, CueFarmError
from cuefarm.client import current_user
from cuefarm import keys as keyfiles
from cuefarm.cli import cli
from rqd.fleet import Fleet
from tests import forkstart

PYTHON = sys.executable
# Supervisors (a launcher `-m MODULE ...`) are forked from a process that has imported them
# (tests/forkstart.py) unless CUEFARM_TEST_FORK=0: then each is started as its own process.
FORK = os.environ.get("CUEFARM_TEST_FORK", "1") != "0"
PG_ADMIN = os.environ.get("CUEFARM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port_block(n: int = 4) -> int:
    """A port P with P..P+n-1 all free right now, below the kernel's ephemeral range.

    Ports the kernel hands out for outgoing connections are never picked: a worker reconnecting
    to a killed supervisor's port in that range can connect to itself (same source and
    destination port) and hold the port the restarted supervisor needs. Each pytest-xdist
    worker draws from its own share of the range, so parallel tests rarely race for a port."""
    lo, hi = 10000, min(_ephemeral_start(), 32768) - n
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")), 1)
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    share = (hi - lo) // count
    start = lo + (index % count) * share
    rng = random.Random()
    for _ in range(500):
        base = start + rng.randrange(0, max(share - n, 1))
        ok = True
        for port in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free block of ports")


def wait_until(predicate: Callable[[], object], timeout: float = 30.0, interval: float = 0.05,
               message: str = "condition") -> object:
    """Poll `predicate` until it returns something true; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def answers(client: Client, timeout: float = 1.0) -> bool:
    """Whether the supervisor `client` speaks to answers a ping within `timeout` seconds."""
    try:
        client.ping(timeout=timeout)
        return True
    except CueFarmError:
        return False


def user_with_uid_over(min_uid: int) -> Any:
    """An account a frame may run as under `min_uid`: `nobody` where its uid is high enough,
    else any such account (None: there is none)."""
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
        if nobody.pw_uid >= min_uid:
            return nobody
    except KeyError:
        pass
    return next((u for u in pwd.getpwall() if u.pw_uid >= min_uid), None)


def hosts_by_name(client: Client) -> dict[str, dict]:
    """The supervisor's hosts, by name."""
    return {h["name"]: h for h in client.hosts()}


def host(client: Client, name: str) -> dict:
    """The supervisor's host called `name`."""
    return hosts_by_name(client)[name]


def used_total(client: Client, name: str) -> str:
    """A host's slots as "used/total"."""
    h = host(client, name)
    return f"{h['slots_used']}/{h['slots_total']}"


def drained_with_exit(farm: Farm, name: str) -> tuple[Client, int]:
    """Start rqd `name` with one slot, submit three 1 s frames, drain it with exit while it runs
    the first, and wait for it to exit cleanly; return a client and the job's id."""
    proc = farm.start_rqd(name, 1)
    farm.wait_hosts_up([name])
    c = farm.client()
    [jid] = c.submit([{"name": "drain", "layers": [
        {"name": "r", "command": "sleep 1", "range": "1-3"}]}])
    wait_until(lambda: c.job(jid)["running"] == 1, 30)
    assert c.drain(name, then="exit") == 1
    assert proc.wait(60) == 0
    return c, jid


def marked_processes(marker: str) -> list[psutil.Process]:
    """Live processes whose environment has MARKER=`marker` (a test's frames, so marked)."""
    return [proc for proc in psutil.process_iter(["environ"])
            if (proc.info.get("environ") or {}).get("MARKER") == marker]


def run_cli(address: str, *args: str, timeout: str = "15", **kwargs: Any) -> Result:
    """`cuefarm --supervisor ADDRESS --timeout TIMEOUT ARGS...` run in-process (kwargs go to
    CliRunner.invoke); fails the test if it printed a traceback."""
    result = CliRunner().invoke(cli, ["--supervisor", address, "--timeout", timeout, *args],
                                **kwargs)
    assert "Traceback" not in result.output, result.output
    return result


class FleetThread:
    """Runs a Fleet of simulated workers in its own thread (its sockets live and die there);
    close() returns its ledger."""

    fleet_class: type[Fleet] = Fleet

    def __init__(self, address: str, workers: list[dict], runtime: float, **kw: Any):
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.fleet: Fleet | None = None
        self.error: BaseException | None = None

        def run():
            try:
                self.fleet = self.fleet_class(address, workers, runtime=runtime, record=True,
                                              heartbeat=0.5, **kw)
                self.ready.set()
                self.fleet.run(until=self.stop.is_set)
            except BaseException as exc:  # surfaced in close()
                self.error = exc
                self.ready.set()
            finally:
                if self.fleet is not None:
                    self.fleet.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def close(self) -> list[tuple]:
        """Stop the workers (once) and return their ledger; raise what failed in the thread."""
        if not self.stop.is_set():
            self.stop.set()
            self.thread.join(10)
        if self.error:
            raise self.error
        return list(self.fleet.ledger)


class PostgresDatabase:
    """A fresh PostgreSQL database for one test, dropped afterwards."""

    def __init__(self, template: str | None = None) -> None:
        import psycopg2
        self.name = f"cuefarm_t_{uuid.uuid4().hex[:10]}"
        self._admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
        self._admin.autocommit = True
        with self._admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{self.name}"'
                        + (f' TEMPLATE "{template}"' if template else ""))
        base = PG_ADMIN.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def drop(self) -> None:
        with self._admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.close()

    def __enter__(self) -> PostgresDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.drop()


def end_sessions(url: str) -> int:
    """Terminate every PostgreSQL session on the database in `url` (a restart, as its clients
    see it), waiting until each server process is gone, so its socket shows the session
    ended; returns how many there were."""
    import psycopg2
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity"
                        " WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            return cur.fetchone()[0]
    finally:
        admin.close()


def postgres_available() -> str | None:
    """None when reachable, else the reason."""
    try:
        import psycopg2
        psycopg2.connect(PG_ADMIN, connect_timeout=3).close()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means unusable here
        return f"PostgreSQL at {PG_ADMIN} unreachable: {exc}"


class Farm:
    """A supervisor and workers as real processes on free ports."""

    def __init__(self, db_url: str, workdir: Path, host_expiry: float = 3.0,
                 release_after: float = 3.0, heartbeat: float = 0.5):
        self.db_url = db_url
        self.workdir = Path(workdir)
        self.port = free_port_block()
        self.address = f"127.0.0.1:{self.port}"
        self.host_expiry, self.release_after, self.heartbeat = host_expiry, release_after, heartbeat
        self.supervisor: subprocess.Popen | forkstart.Forked | None = None
        self.launcher = ["-m", "supervisor"]     # how to start the supervisor with PYTHON
        self.workers: dict[str, subprocess.Popen] = {}
        self._clients: list[Client] = []
        self.env = {**os.environ, "CUEFARM_DATA_DIR": str(self.workdir / "data"),
                    "CUEFARM_CONFIG": str(self.workdir / "none.toml"), "PYTHONUNBUFFERED": "1"}
        # With keys (use_keys): the admin's key file and the supervisor's public key, which
        # this farm's clients and commands use.
        self.key_file: Path | None = None
        self.supervisor_key: str | None = None

    def use_keys(self, admin: str | None = None) -> None:
        """Give the supervisor keys (before it starts) and this farm's clients an admin's
        key (by default this OS user's, so the admin's frames run here), recorded as the
        owner's; its workers find the supervisor's key in the data dir and make their own."""
        admin = admin or current_user()
        admin_key = keyfiles.new("user", admin, role="admin")
        self.key_file = keyfiles.write(self.workdir / f"{admin}.key", admin_key)
        sv = keyfiles.make_supervisor_keys(self.workdir / "data" / "keys", owner=admin_key)
        self.supervisor_key = sv.public

    def issue_key(self, name: str, role: str = "artist", kind: str = "user") -> Path:
        """A key file for user (or worker) `name`, issued through the admin's client."""
        key = keyfiles.new(kind, name, role=role)
        row = self.client().add_key(kind, name, key.public, role)
        folder = self.workdir / ("rqd-keys" if kind == "worker" else "")
        return keyfiles.write(folder / f"{name}.key" if kind == "worker"
                              else folder / f"{name}.{kind}.key", keyfiles.Key(
            kind, name, key.public, key.secret, row["supervisor"], row["role"]))

    # -- processes ------------------------------------------------------------------------------

    def start_supervisor(self, *extra: str) -> subprocess.Popen:
        first = self.supervisor is None and not self.workers
        if first:
            seed_database(self.db_url)
        for _ in range(3):
            args = ["--port", str(self.port), "--db", self.db_url, "--host-expiry",
                    str(self.host_expiry), "--release-after", str(self.release_after),
                    "--heartbeat", str(self.heartbeat), *extra]
            if FORK and self.launcher[0] == "-m":
                # `python -m MODULE ...`, forked from a process that has imported the supervisor
                self.supervisor = forkstart.start([*self.launcher[1:], *args], self.env,
                                                  self.workdir / "supervisor.log")
            else:
                log = open(self.workdir / "supervisor.log", "ab")
                self.supervisor = subprocess.Popen([PYTHON, *self.launcher, *args], stdout=log,
                                                   stderr=subprocess.STDOUT, env=self.env)
                log.close()
            try:
                wait_until(self._answers, 30, message="the supervisor to answer")
                return self.supervisor
            except AssertionError:
                # Another test (in a parallel run) took one of the ports between our look and
                # the bind: on a first start nothing depends on the port yet, so take others.
                if not (first and self.supervisor.returncode == 4):
                    raise
                self.port = free_port_block()
                self.address = f"127.0.0.1:{self.port}"
        raise AssertionError("no free ports for the supervisor:\n" + self.supervisor_log())

    def _answers(self) -> bool:
        if self.supervisor is not None and self.supervisor.poll() is not None:
            raise AssertionError("supervisor exited:\n" + self.supervisor_log())
        try:
            with Client(self.address, timeout=0.5, key=self.key_file,
                        supervisor_key=self.supervisor_key) as c:
                c.ping()
            return True
        except CueFarmError:
            return False

    def start_rqd(self, name: str, slots: int = 2, *extra: str,
                  key: bool = True) -> subprocess.Popen:
        """A worker; with keys, one with a worker key issued for it (`key` False: it makes
        its own, which waits as pending until admitted)."""
        state = self.workdir / "rqd" / name
        if self.key_file is not None and key and "--key" not in extra:
            path = self.workdir / "rqd-keys" / f"{name}.key"
            if not path.exists():
                path = self.issue_key(name, kind="worker")
            extra = (*extra, "--key", str(path))
        log = open(self.workdir / f"rqd-{name}.log", "ab")
        proc = subprocess.Popen(
            [PYTHON, "-m", "rqd", "--supervisor", self.address, "--name", name,
             "--slots", str(slots), "--state-dir", str(state), "--min-uid", "0", *extra],
            stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        self.workers[name] = proc
        return proc

    def wait_hosts_up(self, names: list[str], timeout: float = 30.0) -> None:
        client = self.client()

        def up():
            hosts = {h["name"]: h for h in client.hosts()}
            return all(n in hosts and hosts[n]["state"] == "UP" for n in names)
        wait_until(up, timeout, message=f"hosts {names} UP")

    def kill_supervisor(self, sig: int = signal.SIGKILL) -> None:
        if self.supervisor is not None and self.supervisor.poll() is None:
            self.supervisor.send_signal(sig)
            self.supervisor.wait(30)

    def kill_rqd(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.workers[name]
        if proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(30)

    def client(self, timeout: float = 15.0, user: str | None = None,
               key: Path | None = None) -> Client:
        """A client of this supervisor (as `user` if given; with keys, with `key` or the
        admin's), closed when the farm stops."""
        c = Client(self.address, timeout=timeout, user=user, key=key or self.key_file,
                   supervisor_key=self.supervisor_key)
        self._clients.append(c)
        return c

    def cli(self, *args: str, **kwargs: Any) -> Result:
        """The `cuefarm` command against this supervisor (see run_cli); with keys, as the
        admin unless `env` says otherwise."""
        if self.key_file is not None:
            kwargs["env"] = {"CUEFARM_KEY": str(self.key_file),
                             "CUEFARM_SUPERVISOR_KEY": self.supervisor_key,
                             **kwargs.get("env", {})}
        return run_cli(self.address, *args, **kwargs)

    def supervisor_log(self) -> str:
        path = self.workdir / "supervisor.log"
        return path.read_text(errors="replace")[-8000:] if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM every process (workers first) and fail the test if one has not exited
        within STOP_WITHIN seconds: a farm that hangs on SIGTERM is a bug, not a slow test."""
        for c in self._clients:
            c.close()
        slow = stop_processes(list(self.workers.items()))
        if self.supervisor is not None:
            slow += stop_processes([("supervisor", self.supervisor)])
        if slow:
            raise AssertionError(f"did not exit within {STOP_WITHIN} s of SIGTERM: "
                                 f"{', '.join(slow)}")


STOP_WITHIN = 5.0


def stop_processes(procs: list[tuple[str, subprocess.Popen]]) -> list[str]:
    """SIGTERM these processes together; kill those still running STOP_WITHIN seconds later
    and return their names."""
    for _, proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_WITHIN
    slow = []
    for name, proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            slow.append(name)
            proc.kill()
            proc.wait(5)
    return slow


_MIGRATED: dict[str, Any] = {}    # this process's migrated databases, by kind (seed_database)


def _migrated(url: str) -> None:
    """Migrate the database at `url` and take its farm id out (the supervisor makes one of
    its own, as on a new database)."""
    from sqlalchemy import text
    from supervisor.store import farm as farm_store
    from supervisor.store.engine import make_engine, migrate
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM setting WHERE key = :k"), {"k": farm_store.FARM_KEY})
    finally:
        engine.dispose()     # SQLite: the last connection closed copies the log in, removes it


def seed_database(db_url: str) -> None:
    """A test farm's new database starts as a copy of one migrated once in this process, so
    that each of the suite's hundreds of supervisor starts does not run every migration again
    (the migrations have tests of their own).  A database with something in it already, or
    not a test database, is left as it is."""
    if db_url.startswith("sqlite:///"):
        _seed_sqlite(Path(db_url[len("sqlite:///"):]))
    elif db_url.startswith("postgresql") and db_url.rpartition("/")[2].startswith("cuefarm_t_"):
        _seed_postgres(db_url)


def _seed_sqlite(path: Path) -> None:
    """A copy of the migrated file, where there is no file yet."""
    if path.exists() or str(path) == ":memory:":
        return
    if "sqlite" not in _MIGRATED:
        import tempfile
        template = Path(tempfile.mkdtemp(prefix="cuefarm-migrated-")) / "cuefarm.db"
        _migrated(f"sqlite:///{template}")
        wal = template.with_name(template.name + "-wal")
        assert not wal.exists() or wal.stat().st_size == 0, "the migrated copy kept a log"
        _MIGRATED["sqlite"] = template
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_MIGRATED["sqlite"], path)


def _seed_postgres(db_url: str) -> None:
    """A test database still empty and unused is made again from a migrated template
    database (one per process, dropped when the process ends)."""
    import psycopg2
    if "postgres" not in _MIGRATED:
        template = PostgresDatabase()
        _migrated(template.url)
        _MIGRATED["postgres"] = template
        import atexit
        atexit.register(template.drop)
    name = db_url.rpartition("/")[2]
    probe = psycopg2.connect(db_url, connect_timeout=3)
    try:
        with probe.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            if cur.fetchone()[0]:
                return
    finally:
        probe.close()
    admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            try:
                cur.execute(f'DROP DATABASE "{name}"')     # refused while anyone is connected
            except psycopg2.Error:
                return
            # The template's last session may still be ending: try again for a moment, and
            # in the end make it empty as it was (the supervisor then migrates it).
            for _ in range(50):
                try:
                    cur.execute(f'CREATE DATABASE "{name}" '
                                f'TEMPLATE "{_MIGRATED["postgres"].name}"')
                    return
                except psycopg2.errors.ObjectInUse:
                    time.sleep(0.05)
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()


@contextmanager
def running_farm(db_url: str, workdir: Path, env: dict[str, str] | None = None,
                 **kw: Any) -> Iterator[Farm]:
    """A Farm(db_url, workdir, **kw) with its supervisor started, `env` added to its
    environment first; stopped at the end."""
    f = Farm(db_url, workdir, **kw)
    f.env.update(env or {})
    f.start_supervisor()
    try:
        yield f
    finally:
        f.stop()
        if os.environ.get("CUEFARM_TEST_SHOW_LOGS"):
            print(f.supervisor_log())
