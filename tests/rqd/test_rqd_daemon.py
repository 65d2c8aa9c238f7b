"""rqd as a real process against a simulated supervisor speaking the real protocol."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import msgspec
import psutil
import pytest
import zmq

import cuefarm
from cuefarm import protocol as p
from rqd.state import RunningRecord, StateDir, kept_in, registered_in

PY = sys.executable
SLEEP = [PY, "-c", "import time; time.sleep(300)"]


def test_register_launch_complete_ack(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor, slots=3)
    reg = supervisor.register()
    assert reg.name == "w1" and reg.slots == 3 and reg.version == cuefarm.__version__
    assert reg.os == "linux" and reg.cores >= 1 and reg.memory_mb > 0 and reg.hostname
    assert reg.running == [] and reg.completions == []
    hb = supervisor.expect("heartbeat")
    assert hb.running == [] and hb.memory_free_mb > 0

    supervisor.send(helpers.launch(
        "7.1", [PY, "-c", "import sys; print('frame 5'); sys.exit(4)"], frame_start=5))
    c = supervisor.completion("7.1")
    assert c.exit_status == 4 and c.reason == "" and c.stopped >= c.started
    kept = kept_in(rqd.state_dir)             # on disk before it was reported
    assert "7.1" in kept.completions and "7.1" not in kept.running
    supervisor.send(p.CompleteAck(["7.1"]))
    helpers.wait_until(lambda: "7.1" not in kept_in(rqd.state_dir).completions,
                       message="the acked completion to go")
    log_text = (rqd.state_dir / "logs" / "7.1.log").read_text()
    assert "frame 5" in log_text and "exit status: 4" in log_text


def test_a_completion_is_resent_until_acked(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("8.1", [PY, "-c", "pass"]))
    first = supervisor.completion("8.1")
    again = supervisor.completion("8.1")
    assert again == first
    supervisor.send(p.CompleteAck(["8.1"]))
    helpers.wait_until(lambda: "8.1" not in kept_in(rqd.state_dir).completions,
                       message="the acked completion to go")


def test_refuse_when_slots_are_exceeded_then_kill(supervisor, start_rqd, helpers):
    start_rqd(supervisor, slots=2)
    supervisor.register()
    supervisor.send(helpers.launch("9.1", SLEEP, slots=2))
    supervisor.send(helpers.launch("9.2", SLEEP, slots=1))
    refuse = supervisor.expect("refuse")
    assert refuse.attempt_id == "9.2" and "slots" in refuse.reason
    hb = supervisor.expect("heartbeat", lambda b: "9.1" in helpers.running_ids(b))
    [ra] = hb.running
    assert ra.pid > 0 and ra.started > 0
    supervisor.send(p.Kill(["9.1", "no-such-attempt"], reason="by wrangler"))
    c = supervisor.completion("9.1")
    assert c.reason == "killed: by wrangler" and c.exit_status == -signal.SIGTERM
    helpers.wait_until(lambda: helpers.gone([ra.pid]), message="the killed frame to vanish")
    # The slots are free again.
    supervisor.send(helpers.launch("9.3", [PY, "-c", "pass"], slots=2))
    assert supervisor.completion("9.3").exit_status == 0


def test_duplicate_launch_runs_once(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor, slots=4)
    supervisor.register()
    supervisor.send(helpers.launch("10.1", SLEEP))
    supervisor.send(helpers.launch("10.1", SLEEP))
    hb = supervisor.expect("heartbeat", lambda b: "10.1" in helpers.running_ids(b))
    assert helpers.running_ids(hb) == ["10.1"]
    assert len(psutil.Process(rqd.pid).children()) == 1
    assert not any(t == "refuse" for t, _ in supervisor.received)
    supervisor.send(p.Kill(["10.1"]))
    assert supervisor.completion("10.1").reason == "killed"


def test_launch_failure_completes_with_127(supervisor, start_rqd, helpers):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("11.1", ["/no/such/renderer", "-f", "#FRAME#"]))
    c = supervisor.completion("11.1")
    assert c.exit_status == 127 and c.reason.startswith("launch failed: ")


def test_log_request(supervisor, start_rqd, helpers):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("12.1", [PY, "-c", "print('x' * 50 + 'TAIL')"]))
    supervisor.completion("12.1")

    supervisor.send(p.LogRequest(token=5, attempt_id="12.1"))
    whole = supervisor.expect("log_reply", lambda b: b.token == 5)
    assert whole.error == "" and whole.offset == 0 and whole.size == len(whole.data)
    assert b"CueFarm attempt 12.1" in whole.data and b"TAIL" in whole.data
    assert b"exit status: 0" in whole.data

    supervisor.send(p.LogRequest(token=6, attempt_id="12.1", offset=-20, limit=8))
    tail = supervisor.expect("log_reply", lambda b: b.token == 6)
    assert tail.offset == whole.size - 20 and tail.data == whole.data[-20:-12]

    supervisor.send(p.LogRequest(token=7, attempt_id="99.9"))
    assert supervisor.expect("log_reply", lambda b: b.token == 7).error
    supervisor.send(p.LogRequest(token=8, attempt_id="../../etc/passwd"))
    missing = supervisor.expect("log_reply", lambda b: b.token == 8)
    assert missing.error and missing.data == b""


def test_reregister_lists_the_running_attempt(supervisor, start_rqd, helpers):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("13.1", SLEEP))
    supervisor.send(p.Reregister("supervisor restarted"))
    reg = supervisor.register(host_id=2)
    assert helpers.running_ids(reg) == ["13.1"] and reg.running[0].pid > 0
    supervisor.expect("heartbeat", lambda b: "13.1" in helpers.running_ids(b))
    supervisor.send(p.Kill(["13.1"], "cleanup"))
    supervisor.completion("13.1")


def test_survives_garbage(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor, extra=("--supervisor-timeout", "2"))
    supervisor.register()
    supervisor.send_raw(b"\x00garbage\xff")
    supervisor.send_raw(b"")
    supervisor.send_raw(b"first", b"second", b"third")
    supervisor.send_raw(msgspec.msgpack.encode([1, "launch", 0, "", {"attempt_id": 5}]))
    supervisor.send_raw(msgspec.msgpack.encode([99, "ack", 0, "", None]))
    supervisor.send(p.Submit(jobs=[]))                        # not for a worker
    supervisor.send(helpers.launch("../evil", SLEEP))
    assert supervisor.expect("refuse").attempt_id == "../evil"
    supervisor.send(p.Refused("just testing", retry_after=0.1))
    supervisor.register()
    # Over MAXMSGSIZE: ZeroMQ drops that connection; rqd notices the silence and reconnects.
    supervisor.send_raw(b"\x01" * (p.MAX_WORKER_MESSAGE + 10))
    supervisor.auto_register = True
    mark = len(supervisor.received)
    supervisor.expect("heartbeat", lambda b: any(
        t == "register" for t, _ in supervisor.received[mark:-1]))
    assert rqd.poll() is None
    supervisor.send(helpers.launch("14.2", [PY, "-c", "pass"]))
    assert supervisor.completion("14.2").exit_status == 0
    assert "bad message from the supervisor" in helpers.rqd_output(rqd.state_dir.parent)


def test_orphans_are_killed_at_startup(supervisor, start_rqd, helpers, tmp_path):
    leftover = subprocess.Popen(["sh", "-c", "sleep 300 & wait"], start_new_session=True)
    leader = psutil.Process(leftover.pid)
    helpers.wait_until(lambda: leader.children(), message="the leftover frame's child")
    pids = [leftover.pid, *(k.pid for k in leader.children(recursive=True))]
    state_dir = tmp_path / "state-crashed"
    state = StateDir(state_dir)
    state.open()
    state.save_running(RunningRecord("15.1", leftover.pid, leader.create_time(),
                                     os.getpgid(leftover.pid), time.time()))
    unacked = p.Completion("15.0", 0, 1.0, 2.0)
    state.save_completion(unacked)
    state.close()

    start_rqd(supervisor, state_dir=state_dir)
    reg = supervisor.register()
    assert reg.running == []
    assert reg.completions == [unacked]
    leftover.wait(60)
    helpers.wait_until(lambda: helpers.gone(pids), message="the leftover group to die")
    assert "15.1" not in kept_in(state_dir).running
    supervisor.send(p.CompleteAck(["15.0"]))
    helpers.wait_until(lambda: "15.0" not in kept_in(state_dir).completions,
                       message="the acked completion to go")


def test_sigterm_stops_gracefully(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("16.1", ["sh", "-c", "sleep 300 & wait"]))
    hb = supervisor.expect("heartbeat", lambda b: "16.1" in helpers.running_ids(b))
    frame = psutil.Process(hb.running[0].pid)
    helpers.wait_until(lambda: frame.children(), message="the frame's child")
    pids = [frame.pid, *(k.pid for k in frame.children(recursive=True))]
    rqd.send_signal(signal.SIGTERM)
    c = supervisor.completion("16.1")
    assert c.reason == "lost: rqd stopped"
    supervisor.send(p.CompleteAck(["16.1"]))
    assert rqd.wait(helpers.WAIT) == 0
    assert helpers.gone(pids)
    assert "16.1" not in kept_in(rqd.state_dir).completions


def test_unacked_completion_survives_a_restart(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("17.1", [PY, "-c", "raise SystemExit(2)"]))
    supervisor.completion("17.1")
    rqd.send_signal(signal.SIGTERM)
    assert rqd.wait(helpers.WAIT) == 0
    again = start_rqd(supervisor, state_dir=rqd.state_dir)
    reg = supervisor.register()
    assert [c.attempt_id for c in reg.completions] == ["17.1"]
    assert reg.completions[0].exit_status == 2
    supervisor.send(p.CompleteAck(["17.1"]))
    helpers.wait_until(lambda: "17.1" not in kept_in(again.state_dir).completions,
                       message="the acked completion to go")


def test_silent_supervisor_means_reconnect_to_the_next(zctx, start_rqd, helpers):
    first, second = helpers.FakeSupervisor(zctx), helpers.FakeSupervisor(zctx)
    try:
        start_rqd(first, second, extra=("--supervisor-timeout", "1"))
        first.register()
        first.send(helpers.launch("18.1", SLEEP))
        first.expect("heartbeat", lambda b: "18.1" in helpers.running_ids(b))
        first.auto_ack = False                       # the supervisor hangs
        reg = second.register()
        assert helpers.running_ids(reg) == ["18.1"]
        second.send(p.Kill(["18.1"], "moved"))
        assert second.completion("18.1").reason == "killed: moved"
    finally:
        first.close()
        second.close()


def test_the_state_dir_says_while_rqd_is_registered(supervisor, start_rqd, helpers):
    """The note a container's healthcheck reads: there while registered, gone when the
    supervisor falls silent and when rqd stops."""
    rqd = start_rqd(supervisor, extra=("--supervisor-timeout", "1"))
    supervisor.expect("register")               # connected, not yet accepted
    assert registered_in(rqd.state_dir) == ""
    supervisor.send(p.Registered(host_id=7, heartbeat_interval=0.2))
    helpers.wait_until(lambda: registered_in(rqd.state_dir), message="the note")
    assert registered_in(rqd.state_dir) == \
        f"registered with tcp://127.0.0.1:{supervisor.port} as host 7"
    supervisor.auto_ack = False                 # the supervisor hangs: rqd lets go of it
    helpers.wait_until(lambda: not registered_in(rqd.state_dir), message="the note to go")
    supervisor.auto_ack = True
    supervisor.register(host_id=8)
    helpers.wait_until(lambda: registered_in(rqd.state_dir).endswith("as host 8"),
                       message="the new note")
    rqd.send_signal(signal.SIGTERM)
    assert rqd.wait(helpers.WAIT) == 0
    assert registered_in(rqd.state_dir) == ""
    assert not (rqd.state_dir / "registered").exists()


def test_a_supervisor_cannot_silence_a_worker_for_longer_than_a_minute(supervisor, start_rqd,
                                                                      helpers, tmp_path):
    """Told to heartbeat every hour (a hostile or broken supervisor), rqd takes a minute: it
    would otherwise not find out for an hour that another supervisor took that one's place."""
    start_rqd(supervisor)
    supervisor.register(interval=3600.0)
    helpers.wait_until(lambda: "registered with" in helpers.rqd_output(tmp_path),
                       message="rqd to say it registered")
    assert "(heartbeat every 60 s)" in helpers.rqd_output(tmp_path)


