"""SIGTERM stops a busy supervisor: clients submitting in a loop and a thousand workers
heartbeating do not keep it running, and what it stored is whole afterwards."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

from sqlalchemy import text

from cuefarm import Client, CueFarmError
from supervisor.store.engine import make_engine
from tests.farm import PYTHON, STOP_WITHIN, wait_until


def _submitter(address: str, stop: threading.Event, done: list[int], n: int) -> None:
    client = Client(address, timeout=5)
    try:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                done.extend(client.submit([{
                    "name": f"load-{n}-{i}", "project": "shutdown",
                    "layers": [{"name": "a", "command": ["true"], "range": "1-2000"},
                               {"name": "b", "command": ["true"], "range": "1-10",
                                "depends_on": ["a"]}]}]))
            except CueFarmError:
                return          # the supervisor went away under us: expected at the end
    finally:
        client.close()


def test_sigterm_under_load_stops_the_supervisor_with_nothing_half_written(farm):
    fleet = subprocess.Popen(
        [PYTHON, "-m", "rqd.fleet", "--supervisor", farm.address, "--workers", "1000",
         "--slots", "2", "--runtime", "0.2", "--prefix", "load"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=farm.env)
    stop = threading.Event()
    submitted: list[int] = []
    threads = [threading.Thread(target=_submitter, args=(farm.address, stop, submitted, n))
               for n in range(3)]
    try:
        client = farm.client()
        wait_until(lambda: sum(h["state"] == "UP" for h in client.hosts()) >= 1000, 120,
                   interval=0.5, message="a thousand simulated workers UP")
        for t in threads:
            t.start()
        wait_until(lambda: len(submitted) >= 10 and any(
            j["state"] != "active" or j["succeeded"] for j in client.jobs(include_finished=True)),
            60, interval=0.2, message="jobs submitted and frames finishing")
        t0 = time.monotonic()
        farm.supervisor.send_signal(signal.SIGTERM)
        try:
            code = farm.supervisor.wait(STOP_WITHIN)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the supervisor still ran {STOP_WITHIN} s after SIGTERM:\n"
                                 + farm.supervisor_log()) from None
        took = time.monotonic() - t0
        assert code == 0, farm.supervisor_log()
        assert "supervisor stopping" in farm.supervisor_log()
        print(f"exited {took:.2f} s after SIGTERM with {len(submitted)} jobs submitted")
    finally:
        stop.set()
        for t in threads:
            if t.is_alive():
                t.join(10)
        fleet.terminate()
        fleet.wait(10)

    # Nothing half-written: every job has all its frames, and each layer's counters add up to
    # the states of its frames.
    engine = make_engine(farm.db_url)
    with engine.connect() as conn:
        jobs = conn.execute(text("SELECT id FROM job")).scalars().all()
        assert set(submitted) <= set(jobs)
        frames = dict(conn.execute(text(
            "SELECT j.id, count(f.id) FROM job j JOIN layer l ON l.job_id = j.id "
            "JOIN frame f ON f.layer_id = l.id GROUP BY j.id")).all())
        assert all(frames.get(j) == 2010 for j in jobs), frames
        layers = conn.execute(text(
            "SELECT l.id, l.waiting, l.running, l.depend, l.succeeded, l.dead, l.eaten, "
            "sum(CASE WHEN f.state = 'WAITING' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.state = 'RUNNING' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.state = 'DEPEND' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.state = 'SUCCEEDED' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.state = 'DEAD' THEN 1 ELSE 0 END), "
            "sum(CASE WHEN f.state = 'EATEN' THEN 1 ELSE 0 END) "
            "FROM layer l JOIN frame f ON f.layer_id = l.id "
            "GROUP BY l.id, l.waiting, l.running, l.depend, l.succeeded, l.dead, l.eaten")).all()
        for row in layers:
            assert tuple(row[1:7]) == tuple(row[7:13]), f"layer {row[0]} counters {row[1:]}"
        running = conn.execute(text(
            "SELECT count(*) FROM frame f WHERE f.state = 'RUNNING' AND NOT EXISTS "
            "(SELECT 1 FROM attempt a WHERE a.frame_id = f.id AND a.state = 'RUNNING')")).scalar()
        assert running == 0
    engine.dispose()

    # And it starts again on what it left.
    farm.start_supervisor()
    assert {j["id"] for j in farm.client().jobs(include_finished=True)} >= set(submitted)


def test_sigterm_during_a_long_request_is_not_swallowed_by_it(farm):
    """A signal that lands while a request is being served (here a submit of 200,000 frames,
    which takes a while) stops the supervisor once that request is done: it must not be taken
    for an error of the request and forgotten."""
    replies: list = []

    def submit():
        client = Client(farm.address, timeout=60)
        try:
            replies.append(client.submit([{"name": "big", "project": "shutdown", "layers": [
                {"name": "a", "command": ["true"], "range": "1-200000"}]}]))
        except CueFarmError as exc:
            replies.append(exc)
        finally:
            client.close()
    t = threading.Thread(target=submit)
    t.start()
    time.sleep(0.3)                 # the submit is being served now
    farm.supervisor.send_signal(signal.SIGTERM)
    try:
        farm.supervisor.wait(30)
    except subprocess.TimeoutExpired:
        raise AssertionError("the supervisor still ran 30 s after SIGTERM:\n"
                             + farm.supervisor_log()) from None
    t.join(60)
    assert farm.supervisor.returncode == 0, farm.supervisor_log()
    log = farm.supervisor_log()
    assert "internal error" not in log and "Traceback" not in log, log
    # The submit was finished and answered before the loop stopped.
    assert replies and isinstance(replies[0], list), replies
    farm.start_supervisor()
    job = farm.client().job(replies[0][0])
    assert job["frames_total"] == 200_000
