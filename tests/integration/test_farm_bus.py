"""Several supervisors on one PostgreSQL database act as one farm: work, commands and change
events submitted through one reach the workers and subscribers of the others."""

from __future__ import annotations

import sys
import time

import pytest

from cuefarm.client import Events
from tests.farm import Farm, FleetThread, PostgresDatabase, wait_until
from tests.integration import ledger


@pytest.fixture
def two(require_postgres, tmp_path):
    """Supervisors A and B on one database; worker w1 connected to B only."""
    db = PostgresDatabase()
    farms = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        farms.append(Farm(db.url, tmp_path / name))
    a, b = farms
    try:
        a.start_supervisor()
        b.start_supervisor()
        b.start_rqd("w1", 2)
        b.wait_hosts_up(["w1"])
        yield a, b
    finally:
        b.stop()
        a.stop()
        db.drop()


def job(cmd: list[str], frames: int, name: str = "shared") -> dict:
    return {"name": name, "project": "test", "layers": [
        {"name": "r", "command": cmd, "range": f"1-{frames}", "max_retries": 0}]}


def test_work_submitted_through_one_runs_on_the_workers_of_another(two, tmp_path):
    a, b = two
    cmd, book = ledger.command(tmp_path, 0.2)
    c = a.client()
    [job_id] = c.submit([job(cmd, 4)])
    done = c.wait(job_id, timeout=60)
    assert done["succeeded"] == 4, done
    assert {f["host"] for f in c.frames(job_id)} == {"w1"}
    ledger.assert_no_overlap(book)


def test_kill_through_one_stops_the_frames_on_the_workers_of_another(two, tmp_path):
    a, b = two
    cmd, book = ledger.command(tmp_path, 600.0)
    c = a.client()
    [job_id] = c.submit([job(cmd, 2)])
    wait_until(lambda: len(ledger.attempts(book)) == 2, 60, message="both frames running")
    c.kill(job_id)
    # The processes on B's worker end (SIGTERM: the ledger says "killed").
    wait_until(lambda: all(r["how"] == "killed" for r in ledger.attempts(book).values()), 30,
               message="the frames on b's worker killed")
    wait_until(lambda: c.job(job_id)["running"] == 0, 30, message="the kills recorded")
    assert c.job(job_id)["succeeded"] == 0


def test_a_lock_through_one_stops_dispatch_by_another(two, tmp_path):
    a, b = two
    gate = tmp_path / "gate"
    cmd, book = ledger.command(tmp_path, 0.0, gate)
    c = a.client()
    [job_id] = c.submit([job(cmd, 6)])
    wait_until(lambda: len(ledger.attempts(book)) == 2, 60, message="two frames running")
    assert c.lock("w1") == 1
    locked_at = time.time()
    gate.touch()          # the two running frames end; w1 is locked: nothing new starts
    wait_until(lambda: c.job(job_id)["running"] == 0, 30, message="the running frames ended")
    time.sleep(2.0)       # B would have dispatched at once had it not heard of the lock
    starts = [r["start"] for r in ledger.attempts(book).values()]
    assert len(starts) == 2 and max(starts) < locked_at, starts
    assert b.client().hosts()[0]["lock"] == "LOCKED"
    c.unlock("w1")       # and an unlock through A lets B dispatch again
    assert c.wait(job_id, timeout=60)["succeeded"] == 6