@pytest.mark.parametrize("args", [("--supervisor", "nonsense::"), ("--slots", "-1"),
                                  ("--supervisor", "127.0.0.1:9770,nonsense::")])
def test_bad_command_line_is_refused(args, tmp_path):
    res = subprocess.run([PY, "-m", "rqd", "--state-dir", str(tmp_path), *args],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, CUEFARM_CONFIG=str(tmp_path / "none.toml")))
    assert res.returncode != 0 and "Error" in res.stderr
    if "," in args[1]:          # a list is read address by address
        assert "nonsense::" in res.stderr and "9770,nonsense" not in res.stderr


def test_a_state_dir_in_use_is_refused(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor)
    supervisor.register()
    second = start_rqd(supervisor, name="w2", state_dir=rqd.state_dir)
    assert second.wait(helpers.WAIT) == 1
    assert rqd.poll() is None


def test_a_kill_for_an_attempt_it_does_not_have_is_answered_lost(supervisor, start_rqd,
                                                                 helpers):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.expect("heartbeat")
    supervisor.send(p.Kill(["41.1"], "requested"))
    c = supervisor.completion("41.1")
    assert c.reason.startswith("lost") and "not running" in c.reason
    hb = supervisor.expect("heartbeat", lambda b: "41.1" in b.kept)
    assert helpers.running_ids(hb) == []
    supervisor.send(p.CompleteAck(["41.1"]))
    supervisor.expect("heartbeat", lambda b: b.kept == [])


