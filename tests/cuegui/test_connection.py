"""The connection worker against a simulated supervisor: resync on start, on a sequence gap and
on a new supervisor; events applied without requests; log following; losing and regaining
the supervisor."""

from __future__ import annotations

import pytest

from cuegui.connection import Connection
from cuegui.logfollow import next_offset
from tests import rows
from tests.cuegui.helpers import WAIT, wait
from tests.cuegui.simsupervisor import SimSupervisor


class Recorder:
    """Everything the connection emits, in order."""

    def __init__(self, conn: Connection):
        self.snapshots, self.changes, self.loaded, self.logs = [], [], [], []
        self.states, self.done, self.failed = [], [], []
        conn.snapshot.connect(self.snapshots.append)
        conn.changes.connect(self.changes.append)
        conn.job_loaded.connect(self.loaded.append)
        conn.log_piece.connect(self.logs.append)
        conn.state_changed.connect(lambda s, d: self.states.append(s))
        conn.action_done.connect(lambda label, r: self.done.append((label, r)))
        conn.action_failed.connect(lambda label, m: self.failed.append((label, m)))

    def changed_jobs(self) -> dict:
        out: dict = {}
        for c in self.changes:
            out.update(c.jobs)
        return out


@pytest.fixture
def sim():
    s = SimSupervisor()
    s.jobs = {1: rows.job(1), 2: rows.job(2)}
    s.hosts = {1: rows.host(1)}
    s.frames = {i: rows.frame(i, job_id=1) for i in range(1, 4)}
    s.frames[10] = rows.frame(10, job_id=2)
    s.start()
    yield s
    s.stop()


def connect(qtbot, sim):
    c = Connection(sim.address, idle_ping=0.3, request_timeout=2.0, ping_timeout=0.5)
    rec = Recorder(c)
    c.start()
    wait(qtbot, lambda: rec.snapshots and sim.subscribers > 0, WAIT)
    return c, rec


@pytest.fixture
def conn(qtbot, sim):
    """A connection past its first batch (which always resyncs; see the test for that)."""
    c, rec = connect(qtbot, sim)
    sim.publish(hosts=[sim.hosts[1]])
    wait(qtbot, lambda: len(rec.snapshots) == 2)
    rec.snapshots.clear()
    yield c, rec
    c.stop()


def test_start_resyncs_and_reports_connected(qtbot, sim):
    c, rec = connect(qtbot, sim)
    try:
        snap = rec.snapshots[0]
        assert {j["id"] for j in snap.jobs} == {1, 2}
        assert [h["name"] for h in snap.hosts] == ["render01"]
        assert snap.supervisor["supervisor_id"]
        assert rec.states[-1] == "connected"
    finally:
        c.stop()


def test_the_worker_leaves_the_ui_thread_the_gil_often(qtbot, sim):
    """A busy worker must not hold the GIL the UI thread needs for 5 ms at a time."""
    import sys
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    c, _rec = connect(qtbot, sim)
    try:
        assert sys.getswitchinterval() <= 0.001
    finally:
        c.stop()
        sys.setswitchinterval(before)


def test_the_first_batch_after_subscribing_resyncs(qtbot, sim):
    """A supervisor publishes only once it knows of a subscriber: a change made between the
    snapshot and that moment is in no batch, so the first batch brings a resync."""
    c, rec = connect(qtbot, sim)
    try:
        with sim.lock:
            sim.jobs[3] = rows.job(3)          # changed, never published
        sim.publish(hosts=[{**sim.hosts[1], "load": 2.0}])
        wait(qtbot, lambda: len(rec.snapshots) == 2)
        assert 3 in {j["id"] for j in rec.snapshots[-1].jobs}
        sim.publish(hosts=[{**sim.hosts[1], "load": 3.0}])
        wait(qtbot, lambda: rec.changes)
        assert len(rec.snapshots) == 2         # later batches are applied as they come
    finally:
        c.stop()


