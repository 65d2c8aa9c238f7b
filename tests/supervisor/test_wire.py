"""The supervisor's sockets against real peers speaking (and breaking) the real protocol."""

from __future__ import annotations

import resource
import socket
from pathlib import Path

import msgspec
import pytest
import zmq

import cuefarm
from cuefarm import protocol as p
from cuefarm.client import CueFarmError
from sqlalchemy import text
from supervisor.store.engine import make_engine
from tests.farm import wait_until


class Peer:
    """A DEALER connected to one of the supervisor's ports."""

    def __init__(self, port: int):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def send(self, body: p.Body, **kw) -> None:
        self.sock.send(p.encode(body, **kw))

    def recv(self, timeout: float = 10.0) -> p.Body:
        assert self.sock.poll(int(timeout * 1000)), "no reply from the supervisor"
        return p.decode(self.sock.recv())[1]

    def recv_type(self, cls, timeout: float = 10.0):
        """Skip anything else (acks, heartbeats) until a message of type `cls` arrives."""
        def got():
            while self.sock.poll(50):
                body = p.decode(self.sock.recv())[1]
                if isinstance(body, cls):
                    return body
            return None
        return wait_until(got, timeout, message=cls.__name__)

    def close(self) -> None:
        self.sock.close(0)


def register(peer: Peer, name: str, slots: int = 1, **kw) -> p.Registered:
    peer.send(p.Register(name=name, hostname=name, os="linux", cores=slots, memory_mb=4096,
                         slots=slots, version=cuefarm.__version__, **kw))
    return peer.recv_type(p.Registered)


def test_malformed_unknown_and_oversized_input_get_error_replies(sqlite_farm):
    client = Peer(sqlite_farm.port)
    worker = Peer(sqlite_farm.port + 1)
    cases = [
        (client, b"\x00garbage", "malformed"),
        (client, msgspec.msgpack.encode([1, "launch", 7, "me", None]), "unknown_type"),
        (client, msgspec.msgpack.encode([99, "ping", 8, "me", None]), "version"),
        (client, msgspec.msgpack.encode([1, "no_such_type", 9, "", None]), "unknown_type"),
        (client, p.encode(p.Ping(), type_name="submit"), "malformed"),
        (worker, b"\x93\x01", "malformed"),
        (worker, b"x" * (p.MAX_WORKER_MESSAGE + 10), "oversized"),
        (client, b"x" * (p.MAX_CLIENT_REQUEST + 10), "oversized"),
    ]
    for peer, data, code in cases:
        peer.sock.send(data)
        reply = peer.recv()
        assert isinstance(reply, p.Error) and reply.code == code, (data[:20], reply)
    # Still serving.
    assert sqlite_farm.client().ping()["version"] == cuefarm.__version__
    client.close()
    worker.close()


def test_unknown_worker_is_told_to_register(sqlite_farm):
    w = Peer(sqlite_farm.port + 1)
    w.send(p.Heartbeat())
    assert isinstance(w.recv_type(p.Reregister), p.Reregister)
    w.close()


def test_a_second_worker_with_a_taken_name_is_refused(sqlite_farm):
    a, b = Peer(sqlite_farm.port + 1), Peer(sqlite_farm.port + 1)
    register(a, "same")
    b.send(p.Register(name="same", hostname="x", os="linux", cores=1, memory_mb=1, slots=1,
                      version="0"))
    refused = b.recv_type(p.Refused)
    assert "already connected" in refused.reason
    a.close()
    b.close()