def test_every_kept_completion_is_delivered_after_registering(supervisor, start_rqd, tmp_path):
    state = StateDir(tmp_path / "state-w1")
    state.open()
    ids = [f"{i}.1" for i in range(1, 651)]
    for aid in ids:
        state.save_completion(p.Completion(aid, 0, 1.0, 2.0))
    state.close()
    start_rqd(supervisor, state_dir=tmp_path / "state-w1")
    reg = supervisor.expect("register")
    in_register = {c.attempt_id for c in reg.completions}
    assert len(in_register) == 500 and set(reg.kept) == set(ids) - in_register
    supervisor.send(p.Registered(host_id=1, heartbeat_interval=0.2))
    supervisor.send(p.CompleteAck(sorted(in_register)))
    delivered: set[str] = set()
    while not set(reg.kept) <= delivered:
        body = supervisor.expect("complete")
        delivered.update(c.attempt_id for c in body.completions)
    supervisor.send(p.CompleteAck(reg.kept))
    supervisor.expect("heartbeat", lambda b: b.kept == [])


def test_a_launch_on_a_host_the_supervisor_locked_is_refused(supervisor, start_rqd, helpers):
    start_rqd(supervisor, slots=2)
    supervisor.register()
    supervisor.send(p.Ack(slots=0))           # an admin locked the host
    supervisor.send(helpers.launch("51.1", SLEEP))
    refused = supervisor.expect("refuse", lambda b: b.attempt_id == "51.1")
    assert refused.reason == "locked"
    supervisor.send(p.Ack(slots=2))           # unlocked
    supervisor.send(helpers.launch("52.1", SLEEP))
    supervisor.expect("heartbeat", lambda b: helpers.running_ids(b) == ["52.1"])
    supervisor.send(p.Kill(["52.1"]))
    supervisor.completion("52.1")


