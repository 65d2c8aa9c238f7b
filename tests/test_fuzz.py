"""Hostile input on every socket of a real farm: the supervisor's client API and worker link,
and rqd's link to its supervisor.  About FUZZ_COUNT messages of each kind (tests/hostile.py);
afterwards each process is alive, counted what it refused, and runs a normal job to the end.
The seed is printed; CUEFARM_FUZZ_SEED=N replays a run, CUEFARM_FUZZ_COUNT=N sets the count
(benchmarks/fuzz.py is the long run)."""

from __future__ import annotations

import os
import random
import time

import zmq

from cuefarm import protocol as p
from rqd.daemon import SUPERVISOR_MESSAGES
from tests import hostile
from tests.farm import Farm, free_port_block, wait_until

FUZZ_COUNT = int(os.environ.get("CUEFARM_FUZZ_COUNT", "2000"))
BATCH = 100


def dealer(port: int) -> zmq.Socket:
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{port}")
    return s


def take_replies(sock: zmq.Socket, want: int | None, quiet_ms: int = 200,
                 limit_s: float = 60.0) -> list[bytes]:
    """Replies on `sock`: `want` of them, or (want None) until quiet_ms pass without one."""
    got: list[bytes] = []
    deadline = time.monotonic() + limit_s
    while (want is None or len(got) < want) and time.monotonic() < deadline:
        if not sock.poll(quiet_ms if want is None else 1000):
            if want is None:
                break
            continue
        got.append(sock.recv())
    return got


def error_counts(client) -> dict[str, int]:
    return {row["name"].removeprefix("errors."): row["value"] for row in client.metrics()
            if row["name"].startswith("errors.")}


def fuzz_supervisor(farm: Farm, seed: int, count: int) -> dict[str, int]:
    """Send `count` hostile messages of each category to the client API and to the worker
    link; fail as soon as the supervisor exits or stops answering a client's messages.
    Returns how many of them each socket was sent."""
    rnd = random.Random(seed)
    client_msgs = hostile.Messages(p.CLIENT_REQUESTS, rnd, keep_out=hostile.CLIENT_KEEP_OUT)
    worker_msgs = hostile.Messages(p.WORKER_MESSAGES, rnd, fixed={"name": "fuzz-worker"})
    sent = {"client": 0, "worker": 0}
    for category in hostile.CATEGORIES:
        client_sock, worker_sock = dealer(farm.port), dealer(farm.port + 1)
        try:
            for start in range(0, count, BATCH):
                n = min(BATCH, count - start)
                for _ in range(n):
                    client_sock.send(client_msgs.make(category))
                    worker_sock.send(worker_msgs.make(category))
                sent["client"] += n
                sent["worker"] += n
                # Every client message is answered (an error, most of them): all of them
                # back means the supervisor read and survived each one.
                replies = take_replies(client_sock, n)
                assert farm.supervisor.poll() is None, (
                    f"supervisor died on {category} (seed {seed}):\n" + farm.supervisor_log())
                assert len(replies) == n, (category, len(replies), n, seed)
                take_replies(worker_sock, None, quiet_ms=20)
        finally:
            client_sock.close(0)
            worker_sock.close(0)
    return sent


def test_the_supervisor_survives_hostile_input_and_then_runs_a_job(sqlite_url, tmp_path):
    seed = hostile.seed_from_env()
    farm = Farm(sqlite_url, tmp_path)
    farm.start_supervisor()
    try:
        c = farm.client(timeout=30)
        before = error_counts(c)
        sent = fuzz_supervisor(farm, seed, FUZZ_COUNT)
        assert sent["client"] == sent["worker"] == FUZZ_COUNT * len(hostile.CATEGORIES)
        assert farm.supervisor.poll() is None, farm.supervisor_log()
        after = error_counts(c)
        for code in ("malformed", "unknown_type", "version"):
            assert after.get(code, 0) > before.get(code, 0), (code, before, after)
        # No handler failed on any of it: each bad message was refused where it came in.
        assert after.get("internal", 0) == before.get("internal", 0), farm.supervisor_log()
        # Consistent: it lists what it has, and a normal job runs to the end on a real rqd.
        c.jobs()
        # What the workers said of themselves is kept only within what the database holds.
        for h in c.hosts():
            assert len(h["name"]) <= 256 and len(h["hostname"]) <= 256, len(h["name"])
            assert len(h["os"]) <= 32 and all(len(t) <= 64 for t in h["tags"]), h["os"][:80]
        farm.start_rqd("after-fuzz", 2)
        [job_id] = c.submit([{"name": "after", "project": "p", "layers": [
            {"name": "r", "command": ["true"], "range": "1-4", "hosts": ["after-fuzz"]}]}])
        job = c.wait(job_id, timeout=120)
        assert job["succeeded"] == 4 and job["state"] == "FINISHED", job
    finally:
        farm.stop()


