"""Keys: every socket CURVE with an allow-list; who sent a message is the key that
authenticated its connection, never a field of the message.  Real supervisors, real rqd, real
sockets."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import zmq

from cuefarm import Client, CueFarmError, Events
from cuefarm import keys as keyfiles
from cuefarm import protocol as p
from cuefarm.client import current_user
from tests.farm import (PYTHON, Farm, answers, free_port_block, run_cli, user_with_uid_over,
                        wait_until)


@pytest.fixture
def keyed_farm(db_url, tmp_path):
    f = Farm(db_url, tmp_path)
    f.use_keys()
    f.start_supervisor()
    try:
        yield f
    finally:
        f.stop()


def counted(client: Client, name: str) -> float:
    return next((m["value"] for m in client.metrics() if m["name"] == name), 0)


def _raw(ctx: zmq.Context, endpoint: str, key: keyfiles.Key | None, server: str | None,
         sock_type: int = zmq.DEALER) -> zmq.Socket:
    s = ctx.socket(sock_type)
    s.setsockopt(zmq.LINGER, 0)
    if key is not None:
        keyfiles.secure_client(s, key, server)
    s.connect(endpoint)
    return s


def _answered(sock: zmq.Socket, wait_ms: int = 1500) -> bool:
    sock.send(p.encode(p.Ping(), 1, "admin"))
    return bool(sock.poll(wait_ms))


def test_no_key_an_unknown_key_or_a_revoked_key_gets_no_reply(keyed_farm, zctx):
    admin = keyed_farm.client()
    ann = keyed_farm.issue_key("ann")
    stranger = keyfiles.new("user", "admin")          # claims a name, but nobody issued it
    endpoint = f"tcp://127.0.0.1:{keyed_farm.port}"
    server = keyed_farm.supervisor_key
    # Each of the three sockets: no key (no CURVE at all) and an unknown key get nothing.
    for port in (keyed_farm.port, keyed_farm.port + 1):
        for key in (None, stranger):
            sock = _raw(zctx, f"tcp://127.0.0.1:{port}", key, server)
            assert not _answered(sock), (port, key)
            sock.close()
    for key in (None, stranger):
        sub = _raw(zctx, f"tcp://127.0.0.1:{keyed_farm.port + 2}", key, server, zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        admin.submit([{"name": "poke", "paused": True,
                       "layers": [{"name": "a", "command": "true", "range": "1"}]}])
        assert not sub.poll(1500)
        sub.close()
    wait_until(lambda: counted(admin, "errors.unauthenticated") >= 4, 15,
               message="the refused connections counted")
    # The client library says why instead of waiting.
    with pytest.raises(CueFarmError) as err:
        Client(keyed_farm.address, timeout=2, key=keyfiles.write(
            keyed_farm.workdir / "stranger.key", stranger), supervisor_key=server).ping()
    assert err.value.code == "unauthenticated" and "refused this client's key" in str(err.value)
    with pytest.raises(CueFarmError) as err:
        Client(keyed_farm.address, timeout=2, key=None, supervisor_key=None).ping()
    assert "could not agree on security" in str(err.value)

    # A key revoked while its connection is open: that connection gets nothing more.
    ann_key = keyfiles.read(ann)
    live = _raw(zctx, endpoint, ann_key, server)
    assert _answered(live)
    live.recv()
    before = counted(admin, "errors.unauthenticated")
    out = keyed_farm.cli("keys", "revoke", "ann")
    assert out.exit_code == 0 and "revoked the user key of ann" in out.output, out.output
    assert not _answered(live)
    wait_until(lambda: counted(admin, "errors.unauthenticated") > before, 15,
               message="the revoked key's message counted")
    with pytest.raises(CueFarmError) as err:
        keyed_farm.client(key=ann, timeout=2).ping()
    assert err.value.code == "unauthenticated"
    live.close()


def test_the_key_says_who_you_are_not_the_message(keyed_farm):
    alice = keyed_farm.client(key=keyed_farm.issue_key("alice"), user="admin")
    assert alice.whoami() == {"user": "alice", "role": "artist", "open": False, "keys": True,
                              "insecure": False}
    [job_id] = alice.submit([{"name": "mine", "paused": True,
                              "layers": [{"name": "a", "command": "true", "range": "1-2"}]}])
    assert alice.job(job_id)["user"] == "alice"
    with pytest.raises(CueFarmError) as err:
        alice.lock(["w1"])
    assert err.value.code == "forbidden" and "you are alice (artist)" in str(err.value)
    # Another user's job is not hers, whoever she claims to be.
    boss = keyed_farm.client(key=keyed_farm.issue_key("boss"))
    [theirs] = boss.submit([{"name": "theirs", "paused": True,
                             "layers": [{"name": "a", "command": "true", "range": "1"}]}])
    with pytest.raises(CueFarmError) as err:
        alice.kill(theirs)
    assert err.value.code == "forbidden"
    # A wrangler's key makes a wrangler; the audit trail names the key's user.
    wendy = keyed_farm.client(key=keyed_farm.issue_key("wendy", role="wrangler"), user="alice")
    assert wendy.set_priority(theirs, 80) == 1
    audit = keyed_farm.client().audit(action="job_control")
    assert [a["user"] for a in audit][:2] == ["wendy", "alice"]
    # Key administration is for admins.
    with pytest.raises(CueFarmError) as err:
        alice.keys()
    assert err.value.code == "forbidden"


def test_worker_keys_pending_admitted_bound_and_revoked(tmp_path, sqlite_url):
    """A worker with a key the farm does not know waits as pending (even though this farm
    admits any host by name) until an admin admits it; then its name is bound to its key."""
    farm = Farm(sqlite_url, tmp_path)
    farm.use_keys()
    farm.env["CUEFARM_SUPERVISOR_ADMISSION_RETRY"] = "1"
    farm.start_supervisor()
    try:
        admin = farm.client()
        [job_id] = admin.submit([{"name": "j", "layers": [
            {"name": "a", "command": "true", "range": "1-4"}]}])
        farm.start_rqd("w1", 2, key=False)
        # Its own key (made in its state dir) is unknown: pending, with the key's fingerprint.
        wait_until(lambda: any(r["name"] == "w1" and r["state"] == "pending"
                               for r in admin.admission()), 20,
                   message="w1 pending")
        made = keyfiles.read(farm.workdir / "rqd" / "w1" / "worker.key")
        [row] = [r for r in admin.admission() if r["name"] == "w1"]
        assert row["key"] == made.fingerprint
        time.sleep(1.0)
        assert all(f["state"] == "WAITING" for f in admin.frames(job_id))
        assert "w1" not in {h["name"] for h in admin.hosts()}
        # Admitted: the key is bound to the name, and frames run.
        assert farm.cli("hosts", "admit", "w1").exit_code == 0
        farm.wait_hosts_up(["w1"], 60)
        wait_until(lambda: admin.job(job_id)["state"] == "FINISHED", 30, message="job done")
        assert {(k["kind"], k["name"]) for k in admin.keys()} >= {("worker", "w1")}
        # Another key cannot take the name over.
        farm.workers["w1-again"] = subprocess.Popen(
            [PYTHON, "-m", "rqd", "--supervisor", farm.address, "--name", "w1", "--slots", "1",
             "--state-dir", str(farm.workdir / "rqd" / "w1-other"), "--min-uid", "0"],
            stdout=open(farm.workdir / "rqd-w1-other.log", "ab"), stderr=subprocess.STDOUT,
            env=farm.env)
        wait_until(lambda: counted(admin, "errors.key_mismatch") >= 1, 30,
                   message="the second key refused")
        assert "bound to another key" in (farm.workdir / "rqd-w1-other.log").read_text()
        farm.kill_rqd("w1-again")
        # Revoked: cut off at once, DOWN within the expiry.
        out = farm.cli("keys", "revoke", made.fingerprint)
        assert out.exit_code == 0, out.output
        wait_until(lambda: {h["name"]: h["state"] for h in admin.hosts()}["w1"] == "DOWN", 30,
                   message="w1 DOWN after its key was revoked")
    finally:
        farm.stop()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="running frames as another user needs rqd to run as root")
def test_a_frame_runs_as_the_keys_user_on_a_root_worker(tmp_path, sqlite_url):
    user = user_with_uid_over(1000)
    if user is None:
        pytest.skip("no account with uid >= 1000 here")
    farm = Farm(sqlite_url, tmp_path)
    farm.use_keys()
    farm.env["CUEFARM_RQD_DENY_USERS"] = ""     # `nobody` is a service account by default
    farm.start_supervisor()
    try:
        farm.start_rqd("w1", 1, "--min-uid", "1000")
        farm.wait_hosts_up(["w1"], 60)
        them = farm.client(key=farm.issue_key(user.pw_name), user="root")
        [job_id] = them.submit([{"name": "who", "layers": [
            {"name": "a", "command": "id -u", "range": "1"}]}])
        wait_until(lambda: them.job(job_id)["state"] == "FINISHED", 30, message="done")
        assert them.job(job_id)["user"] == user.pw_name
        log = them.log(job_id, "a", 1)
        assert f"{user.pw_uid}\n" in log["text"] or str(user.pw_uid) in log["text"]
        # Variables that change how programs load are refused at submit.
        with pytest.raises(CueFarmError) as err:
            them.submit([{"name": "evil", "layers": [
                {"name": "a", "command": "true", "range": "1",
                 "env": {"LD_PRELOAD": "/tmp/x.so"}}]}])
        assert "LD_PRELOAD" in str(err.value)
    finally:
        farm.stop()


def test_events_show_each_subscriber_only_what_it_may_see(keyed_farm):
    admin = keyed_farm.client()
    alice_key = keyed_farm.issue_key("alice")
    carol = keyed_farm.client(key=keyed_farm.issue_key("carol"))
    assert admin.set_project_members("secret", ["carol"]) == 1
    server = keyed_farm.supervisor_key
    seen: dict[str, set[str]] = {"alice": set(), "admin": set()}
    asked_again: set[str] = set()
    subs = {"alice": Events(keyed_farm.address, key=alice_key, supervisor_key=server),
            "admin": Events(keyed_farm.address, key=keyed_farm.key_file, supervisor_key=server)}

    def pump(until, timeout=20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for who, ev in subs.items():
                batch = ev.receive(0.05)
                if batch is not None:
                    seen[who].update(j["name"] for j in batch.jobs)
                    if batch.resubscribe:
                        asked_again.add(who)
            if until():
                return
        raise AssertionError(f"events seen: {seen}")
    try:
        time.sleep(0.5)      # the subscriptions reach the supervisor
        carol.submit([{"name": "hidden-job", "project": "secret", "paused": True,
                       "layers": [{"name": "a", "command": "true", "range": "1"}]}])
        carol.submit([{"name": "open-job", "project": "open", "paused": True,
                       "layers": [{"name": "a", "command": "true", "range": "1"}]}])
        pump(lambda: {"hidden-job", "open-job"} <= seen["admin"] and "open-job" in seen["alice"])
        assert "hidden-job" not in seen["alice"]
        # Let into the project: she is asked to subscribe again (and to read everything
        # again, as after a gap) and sees its jobs' changes from then.
        assert admin.set_project_members("secret", ["carol", "alice"]) == 2
        pump(lambda: "alice" in asked_again)
        time.sleep(0.5)       # her new subscription reaches the supervisor
        [job] = [j for j in carol.jobs() if j["name"] == "hidden-job"]
        admin.set_priority(job["id"], 70)
        pump(lambda: "hidden-job" in seen["alice"])
    finally:
        for ev in subs.values():
            ev.close()


def test_a_supervisor_beyond_this_machine_needs_keys_or_says_insecure(tmp_path, sqlite_url):
    port = free_port_block()
    env = {**os.environ, "CUEFARM_DATA_DIR": str(tmp_path / "data"),
           "CUEFARM_CONFIG": str(tmp_path / "none.toml")}
    args = [PYTHON, "-m", "supervisor", "--bind", "0.0.0.0", "--port", str(port),
            "--db", sqlite_url]
    refused = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "refusing to listen on 0.0.0.0 without keys" in refused.stderr
    log = open(tmp_path / "insecure.log", "wb")
    proc = subprocess.Popen([*args, "--insecure"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = Client(f"127.0.0.1:{port}", timeout=5)
        wait_until(lambda: answers(client), 30, message="the insecure supervisor answers")
        me = client.whoami()
        assert me["insecure"] is True and me["keys"] is False
        out = run_cli(f"127.0.0.1:{port}", "whoami")
        assert "INSECURE" in out.output
        assert "INSECURE" in (tmp_path / "insecure.log").read_text()
        client.close()
    finally:
        proc.terminate()
        proc.wait(30)




def test_keys_commands(keyed_farm, tmp_path, monkeypatch):
    out = keyed_farm.cli("keys", "add-user", "dora", "--role", "wrangler", "-o",
                         str(tmp_path / "dora.key"))
    assert out.exit_code == 0 and "issued a user key for dora (wrangler)" in out.output, out.output
    assert oct(os.stat(tmp_path / "dora.key").st_mode & 0o777) == "0o600"
    out = keyed_farm.cli("keys", "add-user", "dora", "-o", str(tmp_path / "dora.key"))
    assert out.exit_code != 0 and "already exists" in out.output
    out = keyed_farm.cli("keys", "add-worker", "node01", "-o", str(tmp_path / "node01.key"))
    assert out.exit_code == 0 and "--key node01.key" in out.output
    out = keyed_farm.cli("keys", "add-worker", "node01", "-o", str(tmp_path / "again.key"))
    assert out.exit_code != 0 and "host node01 already has a key" in out.output
    rows = json.loads(keyed_farm.cli("keys", "list", "--json").output)
    assert {(r["kind"], r["name"], r["role"]) for r in rows} == {
        ("user", current_user(), "admin"), ("user", "dora", "wrangler"),
        ("worker", "node01", "")}
    # Dora installs her key: from then on she is dora, with no flags.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "dora-config"))
    out = run_cli(keyed_farm.address, "keys", "use", str(tmp_path / "dora.key"))
    assert out.exit_code == 0, out.output
    out = run_cli(keyed_farm.address, "whoami")
    assert out.exit_code == 0 and out.output.strip() == "dora: wrangler", out.output
    out = run_cli(keyed_farm.address, "keys", "show", "--json")
    assert json.loads(out.output)["mode"] == "0o600"
    assert keyed_farm.cli("keys", "revoke", "nobody-such").exit_code != 0


def test_a_worker_without_the_supervisors_key_says_why_it_cannot_connect(tmp_path, sqlite_url):
    farm = Farm(sqlite_url, tmp_path)
    farm.use_keys()
    farm.start_supervisor()
    try:
        # Another data dir: it does not find this farm's supervisor.pub, so it has no keys.
        farm.env["CUEFARM_DATA_DIR"] = str(tmp_path / "elsewhere")
        farm.start_rqd("lost", 1, "--supervisor-timeout", "1", key=False)
        log = tmp_path / "rqd-lost.log"
        wait_until(lambda: "do not agree on keys" in log.read_text(), 30,
                   message="rqd saying it lacks the supervisor's key")
        assert "--supervisor-key" in log.read_text()
    finally:
        farm.stop()
