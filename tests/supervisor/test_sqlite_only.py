"""A supervisor on SQLite loads no PostgreSQL driver (an installation without the `postgres`
extra has none), and asking for PostgreSQL without it says what to install."""

from __future__ import annotations

import json
import subprocess
import sys


def test_a_supervisor_on_sqlite_loads_no_postgresql_driver(tmp_path):
    code = f"""
import json, sys
from cuefarm.config import SupervisorConfig
from supervisor.server import Supervisor
from supervisor.store.engine import make_engine
engine = make_engine("sqlite:///{tmp_path / 'x.db'}")
sv = Supervisor(SupervisorConfig(metrics_port=0), engine)
sv.start()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("psycopg"))))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert json.loads(out.splitlines()[-1]) == []


def test_postgresql_without_its_driver_says_what_to_install(tmp_path):
    # An interpreter whose psycopg2 cannot be imported, as on a SQLite-only installation.
    (tmp_path / "psycopg2.py").write_text("raise ImportError('no psycopg2 here')\n")
    code = """
from supervisor.store.engine import make_engine
try:
    make_engine("postgresql://cuefarm@dbhost/cuefarm")
except ValueError as exc:
    print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True, env={"PYTHONPATH": str(tmp_path),
                                                       "PATH": "/usr/bin:/bin"}).stdout
    assert "pip install 'cuefarm[postgres]'" in out