def fuzz_rqd(router: zmq.Socket, identity: bytes, proc, seed: int, count: int,
             log_text) -> int:
    """Send `count` hostile messages of each category to the rqd behind `identity`; fail as
    soon as it exits.  Returns how many were sent."""
    rnd = random.Random(seed)
    msgs = hostile.Messages(SUPERVISOR_MESSAGES, rnd, user="",
                            keep_out=hostile.RQD_KEEP_OUT)
    sent = 0
    for category in hostile.CATEGORIES:
        for start in range(0, count, BATCH):
            n = min(BATCH, count - start)
            for _ in range(n):
                router.send_multipart([identity, msgs.make(category)])
            sent += n
            # What rqd answers (registers, refusals, log replies) is read and dropped.
            while router.poll(20):
                router.recv_multipart()
            assert proc.poll() is None, f"rqd died on {category} (seed {seed}):\n" + log_text()
    return sent


def test_rqd_survives_a_hostile_supervisor_and_then_works_with_a_real_one(sqlite_url,
                                                                            tmp_path):
    seed = hostile.seed_from_env()
    farm = Farm(sqlite_url, tmp_path)
    farm.port = free_port_block()
    farm.address = f"127.0.0.1:{farm.port}"
    # A hostile "supervisor": a ROUTER where rqd's worker link connects.
    router = zmq.Context.instance().socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    router.bind(f"tcp://127.0.0.1:{farm.port + 1}")
    log_path = tmp_path / "rqd-w.log"
    try:
        proc = farm.start_rqd("w", 2)
        assert router.poll(30_000), "rqd never connected"
        identity, first = router.recv_multipart()
        assert p.decode(first)[0].type == "register"
        sent = fuzz_rqd(router, identity, proc, seed, FUZZ_COUNT,
                        lambda: log_path.read_text(errors="replace")[-8000:])
        assert sent == FUZZ_COUNT * len(hostile.CATEGORIES)
        # It read them all: a ping-pong through its link (a log request is always answered).
        router.send_multipart([identity, p.encode(p.LogRequest(424242, "no-such-attempt"))])

        def answered():
            while router.poll(100):
                _, data = router.recv_multipart()
                try:
                    env, body = p.decode(data)
                except p.ProtocolError:
                    continue
                if isinstance(body, p.LogReply) and body.token == 424242:
                    return body
            return None
        reply = wait_until(answered, 120, message="rqd to answer after the fuzz")
        assert reply.error and proc.poll() is None
        assert "bad message from the supervisor" in log_path.read_text(errors="replace")
        # The hostile supervisor goes, a real one comes at the same address: rqd serves it.
        router.close(0)
        farm.start_supervisor()
        farm.wait_hosts_up(["w"], timeout=120)
        c = farm.client(timeout=30)
        [job_id] = c.submit([{"name": "after", "project": "p", "layers": [
            {"name": "r", "command": ["true"], "range": "1-3", "hosts": ["w"]}]}])
        job = c.wait(job_id, timeout=120)
        assert job["succeeded"] == 3 and job["state"] == "FINISHED", job
        assert proc.poll() is None
    finally:
        router.close(0)
        farm.stop()


FIGURES = 0.5       # seconds between writes of the hosts' figures in the tests below
REGISTER_ROUND = 500


def hostile_fields(msgs: hostile.Messages, type_name: str) -> list[tuple[tuple, object]]:
    """(field path, value): every field of a message type with every hostile value."""
    return [(path, v) for path, _ in hostile._leaves(msgs.info[type_name])
            for v in hostile.EVERY_VALUE]


def plain_register(msgs: hostile.Messages, name: str) -> dict:
    reg = msgs.sample("register")
    reg.update(name=name, hostname=name, memory_mb=64_000, running=[], completions=[],
               kept=[], drained="", farm_id="")
    return reg