def test_batches_become_changes_without_requests(qtbot, conn, sim):
    _, rec = conn
    before = sim.requests["list_jobs"]
    sim.publish(jobs=[{**sim.jobs[1], "running": 3, "status": "running"}],
                hosts=[{**sim.hosts[1], "slots_used": 3}])
    wait(qtbot, lambda: rec.changed_jobs().get(1, {}).get("running") == 3, WAIT)
    sim.publish(jobs=[rows.job(3)], deleted_jobs=[2])
    wait(qtbot, lambda: any(2 in c.deleted_jobs for c in rec.changes), WAIT)
    assert 3 in rec.changed_jobs()
    assert any(c.hosts.get(1, {}).get("slots_used") == 3 for c in rec.changes)
    assert sim.requests["list_jobs"] == before
    assert not rec.snapshots


def test_a_sequence_gap_resyncs(qtbot, conn, sim):
    _, rec = conn
    sim.publish(jobs=[rows.job(1, priority=70)])
    wait(qtbot, lambda: rec.changes, WAIT)
    before = sim.requests["list_jobs"]
    with sim.lock:
        sim.jobs[5] = rows.job(5)          # a change whose batch is lost
    sim.publish(skip=1, jobs=[rows.job(1, priority=71)])
    wait(qtbot, lambda: len(rec.snapshots) == 1, WAIT)
    assert {j["id"] for j in rec.snapshots[-1].jobs} == {1, 2, 5}
    assert sim.requests["list_jobs"] == before + 1


def test_a_new_supervisor_resyncs(qtbot, conn, sim):
    _, rec = conn
    sim.new_identity()
    with sim.lock:
        sim.jobs[9] = rows.job(9)
    sim.publish(jobs=[rows.job(9)])
    wait(qtbot, lambda: len(rec.snapshots) == 1, WAIT)
    assert rec.snapshots[-1].supervisor["supervisor_id"] == sim.sid


def test_selected_job_frames_load_and_follow(qtbot, conn, sim):
    c, rec = conn
    c.select_job(1)
    wait(qtbot, lambda: rec.loaded, WAIT)
    assert rec.loaded[0].job_id == 1 and sorted(f["id"] for f in rec.loaded[0].frames) == [1, 2, 3]
    sim.publish(frames=[rows.frame(2, job_id=1, state="RUNNING"),
                        rows.frame(10, job_id=2, state="RUNNING")])
    wait(qtbot, lambda: rec.changes, WAIT)
    frames = {k: v for ch in rec.changes for k, v in ch.frames.items()}
    assert frames[2]["state"] == "RUNNING" and 10 not in frames      # other jobs' frames: no
    c.select_job(None)
    wait(qtbot, lambda: len(rec.loaded) == 2, WAIT)
    assert rec.loaded[-1].job_id is None


def test_selecting_a_missing_job_reports_and_loads_nothing(qtbot, conn):
    c, rec = conn
    c.select_job(404)
    wait(qtbot, lambda: rec.loaded, WAIT)
    assert rec.loaded[0].frames == [] and rec.failed and "404" in rec.failed[0][1]