def test_each_completion_is_accepted_once(farm):
    w = Peer(farm.port + 1)
    register(w, "sim", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "once", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 2}]}])
    launch = w.recv_type(p.Launch)
    fail = p.Completion(launch.attempt_id, 1, 1.0, 2.0)
    for _ in range(3):   # resent, as a worker does until acknowledged
        w.send(p.Complete([fail]))
    ack = w.recv_type(p.CompleteAck)
    assert ack.attempt_ids == [launch.attempt_id]
    second = w.recv_type(p.Launch)
    assert second.attempt_id != launch.attempt_id and second.frame_id == launch.frame_id
    w.send(p.Complete([fail]))          # a late duplicate of the first attempt
    w.send(p.Complete([p.Completion(second.attempt_id, 0, 3.0, 4.0)]))
    job = c.wait(job_id, timeout=30)
    [frame] = c.frames(job_id)
    assert job["succeeded"] == 1 and frame["retries"] == 1 and frame["attempt"] == 2
    w.close()


def test_a_nul_in_a_workers_words_is_kept_out_of_the_database(farm):
    """A NUL character, which PostgreSQL's driver refuses outside any database error: in a
    worker's name it is refused when the message comes in (it once stopped the supervisor
    as the worker registered), in the reason an attempt ended or a launch was refused it is
    stored as U+FFFD, and so where a refusal to run as a user is kept (the only host refused
    it: the job is paused, flagged with the refusal)."""
    w = Peer(farm.port + 1)
    w.send(p.Register(name="nul\x00", hostname="nul", os="linux", cores=1, memory_mb=1,
                      slots=1, version=cuefarm.__version__))
    assert w.recv_type(p.Error).code == "malformed"
    register(w, "sim", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "nul", "layers": [
        {"name": "r", "command": "x", "range": "1-3", "max_retries": 0}]}])
    first = w.recv_type(p.Launch)
    w.send(p.Complete([p.Completion(first.attempt_id, 1, 1.0, 2.0, reason="bad\x00end")]))
    second = w.recv_type(p.Launch)
    w.send(p.Refuse(second.attempt_id, "no\x00thanks"))
    third = w.recv_type(p.Launch)
    w.send(p.Refuse(third.attempt_id, "user nul\x00 may not run here"))
    engine = make_engine(farm.db_url)

    def reasons():
        with engine.connect() as conn:
            got = conn.execute(text("SELECT reason FROM attempt WHERE state <> 'RUNNING'")
                               ).scalars().all()
            flagged = conn.execute(text("SELECT flagged FROM job")).scalar()
        return (got, flagged) if len(got) == 3 and flagged else None
    try:
        got, flagged = wait_until(reasons, 30, message="three attempts ended, the job flagged")
    finally:
        engine.dispose()
    assert sorted(got) == sorted([
        "bad\ufffdend", "lost: refused by the worker: no\ufffdthanks",
        "lost: refused by the worker: user nul\ufffd may not run here"])
    assert flagged.endswith(": refused: user nul\ufffd may not run here"), flagged
    assert c.ping()["version"] == cuefarm.__version__
    w.close()


def test_a_nul_in_a_clients_text_is_its_input_not_an_internal_error(farm):
    """PostgreSQL's driver refuses a NUL character in any text: a client's filter holding
    one is invalid input there (it was an internal error); SQLite finds nothing."""
    c = farm.client()
    if farm.db_url.startswith("postgresql"):
        with pytest.raises(CueFarmError) as info:
            c.jobs(user="x\x00")
        assert info.value.code == "invalid" and "NUL" in str(info.value)
    else:
        assert c.jobs(user="x\x00") == []
    # A project named as no job's project can be, refused by name (PostgreSQL refused the
    # long one as a database error), and both refusals kept in the audit trail: an entry
    # holding a NUL once failed every write of the trail after it.
    for name in ("x\x00", "a" * 300):
        with pytest.raises(CueFarmError) as info:
            c.set_project(name, guaranteed=1)
        assert info.value.code == "invalid" and info.value.field == "name", info.value
    c.set_project("fine", guaranteed=1)
    try:        # the host it names goes into the entry's objects as it is
        c.lock("no\x00such")
    except CueFarmError as exc:
        assert exc.code in ("not_found", "invalid"), exc
    audit = wait_until(lambda: len(got := c.audit()) == 4 and got, 15,
                       message="the four requests in the audit trail")
    assert sorted(e["action"] for e in audit) == ["host_control"] + ["set_project"] * 3
    errors = {m["name"]: m["value"] for m in c.metrics()}
    assert errors.get("errors.internal", 0) == 0, errors
    assert errors.get("errors.database", 0) == 0, errors