def test_logs_and_kept_completions_belong_to_one_farm(supervisor, start_rqd, helpers):
    """Attempt ids restart at 1.1 in every farm (database): a worker moved to another farm
    keeps the logs apart and never reports one farm's attempts to the other."""
    rqd = start_rqd(supervisor)
    reg = supervisor.expect("register")
    assert reg.farm_id == ""
    supervisor.send(p.Registered(host_id=1, heartbeat_interval=0.2, farm_id="farmA"))
    supervisor.send(helpers.launch("1.1", [PY, "-c", "print('output of farm A')"]))
    supervisor.completion("1.1")
    supervisor.send(p.CompleteAck(["1.1"]))
    supervisor.send(helpers.launch("2.1", [PY, "-c", "pass"]))
    supervisor.completion("2.1")                 # never acknowledged by farm A

    supervisor.send(p.Reregister("a supervisor of another farm"))
    again = supervisor.expect("register")
    assert again.farm_id == "farmA" and [c.attempt_id for c in again.completions] == ["2.1"]
    mark = len(supervisor.received)
    supervisor.send(p.Registered(host_id=1, heartbeat_interval=0.2, farm_id="farmB"))
    supervisor.send(helpers.launch("1.1", [PY, "-c", "print('output of farm B')"]))
    assert supervisor.completion("1.1").exit_status == 0
    supervisor.send(p.LogRequest(token=1, attempt_id="1.1"))
    log_b = supervisor.expect("log_reply", lambda b: b.token == 1).data
    assert b"output of farm B" in log_b and b"farm A" not in log_b
    logs = rqd.state_dir / "logs"
    assert "output of farm A" in (logs / "farmA" / "1.1.log").read_text()
    assert (rqd.state_dir / "other-farms" / "farmA" / "2.1.json").exists()
    supervisor.pump(1.0)       # several heartbeats: a kept completion would be resent
    after = supervisor.received[mark:]
    assert not [b for t, b in after if t == "complete"
                and any(c.attempt_id == "2.1" for c in b.completions)]
    assert not [b for t, b in after if t == "heartbeat" and "2.1" in b.kept]
    assert "2.1" not in kept_in(rqd.state_dir).completions


