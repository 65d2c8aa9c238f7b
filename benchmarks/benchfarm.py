"""What the benchmarks share: a fresh database of either kind and a supervisor process."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cuefarm import Client, CueFarmError  # noqa: E402
from tests.farm import PG_ADMIN, free_port_block  # noqa: E402


@contextmanager
def database(kind: str, tmp: Path):
    """A URL for an empty database: SQLite in `tmp`, or a new PostgreSQL database (dropped)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}"
        return
    import psycopg2
    name = f"cuefarm_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def start_supervisor(url: str, env: dict[str, str], *flags: str, wait: float = 30.0):
    """A supervisor process on database `url`, answering: (process, client, port).  The caller
    stops the process."""
    port = free_port_block()
    proc = subprocess.Popen([sys.executable, "-m", "supervisor", "--port", str(port),
                             "--db", url, "--log-level", "WARNING", *flags], env=env)
    client = Client(f"127.0.0.1:{port}", timeout=60)
    deadline = time.monotonic() + wait
    while True:
        try:
            client.ping(timeout=0.5)
            return proc, client, port
        except CueFarmError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                raise


@contextmanager
def supervisor(kind: str, *flags: str):
    """A supervisor process on a fresh database: yields (process, client, port)."""
    tmp = Path(tempfile.mkdtemp(prefix="cuefarm-bench-"))
    env = {**os.environ, "CUEFARM_CONFIG": str(tmp / "none.toml")}
    with database(kind, tmp) as url:
        proc, client, port = start_supervisor(url, env, *flags)
        try:
            yield proc, client, port
        finally:
            proc.terminate()
            proc.wait()
