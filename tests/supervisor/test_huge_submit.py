"""Submits costing more than bigsubmit.HUGE frames are stored off the loop (on SQLite in slices)
and keep a submit's promises: answered once stored, a retried submission id answered with the
first one's jobs, nothing dispatched before it is all stored, nothing half stored left."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import psutil
import pytest
import zmq

from cuefarm import CueFarmError
from cuefarm import protocol as p
from supervisor import bigsubmit
from supervisor.requests import RequestError
from supervisor.store import submit as submit_store
from supervisor.store.control import Outcome, resume
from cuefarm.spec import validate_submission
from tests.farm import running_farm

FRAMES = bigsubmit.HUGE + 5_000


def huge(name: str = "huge", frames: int = FRAMES, **layer) -> dict:
    return {"name": name, "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": f"1-{frames}", **layer}]}


def test_rough_frames_counts_ranges_without_expanding_them():
    assert bigsubmit.rough_frames([huge(frames=1_000_000)]) == 1_000_000
    assert bigsubmit.rough_frames([{"layers": [{"range": "1-100x2,5,200-101"}]}]) == 151
    assert bigsubmit.rough_frames([{"layers": [{"range": "nonsense"}, {}]}, "x", None]) == 2
    assert bigsubmit.rough_frames("not a list") == 0


def test_a_submit_is_refused_past_the_supervisors_frames_or_layers_from_its_ranges():
    def check(jobs):
        return bigsubmit.check_size(jobs, max_frames=3_000, max_layers=4, max_per_job=2_000)

    assert check([huge("a", 1_500), huge("b", 1_500)]) == 3_000     # at both limits: taken
    assert check([huge("a", 750)] * 4) == 3_000
    with pytest.raises(RequestError) as info:
        check([huge("a", 1_500), huge("b", 1_501)])
    assert (info.value.code, info.value.field) == ("invalid", "jobs")
    assert "at most 3,000 frames (max_frames_per_submit); this one has 3,001 in 2 jobs" \
        in info.value.message
    with pytest.raises(RequestError) as info:
        check([huge("a", 1)] * 5)
    assert "at most 4 layers (max_layers_per_submit); this one has 5 in 5 jobs" \
        in info.value.message
    with pytest.raises(RequestError) as info:       # jobs of no layers (refused anyway)
        check([{}] * 1_000_000)
    assert "this one has 1,000,000 in 1,000,000 jobs" in info.value.message
    # Ranges are counted on the loop, a part at a time: so much of them and no more.
    listed = ",".join(["1"] * (bigsubmit.RANGE_TEXT // 2))          # 99,999 characters
    assert check([{"layers": [{"range": listed}, {"range": "1"}, {"range": 7}]}]) == 50_002
    with pytest.raises(RequestError) as info:
        check([{"layers": [{"range": listed + ",1"}, {"range": "1"}]}])
    assert "may total at most 100,000 characters; these total 100,002" in info.value.message
    assert info.value.field == "jobs"
    # A job over the supervisor's limit for one job is left to that job's own check, which
    # names the layer; and what is no submit at all to validation, which says what it is.
    check([huge("a", 1_500), huge("b", 10**9)])
    check("not a list")
    check([{"layers": "x"}, None])


def test_many_small_jobs_or_layers_cost_as_much_as_many_frames():
    shot = {"name": "s", "layers": [{"name": "r", "range": "1-5"}]}
    assert bigsubmit.rough_cost([shot]) == 5 + bigsubmit.JOB_COST + bigsubmit.LAYER_COST
    assert bigsubmit.rough_cost([shot]) < bigsubmit.HUGE < bigsubmit.rough_cost([shot] * 20)
    wide = {"name": "w", "layers": [{"name": f"r{k}", "range": "1"} for k in range(40)]}
    assert bigsubmit.rough_cost([wide]) > bigsubmit.HUGE
    assert bigsubmit.rough_cost([huge(frames=bigsubmit.HUGE)]) > bigsubmit.HUGE
    assert bigsubmit.rough_cost("not a list") == 0
    assert bigsubmit.rough_cost([{"layers": "x"}, None]) == 2 * bigsubmit.JOB_COST


def test_a_submit_of_many_small_jobs_is_stored_off_the_loop_in_order(farm):
    c = farm.client(timeout=120)
    shots = [{"name": f"shot{i:02d}", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1-5"}]} for i in range(40)]
    ids = c.submit(shots)
    assert ids == sorted(ids) and len(ids) == 40
    jobs = {j["id"]: j for j in c.jobs()}
    assert [jobs[i]["name"] for i in ids] == [f"shot{i:02d}" for i in range(40)]
    assert all(jobs[i]["state"] == "ACTIVE" and jobs[i]["flagged"] == ""
               and jobs[i]["waiting"] == 5 for i in ids)
    assert "(200 frames, stored off the loop" in farm.supervisor_log()


def test_a_submit_in_a_message_over_a_megabyte_is_stored_off_the_loop(farm):
    # Nine frames, but 1.1 MB of environment to check and store as JSON.
    env = {"BIG": "x" * 120_000}
    layers = [{"name": f"r{k}", "command": ["true"], "range": "1", "env": env}
              for k in range(9)]
    job = {"name": "wide", "project": "p", "layers": layers}
    assert bigsubmit.rough_cost([job]) < bigsubmit.HUGE
    assert len(p.encode(p.Submit(jobs=[job]), 1, "u")) > bigsubmit.HUGE_MESSAGE
    c = farm.client(timeout=120)
    [jid] = c.submit([job])
    assert "(9 frames, stored off the loop" in farm.supervisor_log()
    assert c.job(jid)["frames_total"] == 9
    # Under the size, on the loop as before.
    c.submit([job | {"layers": layers[:1], "name": "narrow"}])
    assert farm.supervisor_log().count("stored off the loop") == 1


def test_a_huge_submit_is_stored_whole_and_a_retry_gets_its_jobs(farm):
    c = farm.client(timeout=120)
    first = list(c.request(p.Submit(jobs=[huge("a"), huge("b")], submission="big-1")).job_ids)
    jobs = {j["id"]: j for j in c.jobs()}
    assert sorted(jobs) == sorted(first)
    for jid in first:        # answered after the commit: all there, and made active
        assert jobs[jid]["frames_total"] == FRAMES and jobs[jid]["waiting"] == FRAMES
        assert jobs[jid]["state"] == "ACTIVE" and jobs[jid]["flagged"] == ""
    again = list(c.request(p.Submit(jobs=[huge("a"), huge("b")], submission="big-1")).job_ids)
    assert again == first and len(c.jobs()) == 2
    # Stored paused when asked so.
    [paused] = c.submit([huge("p") | {"paused": True}])
    assert c.job(paused)["state"] == "PAUSED"


def test_retries_sent_while_it_is_stored_share_its_answer(farm):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(f"tcp://127.0.0.1:{farm.port}")
    try:
        for rid in (1, 2, 3):        # the client's retries, before any reply
            sock.send(p.encode(p.Submit(jobs=[huge()], submission="big-2"), rid, "alice"))
        replies = {}
        while len(replies) < 3:
            assert sock.poll(120_000), "a submit was not answered"
            env, body = p.decode(sock.recv())
            replies[env.id] = list(body.job_ids)
        assert replies[1] == replies[2] == replies[3] and len(replies[1]) == 1
        assert [j["id"] for j in farm.client().jobs()] == replies[1]
    finally:
        sock.close(0)


def test_a_huge_submit_that_is_refused_stores_nothing(farm):
    c = farm.client(timeout=120)
    with pytest.raises(CueFarmError, match="no limit named") as err:
        c.submit([huge("ok"), huge("bad", limits=["nolimit"])])
    assert err.value.field == "jobs[1].layers[0].limits[0]"
    with pytest.raises(CueFarmError, match="command"):
        c.submit([huge("bad", command=[])])
    with pytest.raises(CueFarmError, match="submission id"):
        c.request(p.Submit(jobs=[huge()], submission="x" * 65))
    assert c.jobs() == []
    errors = {r["name"]: r["value"] for r in c.metrics()}
    assert errors["errors.invalid"] >= 3


def test_a_submit_past_the_supervisors_limits_is_refused_whole(db_url, tmp_path):
    limits = {"CUEFARM_SUPERVISOR_MAX_FRAMES_PER_SUBMIT": str(2 * FRAMES),
              "CUEFARM_SUPERVISOR_MAX_LAYERS_PER_SUBMIT": "3"}
    with running_farm(db_url, tmp_path, limits) as farm:
        c = farm.client(timeout=120)
        with pytest.raises(CueFarmError, match="max_frames_per_submit") as err:
            c.submit([huge("a"), huge("b", FRAMES + 1)])
        assert err.value.field == "jobs"
        assert f"this one has {2 * FRAMES + 1:,} in 2 jobs" in str(err.value)
        with pytest.raises(CueFarmError, match="max_layers_per_submit"):
            c.submit([huge(f"s{i}", 5) for i in range(4)])
        with pytest.raises(CueFarmError, match="frame ranges of a submission may total"):
            c.submit([huge("a", range=",".join(["1"] * bigsubmit.RANGE_TEXT))])
        # A billion frames in one job: refused by the job's own limit, naming its range.
        with pytest.raises(CueFarmError, match="maximum of 1,000,000 frames") as err:
            c.submit([huge("a", 5), huge("b", 10**9)])
        assert err.value.field == "jobs[1].layers[0].range"
        assert c.jobs() == []
        # At the limits, taken whole (off the loop: each job's frames expanded as it is stored).
        ids = c.submit([huge("a"), huge("b")])
        assert [c.job(i)["frames_total"] for i in ids] == [FRAMES, FRAMES]
        assert len(c.submit([huge(f"s{i}", 5) for i in range(3)])) == 3
        assert {r["name"]: r["value"] for r in c.metrics()}["errors.invalid"] == 4


def test_a_huge_job_runs(sqlite_farm):
    sqlite_farm.start_rqd("w1", 4)
    c = sqlite_farm.client(timeout=120)
    [jid] = c.submit([huge(chunk=FRAMES // 4)])     # four chunks: quick to run
    job = c.wait(jid, timeout=120)
    assert job["succeeded"] == 4 and job["state"] == "FINISHED"


def test_jobs_left_half_stored_are_deleted_and_cannot_be_resumed(engine):
    specs = validate_submission([huge()], FRAMES)
    with engine.connect() as conn:
        [jid] = submit_store.submit(conn, specs, "alice", 1.0, between=conn.commit)
        conn.commit()
    with engine.begin() as conn:
        out = Outcome()
        resume(conn, [jid], 2.0, out)           # still being stored: stays paused
        state = conn.exec_driver_sql(f"SELECT state, flagged FROM job WHERE id={jid}").one()
        assert tuple(state) == ("PAUSED", submit_store.STORING)
        assert bigsubmit.forget_unfinished(conn) == 1
        assert conn.exec_driver_sql("SELECT count(*) FROM frame").scalar() == 0
        assert conn.exec_driver_sql("SELECT count(*) FROM job").scalar() == 0


def test_the_submit_thread_waits_while_a_loop_turn_is_under_way(sqlite_url, monkeypatch):
    # Beside a thread busy in Python the loop waited for the GIL every time it let go of it;
    # the submit thread's pace() waits instead while a turn is under way.
    from tests.simfarm import SimFarm
    monkeypatch.setattr(bigsubmit, "PACE_WAIT", 60.0)
    farm = SimFarm(sqlite_url)
    try:
        big = farm.loop.big_submits
        seen: list[bool] = []

        def ask_while_waiting() -> None:
            seen.append(big.between_turns.wait(60))   # the loop is waiting in its poll
            sock = farm.ctx.socket(zmq.DEALER)
            sock.connect(farm.endpoints[0])
            sock.send_multipart([b"", b"not a request"])   # something to wake it
            sock.close(linger=1000)

        asker = threading.Thread(target=ask_while_waiting)
        asker.start()
        farm.loop.step(60_000)
        asker.join(60)
        assert seen == [True] and not big.between_turns.is_set()
        paced = threading.Thread(target=big.pace)
        paced.start()
        paced.join(0.5)
        assert paced.is_alive()           # a turn is under way (the last one has not ended)
        farm.loop.step(0)                 # back in the poll, if only for a moment
        paced.join(60)
        assert not paced.is_alive()
        # A farm without threads stores huge submits on the loop's own thread: no waiting.
        big.between_turns.clear()
        returned, rescued = threading.Event(), []

        def rescue() -> None:
            if not returned.wait(20):
                rescued.append(True)
                big.between_turns.set()

        rescuer = threading.Thread(target=rescue)
        rescuer.start()
        big.pace()
        returned.set()
        rescuer.join()
        assert not rescued
    finally:
        farm.close()


def test_a_huge_submit_is_worked_on_with_the_collector_off():
    # Its million-frame lists would be walked by every collection meanwhile, on any thread.
    import gc
    assert gc.isenabled()
    assert bigsubmit._without_gc(gc.isenabled) is False
    assert gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        bigsubmit._without_gc(lambda: 1 / 0)
    assert gc.isenabled()


def test_a_huge_jobs_columns_are_freed_a_slice_at_a_time():
    columns = [list(range(2 * submit_store.FREE_SLICE + 7)), [str(n) for n in range(10)], []]
    sizes: list[list[int]] = []
    submit_store.free_gradually(columns, lambda: sizes.append([len(c) for c in columns]))
    assert columns == [[], [], []]
    # Between two slices the loop may run: never more than FREE_SLICE freed in one go.
    assert sizes[0] == [submit_store.FREE_SLICE + 7, 10, 0]
    assert sizes[1] == [7, 10, 0]
    assert sizes[2:] == [[0, 10, 0], [0, 0, 0]]


def _nice_values(pid: int) -> dict[int, int]:
    """Each thread of `pid`: its nice value (field 19 of /proc/PID/task/TID/stat)."""
    out = {}
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        stat = (task / "stat").read_text()
        out[int(task.name)] = int(stat[stat.rindex(")") + 2:].split()[16])
    return out


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="Linux thread priorities")
def test_the_thread_storing_a_huge_submit_yields_the_cpu_to_the_loop(farm):
    pid = farm.supervisor.pid
    before = _nice_values(pid)
    base = before[pid]          # what the supervisor was started with (a niced runner: more)
    if base >= bigsubmit.SUBMIT_NICE:
        pytest.skip(f"the supervisor runs at nice {base} already")
    assert set(before.values()) == {base}
    farm.client(timeout=120).submit([huge("a")])
    after = _nice_values(pid)
    assert after[pid] == base                               # the loop's thread
    assert sorted(after.values()).count(bigsubmit.SUBMIT_NICE) == 1   # the submit thread only
    assert set(after.values()) == {base, bigsubmit.SUBMIT_NICE}


def _storing_children(pid: int) -> list[psutil.Process]:
    return [c for c in psutil.Process(pid).children()
            if "supervisor.submitproc" in " ".join(c.cmdline())]


def test_the_hugest_submits_on_postgresql_are_stored_by_a_process_of_their_own(
        postgres_url, tmp_path):
    with running_farm(postgres_url, tmp_path) as farm:
        c = farm.client(timeout=120)
        frames = bigsubmit.CHILD_FRAMES
        first = list(c.request(p.Submit(jobs=[huge("a", frames)], submission="child-1"))
                     .job_ids)
        [job] = c.jobs()
        assert job["id"] == first[0] and job["frames_total"] == job["waiting"] == frames
        assert job["state"] == "ACTIVE" and job["flagged"] == ""
        log = farm.supervisor_log()
        assert f"jobs {first} were stored by process" in log
        child = int(log.split(f"jobs {first} were stored by process ")[1].split(",")[0])
        assert child != farm.supervisor.pid
        # Its promises hold as on the thread: a retry gets the first one's jobs ...
        again = c.request(p.Submit(jobs=[huge("a", frames)], submission="child-1")).job_ids
        assert list(again) == first and len(c.jobs()) == 1
        # ... and a refusal names what it refuses, and stores nothing.
        with pytest.raises(CueFarmError, match="no limit named") as err:
            c.submit([huge("ok", frames), huge("bad", limits=["nolimit"])])
        assert err.value.field == "jobs[1].layers[0].limits[0]"
        with pytest.raises(CueFarmError, match="LD_PRELOAD") as err:
            c.submit([huge("env", frames, env={"LD_PRELOAD": "/tmp/x.so"})])
        assert len(c.jobs()) == 1
        assert not _storing_children(farm.supervisor.pid)    # each leaves once it answered


def _submitting(farm, frames: int, timeout: float) -> tuple[threading.Thread, list]:
    """A submit of `frames` frames sent on a thread of its own, and the child process storing
    it once there is one: (the thread, its reply or error in a list)."""
    replies: list = []

    def send() -> None:
        try:
            replies.append(farm.client(timeout=timeout).submit([huge("a", frames)]))
        except CueFarmError as exc:
            replies.append(exc)
    sent = threading.Thread(target=send, daemon=True)
    sent.start()
    return sent, replies


def _storing_child(pid: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while not (children := _storing_children(pid)):
        assert time.monotonic() < deadline, "no process stores the submit"
        time.sleep(0.02)
    return children


def test_a_submit_being_stored_by_a_process_dies_with_the_supervisor(postgres_url, tmp_path):
    with running_farm(postgres_url, tmp_path) as farm:
        sent, _ = _submitting(farm, 4 * bigsubmit.CHILD_FRAMES, timeout=8)
        children = _storing_child(farm.supervisor.pid)
        time.sleep(1.0)                     # well into its work
        farm.kill_supervisor()
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "the storing process outlived the supervisor"
        sent.join(30)             # the client gave up: it sends nothing to the next one
        farm.start_supervisor()
        assert farm.client(timeout=30).jobs() == []   # never answered: never stored


def test_a_stop_sent_to_the_storing_process_too_still_finishes_the_submit(
        postgres_url, tmp_path):
    """systemd signals every process of the service; a terminal's Ctrl-C the whole group."""
    with running_farm(postgres_url, tmp_path) as farm:
        sent, replies = _submitting(farm, bigsubmit.CHILD_FRAMES, timeout=60)
        for proc in _storing_child(farm.supervisor.pid):
            proc.send_signal(signal.SIGTERM)
            proc.send_signal(signal.SIGINT)
        farm.supervisor.send_signal(signal.SIGTERM)
        farm.supervisor.wait(60)
        sent.join(60)
        assert replies and isinstance(replies[0], list), (replies, farm.supervisor_log())
        farm.start_supervisor()
        assert farm.client().job(replies[0][0])["frames_total"] == bigsubmit.CHILD_FRAMES