def test_events_of_frames_on_another_supervisors_worker_reach_subscribers_of_one(two, tmp_path):
    a, b = two
    events = Events(a.address)
    try:
        events.receive(0.5)          # the subscription is in place before the work starts
        cmd, _ = ledger.command(tmp_path, 0.3)
        c = b.client()               # submitted through B, run on B's worker
        [job_id] = c.submit([job(cmd, 2)])
        seen: dict[int, set[str]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = events.receive(1.0)
            if batch is None:
                continue
            for f in batch.frames:
                if f["job_id"] == job_id:
                    seen.setdefault(f["id"], set()).add(f["state"])
            if len(seen) == 2 and all("SUCCEEDED" in s for s in seen.values()):
                break
        assert len(seen) == 2 and all({"RUNNING", "SUCCEEDED"} <= s for s in seen.values()), \
            seen
        assert batch.supervisor_id != b.client().ping()["supervisor_id"]
    finally:
        events.close()


def test_a_log_asked_through_one_comes_from_the_worker_of_another(two, tmp_path):
    a, b = two
    script = tmp_path / "chatty.py"
    # More than one notice can carry: the answer comes back in pieces.
    script.write_text("import sys\nfor i in range(3000):\n    print(f'line {i:05d} ' + 'x' * 20)\n")
    c = a.client()
    [job_id] = c.submit([job([sys.executable, str(script)], 1)])
    assert c.wait(job_id, timeout=60)["succeeded"] == 1
    chunk = c.log(job_id, "r", 1)
    assert chunk["host"] == "w1" and chunk["attempt_id"] == f"{c.frames(job_id)[0]['id']}.1"
    assert "line 00000 " in chunk["text"] and len(chunk["data"]) > 20_000
    # Paging through the relay reads the whole log, as from a worker of one's own.
    data, offset = b"", 0
    while True:
        piece = c.log(job_id, "r", 1, offset=offset)
        data += piece["data"]
        offset = piece["offset"] + len(piece["data"])
        if not piece["data"] or offset >= piece["size"]:
            break
    assert data == b.client().log(job_id, "r", 1, limit=1024 * 1024)["data"]
    assert b"line 02999 " in data


def test_a_supervisor_killed_mid_run_costs_nothing(require_postgres, tmp_path):
    """Workers of a supervisor killed -9 move to another; their frames are adopted there and
    the job finishes with every frame run once, no two runs of a frame at once, no retry."""
    db = PostgresDatabase()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Farm(db.url, tmp_path / "a"), Farm(db.url, tmp_path / "b")
    try:
        a.start_supervisor()
        b.start_supervisor()
        a.start_rqd("w1", 2, "--supervisor", b.address, "--supervisor-timeout", "2")
        b.start_rqd("w2", 2, "--supervisor", a.address, "--supervisor-timeout", "2")
        a.wait_hosts_up(["w1", "w2"])
        cmd, book = ledger.command(tmp_path, 1.0)
        c = b.client()
        [job_id] = c.submit([job(cmd, 16)])
        wait_until(lambda: c.job(job_id)["succeeded"] >= 2 and c.job(job_id)["running"] >= 3,
                   60, message="frames running on both workers")
        a.kill_supervisor()                       # kill -9 in the middle of the run
        done = c.wait(job_id, timeout=120)
        assert done["succeeded"] == 16, done
        frames = c.frames(job_id)
        assert all(f["retries"] == 0 for f in frames), frames
        ledger.assert_no_overlap(book)
        hosts = {h["name"]: h for h in c.hosts()}
        assert hosts["w1"]["state"] == "UP"       # w1 moved to b
        assert "this supervisor now does host expiry for the farm" in b.supervisor_log()
    finally:
        b.stop()
        a.stop()
        db.drop()


def test_three_supervisors_two_killed_at_different_points(require_postgres, tmp_path):
    """Three supervisors, each worker listing all of them in its own order; two supervisors
    killed -9 at different points of one run: every frame runs once, never twice at once,
    without a retry, and every worker ends up on the survivor."""
    db = PostgresDatabase()
    farms = []
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
        farms.append(Farm(db.url, tmp_path / name))
    a, b, c = farms
    try:
        for f in farms:
            f.start_supervisor()
        a.start_rqd("w1", 2, "--supervisor", b.address, "--supervisor", c.address,
                    "--supervisor-timeout", "2")
        b.start_rqd("w2", 2, "--supervisor", c.address, "--supervisor", a.address,
                    "--supervisor-timeout", "2")
        c.start_rqd("w3", 2, "--supervisor", a.address, "--supervisor", b.address,
                    "--supervisor-timeout", "2")
        c.wait_hosts_up(["w1", "w2", "w3"])
        cmd, book = ledger.command(tmp_path, 1.0)
        client = c.client()
        [job_id] = client.submit([job(cmd, 24)])
        wait_until(lambda: client.job(job_id)["succeeded"] >= 3
                   and client.job(job_id)["running"] >= 4, 60, message="frames running")
        a.kill_supervisor()                  # early in the run
        wait_until(lambda: client.job(job_id)["succeeded"] >= 12, 120,
                   message="half the frames done after the first kill")
        b.kill_supervisor()                  # in the middle, with w1 just moved to b
        done = client.wait(job_id, timeout=180)
        assert done["succeeded"] == 24, done
        frames = client.frames(job_id)
        assert all(f["retries"] == 0 for f in frames), frames
        runs = ledger.assert_no_overlap(book)
        assert len(runs) == 24
        wait_until(lambda: all(h["state"] == "UP" for h in client.hosts()), 30,
                   message="every worker up on the survivor")
        wait_until(lambda: [s["this"] for s in client.supervisors()] == [True], 60,
                   message="the killed supervisors off the list")
    finally:
        for f in farms:
            f.stop()
        db.drop()


def test_settings_changed_through_one_hold_on_another(two, tmp_path):
    a, b = two
    ca, cb = a.client(), b.client()
    # A path map added through A translates paths for B's worker.
    ca.add_path_map("linux", "/mnt/shows", "/prod/shows")
    wait_until(lambda: cb.check_path("w1", "/mnt/shows/x.exr")["result"] == "/prod/shows/x.exr",
               10, message="b to use the path map added through a")
    # Licences set to none through A: B starts nothing; unlimited again: the job runs.
    ca.set_licences(count=0)
    cmd, book = ledger.command(tmp_path, 0.1)
    [job_id] = cb.submit([job(cmd, 2)])
    time.sleep(2.0)       # B would have started both frames at once with licences to give
    assert ledger.attempts(book) == {} and cb.job(job_id)["running"] == 0
    ca.set_licences(unlimited=True)
    assert cb.wait(job_id, timeout=60)["succeeded"] == 2
    # Admission by name only, set through A: a new worker on B waits to be admitted.
    ca.set_admission(mode="named")
    time.sleep(0.5)
    b.start_rqd("w9", 1)
    wait_until(lambda: any(r["name"] == "w9" and r["state"] == "pending"
                           for r in cb.admission()), 30, message="w9 pending on b")
    assert "w9" not in {h["name"] for h in cb.hosts() if h["state"] == "UP"}


def test_supervisors_lists_the_live_ones_through_any(two):
    a, b = two

    def listed():
        rows = {r["address"].rsplit(":", 1)[1]: r for r in a.client().supervisors()}
        return rows if len(rows) == 2 and rows[str(b.port)]["hosts"] == 1 else None
    rows = wait_until(listed, 20, message="both supervisors listed, w1 on b")
    assert rows[str(a.port)]["this"] and not rows[str(b.port)]["this"]
    assert rows[str(a.port)]["hosts"] == 0 and rows[str(b.port)]["slots_total"] == 2
    out = a.cli("supervisors")
    assert out.exit_code == 0, out.output
    assert "2 supervisors, 1 workers, 0/2 slots in use" in out.output
    b.stop()                       # a supervisor that stops drops off the list at once
    assert [r["address"] for r in a.client().supervisors()] == [rows[str(a.port)]["address"]]


def test_heartbeat_figures_of_another_supervisors_hosts_reach_subscribers_of_one(
        require_postgres, tmp_path):
    """A host's figures (load, CPU, memory; written as its heartbeats come) change its row
    through the supervisor it is connected to: subscribers of every supervisor see them, each
    host's rows in order, in batches without a gap."""
    db = PostgresDatabase()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = Farm(db.url, tmp_path / "a"), Farm(db.url, tmp_path / "b")
    b.env["CUEFARM_SUPERVISOR_FIGURES_INTERVAL"] = "0.5"
    fleet = None
    events = Events(a.address)
    try:
        a.start_supervisor()
        b.start_supervisor()
        names = [f"w{i}" for i in range(3)]
        fleet = FleetThread(b.address, [{"name": n, "slots": 1} for n in names], runtime=0.1)
        b.wait_hosts_up(names)
        gaps = []
        seen: dict[str, list[float]] = {n: [] for n in names}
        seqs = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and min(len(v) for v in seen.values()) < 4:
            batch = events.receive(1.0, on_gap=lambda: gaps.append(events.last_seq))
            if batch is None:
                continue
            seqs.append(batch.seq)
            for h in batch.hosts:
                if h["name"] in seen and h["last_seen"] is not None:
                    seen[h["name"]].append(h["last_seen"])
        # Several heartbeat writes of each host of B, as A published them: later each time.
        assert all(len(v) >= 4 for v in seen.values()), seen
        assert all(v == sorted(v) and len(set(v)) >= 3 for v in seen.values()), seen
        # One resync (the first batch), then every batch in sequence.
        assert len(gaps) == 1 and seqs == list(range(seqs[0], seqs[0] + len(seqs))), (gaps, seqs)
        row = {h["name"]: h for h in a.client().hosts()}["w0"]
        assert row["memory_free_mb"] > 0 and row["state"] == "UP"
    finally:
        events.close()
        if fleet is not None:
            fleet.close()
        b.stop()
        a.stop()
        db.drop()