def test_what_a_worker_reports_is_stored_as_sent(farm):
    """Completions and the claims after them are written together (on PostgreSQL, rendered
    into one query): quotes, percent signs and parameter-like text in a reason arrive intact,
    and the layer's counters agree with its frames."""
    w = Peer(farm.port + 1)
    register(w, "sim", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "quoted", "layers": [
        {"name": "r", "command": "x", "range": "1-2", "max_retries": 1}]}])
    reason = "it's 100% 'broken': %(x)s %s ;\\ DROP TABLE frame; --"
    first = w.recv_type(p.Launch)
    w.send(p.Complete([p.Completion(first.attempt_id, 3, 1.5, 2.25, reason=reason,
                                    peak_rss=123456, cpu_time=0.75)]))
    for _ in range(2):          # the failed frame again, and the other
        launch = w.recv_type(p.Launch)
        w.send(p.Complete([p.Completion(launch.attempt_id, 0, 3.0, 4.0)]))
    assert c.wait(job_id, timeout=30)["succeeded"] == 2
    engine = make_engine(farm.db_url)
    try:
        with engine.connect() as conn:
            frame_id, number = map(int, first.attempt_id.split("."))
            row = conn.execute(text(
                "SELECT state, exit_status, reason, stopped_at, peak_rss, cpu_time FROM attempt"
                " WHERE frame_id = :f AND number = :n"), {"f": frame_id, "n": number}).one()
            assert tuple(row) == ("FAILED", 3, reason, 2.25, 123456, 0.75)
            states = conn.execute(text(
                "SELECT state, count(*) FROM frame WHERE job_id = :j GROUP BY state"),
                {"j": job_id}).all()
            counters = conn.execute(text(
                "SELECT waiting, running, succeeded, dead, slots_running FROM layer"
                " WHERE job_id = :j"), {"j": job_id}).one()
            attempts = conn.execute(text(
                "SELECT count(*), count(*) FILTER (WHERE state = 'RUNNING') FROM attempt"
                " WHERE job_id = :j"), {"j": job_id}).one()
    finally:
        engine.dispose()
    assert dict(states) == {"SUCCEEDED": 2}
    assert tuple(counters) == (0, 0, 2, 0, 0)
    assert tuple(attempts) == (3, 0)
    w.close()


def test_heartbeat_figures_are_stored_as_sent(farm):
    """A host's load, memory and disk figures and a running frame's memory and CPU reach the
    database as the worker sent them (on PostgreSQL as array literals the server reads back)."""
    w = Peer(farm.port + 1)
    register(w, "sim", slots=1)
    c = farm.client()
    c.submit([{"name": "figures", "layers": [{"name": "r", "command": "x", "range": "1"}]}])
    launch = w.recv_type(p.Launch)
    big = 5 * 2**32 + 7                 # bytes: past 32 bits
    beat = p.Heartbeat(running=[p.RunningAttempt(launch.attempt_id, rss=big, peak_rss=big + 1,
                                                 cpu_time=1234.0625, started=1.0)],
                       load=0.1 + 0.2, cpu_percent=37.5, memory_free_mb=3333,
                       disk_free_mb=2**31 - 1, nimby=True, draining=False)
    frame_id, number = map(int, launch.attempt_id.split("."))
    engine = make_engine(farm.db_url)

    def stored():
        w.send(beat)
        with engine.connect() as conn:
            host = conn.execute(text(
                "SELECT load, cpu_percent, memory_free_mb, disk_free_mb, nimby, draining"
                " FROM host WHERE name = 'sim'")).one()
            attempt = conn.execute(text(
                "SELECT rss, peak_rss, cpu_time FROM attempt WHERE frame_id = :f"
                " AND number = :n"), {"f": frame_id, "n": number}).one()
        if host.memory_free_mb == 3333 and attempt.rss == big:
            return tuple(host), tuple(attempt)
        return None

    try:
        host, attempt = wait_until(stored, 30, message="the heartbeat figures to be written")
    finally:
        engine.dispose()
    assert host == (0.1 + 0.2, 37.5, 3333, 2**31 - 1, True, False)
    assert attempt == (big, big + 1, 1234.0625)
    w.close()


