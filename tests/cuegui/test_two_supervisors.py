"""The window given two supervisors sharing one PostgreSQL database: when the one it reads
dies, it moves to the other and shows, by that one's events, the changes made through it."""

from __future__ import annotations

from functools import partial

from cuegui.connection import Connection
from cuegui.window import MainWindow
from tests.cuegui import helpers
from tests.farm import Farm, PostgresDatabase

wait = partial(helpers.wait, timeout=60_000)


def spec(name: str) -> dict:
    return {"name": name, "project": "gui", "layers": [
        {"name": "r", "command": ["sleep", "30"], "range": "1-2", "max_retries": 0}]}


def test_the_window_moves_to_the_next_supervisor_when_its_own_dies(qtbot, require_postgres,
                                                                    tmp_path):
    db = PostgresDatabase()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Farm(db.url, tmp_path / "a"), Farm(db.url, tmp_path / "b")
    win = None
    try:
        a.start_supervisor()
        b.start_supervisor()
        b.start_rqd("w1", 1, "--supervisor", a.address)
        b.wait_hosts_up(["w1"])
        conn = Connection(f"{a.address},{b.address}", idle_ping=0.5)
        win = MainWindow(conn, mode="admin")
        snapshots = []
        conn.snapshot.connect(snapshots.append)
        qtbot.addWidget(win)
        win.show()
        conn.start()
        wait(qtbot, lambda: win.connection_state == "connected" and len(snapshots) == 2)
        assert snapshots[-1].supervisor["supervisor_id"] == a.client().ping()["supervisor_id"]
        cb = b.client()
        [first] = cb.submit([spec("before")])
        wait(qtbot, lambda: (win.jobs_model.get(first) or {}).get("status") == "running")

        a.kill_supervisor()          # kill -9: no goodbye; the window's pings go unanswered
        b_id = cb.ping()["supervisor_id"]
        wait(qtbot, lambda: win.connection_state == "connected" and snapshots
             and snapshots[-1].supervisor["supervisor_id"] == b_id)
        # B's first batch (its worker's heartbeats) is the one resync after subscribing.
        wait(qtbot, lambda: len(snapshots) >= 4)
        settled = len(snapshots)
        # Changes made through B now reach the window as B's events.
        [second] = cb.submit([spec("after")])
        cb.pause(first)
        wait(qtbot, lambda: win.jobs_model.get(second) is not None
             and win.jobs_model.get(first)["state"] == "PAUSED")
        assert len(snapshots) == settled          # by events, not by reading everything again
    finally:
        if win is not None:
            win.connection.stop()
            win.close()
        b.stop()
        a.stop()
        db.drop()
