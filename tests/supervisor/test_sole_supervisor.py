"""SQLite takes one supervisor per database: a second one refuses to start, naming the first,
and leaves its database alone."""

from __future__ import annotations

import subprocess

import pytest

from cuefarm.config import SupervisorConfig
from supervisor.server import Supervisor
from supervisor.store.engine import DatabaseInUse, make_engine
from tests.farm import PYTHON, Farm


def test_a_second_supervisor_process_on_one_sqlite_file_refuses_to_start(tmp_path):
    db = f"sqlite:///{tmp_path / 'farm.db'}"
    (tmp_path / "a").mkdir()
    first = Farm(db, tmp_path / "a")
    try:
        first.start_supervisor()
        [job] = first.client().submit([{"name": "kept", "project": "p", "layers": [
            {"name": "r", "command": ["true"], "range": "1-3"}]}])
        second = subprocess.run(
            [PYTHON, "-m", "supervisor", "--port", str(first.port + 10), "--db", db],
            capture_output=True, text=True, timeout=60, env=first.env)
        assert second.returncode == 3, second.stderr
        assert "another supervisor runs on this SQLite database" in second.stderr
        assert f":{first.port}, run " in second.stderr          # it names the first one
        assert "PostgreSQL" in second.stderr
        assert first.client().job(job)["frames_total"] == 3     # the first serves on
    finally:
        first.stop()


def test_the_lock_is_let_go_when_the_supervisor_closes(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'farm.db'}")
    cfg = SupervisorConfig(port=1)
    one = Supervisor(cfg, engine, threads=False)
    one.start()
    with pytest.raises(DatabaseInUse, match="one supervisor per database"):
        Supervisor(cfg, engine, threads=False).start()
    one.close()
    again = Supervisor(cfg, engine, threads=False)
    again.start()
    again.close()
    engine.dispose()