def test_figures_no_database_holds_are_refused_when_they_come_in(farm):
    """A NaN, an infinity, a negative or a huge figure is answered as malformed where it comes
    in: never stored (SQLite keeps a NaN as NULL in a NOT NULL column), never a failed write
    of the figures that spoils the other hosts' (once a fuzz run's count of internal errors)."""
    w = Peer(farm.port + 1)
    register(w, "fig", slots=1)
    c = farm.client()
    internal = {m["name"]: m["value"] for m in c.metrics()}.get("errors.internal", 0)
    bad = [p.Heartbeat(load=float("nan")), p.Heartbeat(load=float("inf")),
           p.Heartbeat(cpu_percent=float("nan")), p.Heartbeat(cpu_percent=-1.0),
           p.Heartbeat(memory_free_mb=2**63 - 1), p.Heartbeat(disk_free_mb=-1),
           p.Heartbeat(running=[p.RunningAttempt("1.1", rss=2**62)]),
           p.Heartbeat(running=[p.RunningAttempt("1.1", cpu_time=float("-inf"))]),
           p.Complete([p.Completion("1.1", 0, started=float("nan"), stopped=1.0)]),
           p.Complete([p.Completion("1.1", 2**40, started=1.0, stopped=2.0)]),
           p.Register(name="fig2", hostname="fig2", os="linux", cores=1, memory_mb=2**63 - 1,
                      slots=1, version=cuefarm.__version__),
           p.Register(name="fig3", hostname="fig3", os="linux", cores=1, memory_mb=1,
                      slots=-1, version=cuefarm.__version__),
           p.Register(name="fig4", hostname="fig4", os="linux", cores=2**31, memory_mb=1,
                      slots=1, version=cuefarm.__version__)]
    for body in bad:
        w.send(body)
        reply = w.recv_type(p.Error)
        assert reply.code == "malformed", (body, reply)
    # Five petabytes free where the logs go: more megabytes than 32 bits hold, stored.
    w.send(p.Heartbeat(load=1.5, cpu_percent=12.5, memory_free_mb=1234,
                       disk_free_mb=5 * 2**30))
    engine = make_engine(farm.db_url)

    def stored():
        with engine.connect() as conn:
            return conn.execute(text(
                "SELECT load, cpu_percent, memory_free_mb, disk_free_mb FROM host"
                " WHERE name = 'fig'")).one() == (1.5, 12.5, 1234, 5 * 2**30)
    try:
        wait_until(stored, 30, message="the good heartbeat's figures to be written")
        with engine.connect() as conn:
            names = set(conn.execute(text("SELECT name FROM host")).scalars())
    finally:
        engine.dispose()
    assert names == {"fig"}
    after = {m["name"]: m["value"] for m in c.metrics()}
    assert after.get("errors.internal", 0) == internal, after
    w.close()


def test_refused_launch_goes_elsewhere_without_spending_a_retry(farm):
    a = Peer(farm.port + 1)
    register(a, "refuser", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "refuse", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 0}]}])
    launch = a.recv_type(p.Launch)
    b = Peer(farm.port + 1)
    register(b, "taker", slots=1)
    a.send(p.Refuse(launch.attempt_id, "not enough disk for the log"))
    again = b.recv_type(p.Launch)
    assert again.frame_id == launch.frame_id
    b.send(p.Complete([p.Completion(again.attempt_id, 0, 1.0, 2.0)]))
    c.wait(job_id, timeout=30)
    [frame] = c.frames(job_id)
    assert frame["state"] == "SUCCEEDED" and frame["retries"] == 0 and frame["host"] == "taker"
    a.close()
    b.close()