def test_log_follows_the_frame_by_its_events(qtbot, conn, sim):
    c, rec = conn
    frame = rows.frame(1, job_id=1, state="RUNNING", attempt=1, attempt_id="1.1", host="r1")
    with sim.lock:
        sim.frames[1] = frame
        sim.logs[(1, 1)] = "hello\nwörld\n".encode()
    c.open_log(frame)
    wait(qtbot, lambda: rec.logs, WAIT)
    assert rec.logs[0].reset and rec.logs[0].text == "hello\nwörld\n"
    with sim.lock:
        sim.logs[(1, 1)] += b"more\n"
    sim.publish(frames=[{**frame, "peak_rss": 1000}])
    wait(qtbot, lambda: len(rec.logs) == 2, WAIT)
    assert not rec.logs[1].reset and rec.logs[1].text == "more\n"
    # A character split between two reads still decodes as one.
    with sim.lock:
        sim.logs[(1, 1)] += "caf\u00e9!".encode()[:4]
    sim.publish(frames=[{**frame, "peak_rss": 2000}])
    wait(qtbot, lambda: len(rec.logs) == 3)
    with sim.lock:
        sim.logs[(1, 1)] += "caf\u00e9!\n".encode()[4:]
    sim.publish(frames=[{**frame, "peak_rss": 3000}])
    wait(qtbot, lambda: len(rec.logs) == 4)
    assert rec.logs[2].text + rec.logs[3].text == "caf\u00e9!\n"
    del rec.logs[2:]
    # A retry starts attempt 2: the view starts over with the new attempt's log.
    with sim.lock:
        sim.logs[(1, 2)] = b"second try\n"
    sim.publish(frames=[{**frame, "attempt": 2, "attempt_id": "1.2"}])
    wait(qtbot, lambda: len(rec.logs) == 3, WAIT)
    assert rec.logs[2].reset and rec.logs[2].text == "second try\n" and rec.logs[2].attempt == 2


def test_log_of_a_frame_that_never_ran(qtbot, conn):
    c, rec = conn
    c.open_log(rows.frame(3, job_id=1))
    wait(qtbot, lambda: rec.logs, WAIT)
    assert rec.logs[0].error and not rec.logs[0].text


def test_actions_report_results_and_errors(qtbot, conn, sim):
    c, rec = conn
    c.run_action("Pause", lambda client: client.pause([1, 2]))
    c.run_action("Kill", lambda client: client.kill([77]))
    wait(qtbot, lambda: rec.done and rec.failed, WAIT)
    assert rec.done == [("Pause", 2)]
    assert rec.failed[0][0] == "Kill" and "77" in rec.failed[0][1]
    assert ("pause", [1, 2]) in sim.controls


def test_losing_and_regaining_the_supervisor(qtbot, conn, sim):
    _, rec = conn
    sim.stop()
    wait(qtbot, lambda: "unreachable" in rec.states, 30_000)
    assert rec.states.index("reconnecting") < rec.states.index("unreachable")
    with sim.lock:
        sim.jobs[7] = rows.job(7)
    sim.start()          # the same port and identity, as after a network outage
    wait(qtbot, lambda: rec.states[-1] == "connected" and rec.snapshots, 30_000)
    assert 7 in {j["id"] for j in rec.snapshots[-1].jobs}


def test_a_request_in_flight_fails_as_soon_as_the_supervisor_goes(qtbot, sim):
    c = Connection(sim.address)          # the default timeouts: 15 s for a request
    rec = Recorder(c)
    failed = []
    c.query_failed.connect(lambda key, message: failed.append((key, message)))
    c.start()
    try:
        wait(qtbot, lambda: rec.states[-1:] == ["connected"])
        sim.silent.add("why")
        c.run_query("why", lambda client: client.why(1))
        wait(qtbot, lambda: sim.requests["why"] == 1)
        sim.stop()
        # Well within the request's 15 s: the connection closed under it.
        wait(qtbot, lambda: failed, 5_000)
        assert failed[0][0] == "why" and "not answering" in failed[0][1]
        wait(qtbot, lambda: rec.states[-1] in ("reconnecting", "unreachable"), 5_000)
        # While lost, nothing more is sent: queries fail at once.
        c.run_query("later", lambda client: client.why(1))
        wait(qtbot, lambda: len(failed) == 2, 5_000)
        assert failed[1] == ("later", "the supervisor is not reachable")
    finally:
        c.stop()


def test_next_offset_counts_bytes():
    assert next_offset({"offset": 10, "size": 100, "data": "wö".encode()}) == 13
    assert next_offset({"offset": 7, "size": 7, "data": b""}) == 7