def figures_farm(db_url: str, tmp_path) -> Farm:
    """A farm whose supervisor writes the hosts' figures every FIGURES seconds."""
    (tmp_path / "figures.toml").write_text(f"[supervisor]\nfigures_interval = {FIGURES}\n")
    farm = Farm(db_url, tmp_path)
    farm.env["CUEFARM_CONFIG"] = str(tmp_path / "figures.toml")
    farm.start_supervisor()
    return farm


def assert_hosts_hold_sane_figures(c) -> None:
    """What was taken is what the databases hold: finite, not negative."""
    for h in c.hosts():
        assert 0 <= h["load"] < 1e13 and 0 <= h["cpu_percent"] < 1e13, h
        assert 0 <= h["memory_free_mb"] <= 2**48 and 0 <= h["disk_free_mb"] <= 2**48, h
        assert 0 <= h["cores"] < 2**31 and 0 <= h["memory_mb"] <= 2**48, h


def test_no_hostile_heartbeat_field_fails_the_write_of_the_hosts_figures(db_url, tmp_path):
    """Every field of a heartbeat with every hostile value, one registered worker each: a
    heartbeat is either refused when it comes in or stored at the next write of the figures.
    (A NaN load, a free memory whose difference from the total overflowed, or free disk past
    32 bits on PostgreSQL once reached that background write and failed it for every host of
    its slice; the random fuzz above met it only when a write fell between that heartbeat and
    the next.)"""
    farm = figures_farm(db_url, tmp_path)
    msgs = hostile.Messages(p.WORKER_MESSAGES, random.Random(0))
    cases = hostile_fields(msgs, "heartbeat") + [((), None)]      # the last: a plain one
    socks = [dealer(farm.port + 1) for _ in cases]
    try:
        c = farm.client(timeout=30)
        for i, s in enumerate(socks):
            s.send(msgs.envelope("register", plain_register(msgs, f"h{i}")))
        wait_until(lambda: len(c.hosts()) == len(cases), 60, message="every worker registered")
        before = error_counts(c)
        for s, (path, value) in zip(socks, cases):
            beat = msgs.sample("heartbeat")
            beat["memory_free_mb"] = 1234
            s.send(msgs.envelope("heartbeat", hostile._set(beat, path, value) if path else beat))
        control = f"h{len(cases) - 1}"
        wait_until(lambda: next(h for h in c.hosts() if h["name"] == control)["memory_free_mb"]
                   == 1234, 30, message="the plain heartbeat's figures written")
        time.sleep(2 * FIGURES)        # every slice of hosts written once more
        after = error_counts(c)
        assert after.get("internal", 0) == before.get("internal", 0), farm.supervisor_log()
        assert after.get("malformed", 0) > before.get("malformed", 0)
        assert_hosts_hold_sane_figures(c)
    finally:
        for s in socks:
            s.close(0)
        farm.stop()


def test_no_hostile_registration_field_keeps_the_others_out(db_url, tmp_path):
    """Every field of a registration with every hostile value, one worker each, and a plain
    one last: the workers registering in one turn are stored in one write, so a value past
    its column would have kept every one of them out.  Each is refused or registered, and
    the plain one is.  (In rounds of REGISTER_ROUND workers: a ZeroMQ context holds about a
    thousand sockets.)"""
    farm = figures_farm(db_url, tmp_path)
    msgs = hostile.Messages(p.WORKER_MESSAGES, random.Random(1))
    cases = hostile_fields(msgs, "register")
    try:
        c = farm.client(timeout=30)
        before = error_counts(c)
        for start in range(0, len(cases), REGISTER_ROUND):
            socks = [dealer(farm.port + 1) for _ in range(REGISTER_ROUND + 1)]
            try:
                for i, (path, value) in enumerate(cases[start:start + REGISTER_ROUND]):
                    reg = msgs.sample("register")     # its lists too, for their fields
                    reg.update(name=f"r{start + i}", hostname=f"r{start + i}")
                    reg = hostile._set(reg, path, value)
                    socks[i].send(msgs.envelope("register", reg))
                plain = f"plain{start}"
                socks[-1].send(msgs.envelope("register", plain_register(msgs, plain)))
                wait_until(lambda: any(h["name"] == plain for h in c.hosts()), 30,
                           message=f"{plain} registered")
            finally:
                for s in socks:
                    s.close(0)
        after = error_counts(c)
        assert after.get("internal", 0) == before.get("internal", 0), farm.supervisor_log()
        assert "could not register" not in farm.supervisor_log()
        assert_hosts_hold_sane_figures(c)
    finally:
        farm.stop()