def test_restarted_supervisor_adopts_running_attempts(farm):
    w = Peer(farm.port + 1)
    register(w, "sim", slots=2)
    c = farm.client()
    [job_id] = c.submit([{"name": "adopt", "layers": [
        {"name": "r", "command": "x", "range": "1-2", "max_retries": 0}]}])
    l1, l2 = w.recv_type(p.Launch), w.recv_type(p.Launch)
    farm.kill_supervisor()
    farm.start_supervisor()
    # It reports one still running and one finished while the supervisor was away.
    done = p.Completion(l2.attempt_id, 0, 1.0, 2.0)
    w.send(p.Heartbeat())
    w.recv_type(p.Reregister)
    w.send(p.Register(name="sim", hostname="sim", os="linux", cores=2, memory_mb=4096, slots=2,
                      version=cuefarm.__version__,
                      running=[p.RunningAttempt(l1.attempt_id, pid=1)], completions=[done]))
    w.recv_type(p.Registered)
    c = farm.client()
    frames = {f["attempt_id"]: f for f in c.frames(job_id)}
    assert frames[l1.attempt_id]["state"] == "RUNNING"
    assert frames[l2.attempt_id]["state"] == "SUCCEEDED"
    w.send(p.Complete([p.Completion(l1.attempt_id, 0, 1.0, 3.0)]))
    assert c.wait(job_id, timeout=30)["succeeded"] == 2
    w.close()


def test_a_worker_cannot_end_an_attempt_sent_to_another(farm):
    real, rogue = Peer(farm.port + 1), Peer(farm.port + 1)
    register(real, "real", slots=1)
    c = farm.client()
    [job_id] = c.submit([{"name": "held", "layers": [
        {"name": "r", "command": "x", "range": "1", "max_retries": 0}]}])
    launch = real.recv_type(p.Launch)
    register(rogue, "rogue", slots=0)
    forged = p.Completion(launch.attempt_id, 0, 1.0, 2.0)

    def counted(name):
        return next((m["value"] for m in c.metrics() if m["name"] == name), 0)

    # Neither a completion nor a refusal ends it: it still runs on the host it was sent to.
    rogue.send(p.Complete([forged]))
    wait_until(lambda: counted("errors.foreign_completion") == 1, 30,
               message="the forged completion counted")
    rogue.send(p.Refuse(launch.attempt_id, "no thanks"))
    wait_until(lambda: counted("errors.foreign_completion") == 2, 30,
               message="the forged refusal counted")
    [frame] = c.frames(job_id)
    assert frame["state"] == "RUNNING" and frame["host"] == "real"
    # Nor does a rogue handing it in while registering under a new name.
    rogue2 = Peer(farm.port + 1)
    rogue2.send(p.Register(name="rogue2", hostname="x", os="linux", cores=1, memory_mb=1024,
                           slots=0, version=cuefarm.__version__, completions=[forged]))
    rogue2.recv_type(p.Registered)
    [frame] = c.frames(job_id)
    assert frame["state"] == "RUNNING" and frame["attempt_id"] == launch.attempt_id
    real.send(p.Complete([p.Completion(launch.attempt_id, 3, 1.0, 2.0)]))
    c.wait(job_id, timeout=30)
    [frame] = c.frames(job_id)
    assert frame["state"] == "DEAD" and frame["exit_status"] == 3
    for peer in (real, rogue, rogue2):
        peer.close()