def test_a_refused_launch_leaves_a_log_saying_why(supervisor, start_rqd, helpers):
    start_rqd(supervisor, slots=1)
    supervisor.register()
    supervisor.send(helpers.launch("5.1", [PY, "-c", "pass"], slots=2))
    refuse = supervisor.expect("refuse")
    supervisor.send(p.LogRequest(token=3, attempt_id="5.1"))
    text = supervisor.expect("log_reply", lambda b: b.token == 3).data.decode()
    assert "CueFarm attempt 5.1: refused by w1, nothing ran" in text
    assert f"reason:    {refuse.reason}" in text


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root")
def test_rqd_run_by_root_warns_that_root_jobs_will_be_refused(supervisor, start_rqd, helpers,
                                                              tmp_path):
    start_rqd(supervisor, env={"SUDO_USER": ""})
    supervisor.register()
    helpers.wait_until(lambda: "jobs you submit will be refused" in helpers.rqd_output(tmp_path),
                       message="the warning")
    out = helpers.rqd_output(tmp_path)
    assert "user 'root' has uid 0, below the minimum uid 1000" in out
    assert "--min-uid 0" in out


def test_a_wake_up_is_seen_by_the_loop_and_taken_off_the_socket(tmp_path):
    # The loop reads the wake-up socket only when the poll names it: it must name it under the
    # key the loop looks for, or one wake-up would leave it readable and the loop spinning.
    from cuefarm.config import RqdConfig
    from rqd.daemon import Daemon
    cfg = RqdConfig(name="w1", state_dir=str(tmp_path / "state"),
                    supervisors=["127.0.0.1:1"]).resolve()
    d = Daemon(cfg)
    try:
        d.poller.register(d._wake_r, zmq.POLLIN)
        d.request_stop()
        assert d._wake_fd in dict(d.poller.poll(10_000))
        d._drain_wake()
        assert d._wake_fd not in dict(d.poller.poll(0))
    finally:
        d.runner.close()
        d.link.close()
        d._wake_r.close()
        d._wake_w.close()
        d.ctx.destroy(0)