def _listen_overflows() -> int | None:
    """How many connection requests this machine's kernel has dropped because a listening
    socket's queue of connections waiting to be accepted was full (None: not Linux)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return None
    for head, values in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            counts = dict(zip(head.split()[1:], values.split()[1:]))
            return int(counts["ListenOverflows"]) if "ListenOverflows" in counts else None
    return None


def _connected(s: socket.socket) -> bool:
    try:
        s.getpeername()
        return True
    except OSError:      # still connecting: its request was not taken yet
        return False


def test_a_farm_connecting_at_once_is_held_until_accepted_not_turned_away(sqlite_farm):
    """Thousands of workers connect at once when a supervisor restarts.  With ZeroMQ's
    listen queue of 100 the kernel dropped most of their requests and each dropped worker
    waited for TCP to try again, up to 31 s later; the supervisor's queue holds them all."""
    before = _listen_overflows()
    if before is None:
        pytest.skip("this system does not count dropped connection requests")
    most = int(Path("/proc/sys/net/core/somaxconn").read_text())
    n = 1500
    if most < 2 * n:
        pytest.skip(f"net.core.somaxconn is {most}: the kernel queues fewer than {n}")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < n + 500:
        pytest.skip(f"this process may open at most {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n + 500), hard))
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", sqlite_farm.port + 1))
            socks.append(s)
        wait_until(lambda: all(_connected(s) for s in socks), 60,
                   message="every connection established")
        assert _listen_overflows() == before
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    peer = Peer(sqlite_farm.port + 1)
    assert isinstance(register(peer, "after-the-crowd"), p.Registered)
    peer.close()


def test_a_small_kernel_queue_for_waiting_connections_is_named(tmp_path, caplog):
    from supervisor.loop import LISTEN_BACKLOG, _check_somaxconn
    small, big = tmp_path / "small", tmp_path / "big"
    small.write_text("128\n")
    big.write_text(f"{LISTEN_BACKLOG}\n")
    with caplog.at_level("WARNING", logger="supervisor.loop"):
        assert _check_somaxconn(str(big)) == LISTEN_BACKLOG
        assert not caplog.records
        assert _check_somaxconn(str(small)) == 128
    [record] = caplog.records
    assert "net.core.somaxconn is 128" in record.getMessage()
    assert _check_somaxconn(str(tmp_path / "missing")) is None


def test_a_client_refuses_to_send_a_request_the_supervisor_would_not_take(sqlite_farm):
    c = sqlite_farm.client()
    job = {"name": "j", "project": "p", "layers": [
        {"name": "r", "command": ["true"], "range": "1", "env": {"A": "x" * 100_000}}]}
    with pytest.raises(CueFarmError) as err:
        c.submit([job | {"name": f"j{i}"} for i in range(170)])       # 17 MB
    assert err.value.code == "oversized" and "submit fewer jobs at a time" in str(err.value)
    assert c.jobs() == []
    assert len(c.submit([job | {"name": f"j{i}"} for i in range(150)])) == 150    # 15 MB


def test_a_request_naming_too_many_jobs_hosts_or_frames_is_refused_whole(sqlite_farm):
    c = sqlite_farm.client()
    [jid] = c.submit([{"name": "j", "project": "p", "layers": [
        {"name": "r", "command": ["sleep", "60"], "range": "1-3"}]}])
    too_many = p.MAX_REQUEST_ITEMS + 1
    for body, type_name, where in [
            (p.JobControl(action="pause", job_ids=[jid] * too_many), None, "$.job_ids"),
            (p.FrameControl(action="kill", job_id=jid, numbers=[1] * too_many), None,
             "$.numbers"),
            (p.HostControl(action="lock", hosts=["w"] * too_many), None, "$.hosts"),
            (p.SetLayer(job_id=jid, layer="r", values={f"k{i}": 1 for i in range(65)}),
             "set_layer", "$.values")]:
        with pytest.raises(CueFarmError) as err:
            c.request(body, type_name=type_name)
        assert err.value.code == "malformed" and where in str(err.value), err.value
    assert c.job(jid)["state"] == "ACTIVE"
    # As many as allowed are taken.
    c.request(p.JobControl(action="pause", job_ids=[jid] * p.MAX_REQUEST_ITEMS))
    assert c.job(jid)["state"] == "PAUSED"
