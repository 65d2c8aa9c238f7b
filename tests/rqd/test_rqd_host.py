"""Host management in a real rqd process: facts, path rules, refusals, idle lock, drain, run-as."""

from __future__ import annotations

import json
import os
import pwd
import stat
import sys

import pytest

from cuefarm import protocol as p
from rqd.state import kept_in
from tests.farm import user_with_uid_over

PY = sys.executable
SLEEP = [PY, "-c", "import time; time.sleep(300)"]


def refusal_of(attempt_id: str):
    return lambda body: body.attempt_id == attempt_id


def fake_nvidia_smi(directory, lines: list[str], code: int = 0) -> dict[str, str]:
    """An `nvidia-smi` first on PATH that prints `lines`; the environment that finds it."""
    directory.mkdir(exist_ok=True)
    exe = directory / "nvidia-smi"
    body = "".join(f"echo '{line}'\n" for line in lines)
    exe.write_text(f"#!/bin/sh\n{body}exit {code}\n")
    exe.chmod(0o755)
    return {"PATH": f"{directory}{os.pathsep}{os.environ.get('PATH', '')}"}


# -- host facts ---------------------------------------------------------------------------------

def test_register_and_heartbeat_report_host_facts(supervisor, start_rqd, helpers, tmp_path):
    env = fake_nvidia_smi(tmp_path / "bin", ["NVIDIA RTX A6000, 49140 MiB",
                                             "NVIDIA RTX A6000, 49140 MiB"])
    start_rqd(supervisor, env=env, extra=("--tag", "render", "--tag", "big-memory",
                                          "--path-map", "/mnt/proj=/data/proj"))
    reg = supervisor.register()
    assert reg.tags == ["render", "big-memory", "linux", "gpu"]
    assert reg.gpus == 2 and reg.disk_free_mb > 0 and reg.nimby is False
    assert reg.path_maps == [p.PathRule("/mnt/proj", "/data/proj")]
    hb = supervisor.expect("heartbeat")
    assert hb.gpus == 2 and hb.disk_free_mb > 0 and hb.memory_free_mb > 0
    assert hb.nimby is False and hb.draining is False


@pytest.mark.parametrize("lines, code", [([], 0), (["garbage"], 9)], ids=["none", "failing"])
def test_no_or_broken_nvidia_smi_means_no_gpus(supervisor, start_rqd, tmp_path, lines, code):
    start_rqd(supervisor, env=fake_nvidia_smi(tmp_path / "bin", lines, code))
    reg = supervisor.register()
    assert reg.gpus == 0 and "gpu" not in reg.tags and reg.tags == ["linux"]


# -- path rules ---------------------------------------------------------------------------------

def test_launch_runs_the_translated_command(supervisor, start_rqd, helpers, tmp_path):
    real = tmp_path / "real proj"
    (real / "shot").mkdir(parents=True)
    (real / "shot" / "input.txt").write_text("the real input")
    own = tmp_path / "own"
    own.mkdir()
    rqd = start_rqd(supervisor, extra=("--path-map", f"/fake/own={own}"))
    supervisor.register()
    code = ("import os, sys; print('read', open(sys.argv[1]).read()); "
            "print('cwd', os.getcwd()); print('list', os.environ['SEARCH']); "
            "print('arg', sys.argv[2])")
    launch = helpers.launch(
        "60.1", [PY, "-c", code, "/fake/proj/shot/input.txt", "--out=/fake/own/f#FRAME#.exr"],
        cwd="/fake/proj/shot", env={"SEARCH": "/fake/proj/lib:/fake/own/lib:/usr/lib"},
        path_maps=[p.PathRule("/fake/proj", str(real)), p.PathRule("/fake/own", "/wrong")],
        frame_start=3)
    supervisor.send(launch)
    c = supervisor.completion("60.1")
    assert c.exit_status == 0, c
    text = (rqd.state_dir / "logs" / "60.1.log").read_text()
    output = text.split("=" * 78)[2]
    assert "read the real input" in output
    assert f"cwd {real / 'shot'}" in output
    # The worker's own rule wins over the supervisor's for /fake/own.
    assert f"list {real}/lib:{own}/lib:/usr/lib" in output
    assert f"arg --out={own}/f3.exr" in output
    header = text.split("=" * 78)[1]
    assert f"command:   {PY} -c" in header and str(real / "shot" / "input.txt") in header
    assert "submitted: " in header and "/fake/proj/shot/input.txt" in header
    assert f"cwd:       {real / 'shot'}" in header


def test_bad_path_rule_in_the_config_is_refused(tmp_path):
    import subprocess
    res = subprocess.run([PY, "-m", "rqd", "--state-dir", str(tmp_path), "--path-map", "rel=/x"],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, CUEFARM_CONFIG=str(tmp_path / "none.toml")))
    assert res.returncode != 0 and "path_maps" in res.stderr


# -- refusals -----------------------------------------------------------------------------------

def test_refuse_what_memory_cannot_hold(supervisor, start_rqd, helpers):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("61.1", [PY, "-c", "pass"], memory_mb=1 << 40))
    refuse = supervisor.expect("refuse", refusal_of("61.1"))
    assert refuse.reason.startswith("not enough free memory")
    supervisor.send(helpers.launch("61.2", [PY, "-c", "pass"], memory_mb=1))
    assert supervisor.completion("61.2").exit_status == 0


def test_refuse_when_the_log_disk_is_full(supervisor, start_rqd, helpers):
    start_rqd(supervisor, config="min_free_disk_mb = 1000000000000")
    supervisor.register()
    supervisor.send(helpers.launch("62.1", [PY, "-c", "pass"]))
    refuse = supervisor.expect("refuse", refusal_of("62.1"))
    assert refuse.reason.startswith("not enough free disk for logs")


# -- idle lock ----------------------------------------------------------------------------------

def test_idle_lock_follows_the_probe(supervisor, start_rqd, helpers, tmp_path):
    idle = tmp_path / "idle"
    idle.write_text("0")                     # someone is typing
    start_rqd(supervisor, config="nimby = true\nnimby_idle = 300",
              env={"CUEFARM_TEST_IDLE_FILE": str(idle)})
    reg = supervisor.register()
    assert reg.nimby is True
    supervisor.expect("heartbeat", lambda b: b.nimby)
    supervisor.send(helpers.launch("63.1", [PY, "-c", "pass"]))
    assert supervisor.expect("refuse", refusal_of("63.1")).reason == \
        "idle-locked: local user active"
    idle.write_text("299")                   # not idle long enough yet
    supervisor.expect("heartbeat", lambda b: b.nimby)
    idle.write_text("301")                   # gone for longer than nimby_idle
    supervisor.expect("heartbeat", lambda b: not b.nimby)
    supervisor.send(helpers.launch("63.2", [PY, "-c", "pass"]))
    assert supervisor.completion("63.2").exit_status == 0
    idle.write_text("3")                     # back at the keyboard
    supervisor.expect("heartbeat", lambda b: b.nimby)


def test_idle_lock_is_off_by_default(supervisor, start_rqd, helpers, tmp_path):
    idle = tmp_path / "idle"
    idle.write_text("0")
    start_rqd(supervisor, env={"CUEFARM_TEST_IDLE_FILE": str(idle)})
    assert supervisor.register().nimby is False
    supervisor.send(helpers.launch("64.1", [PY, "-c", "pass"]))
    assert supervisor.completion("64.1").exit_status == 0


def test_idle_lock_purges_running_frames(supervisor, start_rqd, helpers, tmp_path):
    idle = tmp_path / "idle"
    idle.write_text("none")                  # nobody logged in
    start_rqd(supervisor, config="nimby = true\nnimby_purge = true\nnimby_idle = 60",
              env={"CUEFARM_TEST_IDLE_FILE": str(idle)})
    assert supervisor.register().nimby is False
    supervisor.send(helpers.launch("65.1", ["sh", "-c", "sleep 300 & wait"]))
    hb = supervisor.expect("heartbeat", lambda b: "65.1" in helpers.running_ids(b))
    pid = hb.running[0].pid
    idle.write_text("0")
    c = supervisor.completion("65.1")
    assert c.reason == "lost: purged by idle lock"
    helpers.wait_until(lambda: helpers.gone([pid]), message="the purged frame to vanish")
    supervisor.expect("heartbeat", lambda b: b.nimby and b.running == [])


# -- drain --------------------------------------------------------------------------------------

def test_drain_then_exit_after_the_last_frame_is_acked(supervisor, start_rqd, helpers, tmp_path):
    go = tmp_path / "go"
    wait_for_go = [PY, "-c", f"import os, time\nwhile not os.path.exists({str(go)!r}): "
                             "time.sleep(0.05)\nprint('done')"]
    rqd = start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("66.1", wait_for_go))
    supervisor.expect("heartbeat", lambda b: "66.1" in helpers.running_ids(b))
    supervisor.send(p.Drain(then="exit"))
    supervisor.expect("heartbeat", lambda b: b.draining and "66.1" in helpers.running_ids(b))
    supervisor.send(helpers.launch("66.2", [PY, "-c", "pass"]))
    assert supervisor.expect("refuse", refusal_of("66.2")).reason == "draining"
    assert rqd.poll() is None                # the frame still runs: no exit yet
    go.write_text("")
    c = supervisor.completion("66.1")
    assert c.exit_status == 0 and c.reason == ""
    # Drained, but it waits for the acknowledgement before it exits (heartbeats go on).
    supervisor.expect("heartbeat", lambda b: b.draining and b.running == [])
    assert rqd.poll() is None
    supervisor.send(p.CompleteAck(["66.1"]))
    assert rqd.wait(helpers.WAIT) == 0
    assert "66.1" not in kept_in(rqd.state_dir).completions


def test_drain_stay_and_cancel(supervisor, start_rqd, helpers):
    rqd = start_rqd(supervisor)
    supervisor.register()
    supervisor.send(p.Drain(then="stay"))
    supervisor.expect("heartbeat", lambda b: b.draining)
    supervisor.send(helpers.launch("67.1", [PY, "-c", "pass"]))
    assert supervisor.expect("refuse", refusal_of("67.1")).reason == "draining"
    supervisor.pump(1.0)
    assert rqd.poll() is None                # drained, staying up
    supervisor.send(p.Drain(cancel=True))
    supervisor.expect("heartbeat", lambda b: not b.draining)
    supervisor.send(helpers.launch("67.2", [PY, "-c", "pass"]))
    assert supervisor.completion("67.2").exit_status == 0


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "not-allowed"])
def test_drain_then_reboot(supervisor, start_rqd, helpers, tmp_path, allowed):
    marker = tmp_path / "rebooted"
    reboot = [PY, "-c", f"open({str(marker)!r}, 'w').write('yes')"]
    rqd = start_rqd(supervisor, config=f"reboot_allowed = {str(allowed).lower()}\n"
                                       f"reboot_command = {json.dumps(reboot)}")
    supervisor.register()
    supervisor.send(p.Drain(then="reboot"))
    supervisor.pump(0)
    assert rqd.wait(helpers.WAIT) == 0
    assert marker.exists() is allowed
    if not allowed:
        assert "reboot_allowed is off" in helpers.rqd_output(tmp_path)


# -- run as the job's user ----------------------------------------------------------------------

needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="switching users needs rqd to run as root")


@needs_root
@pytest.mark.parametrize("user, why", [("root", "below the minimum uid 1000"),
                                       ("no-such-user-cuefarm", "does not exist on this host")])
def test_run_as_refuses_unusable_users(supervisor, start_rqd, helpers, user, why):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("68.1", ["id", "-u"], run_as=user))
    refuse = supervisor.expect("refuse", refusal_of("68.1"))
    assert why in refuse.reason and user in refuse.reason


@needs_root
def test_a_service_account_is_refused_by_default(supervisor, start_rqd, helpers):
    start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch("70.1", ["true"], run_as="nobody"))
    refuse = supervisor.expect("refuse", lambda b: b.attempt_id == "70.1")
    assert "service account" in refuse.reason and "deny_users" in refuse.reason


@needs_root
def test_run_as_rqds_own_user_keeps_its_identity(supervisor, start_rqd, helpers):
    # Running as root for a job of root's (allowed here): the frame is started without
    # switching users, and has root's uid, gid and groups all the same.
    root = pwd.getpwuid(0)
    rqd = start_rqd(supervisor, config="deny_users = []\nmin_uid = 0")
    supervisor.register()
    supervisor.send(helpers.launch("71.1", ["sh", "-c", 'echo "ids=$(id -u):$(id -g):$(id -G) '
                                                        'home=$HOME user=$USER"'],
                                   run_as=root.pw_name))
    c = supervisor.completion("71.1")
    assert c.exit_status == 0, c
    groups = " ".join(str(g) for g in sorted(set(os.getgrouplist(root.pw_name, 0))))
    text = (rqd.state_dir / "logs" / "71.1.log").read_text()
    got = text.split("ids=")[-1].split(" home=")[0]
    uid, gid, listed = got.split(":")
    assert (uid, gid) == ("0", "0")
    assert " ".join(str(g) for g in sorted({int(g) for g in listed.split()})) == groups
    assert f"home={root.pw_dir} user={root.pw_name}" in text


@needs_root
def test_run_as_runs_the_frame_as_that_user(supervisor, start_rqd, helpers):
    user = user_with_uid_over(1000)
    if user is None:
        pytest.skip("no user with uid >= 1000 on this host")
    # `nobody` (often the only such user) is on the default deny list: this rqd allows it.
    rqd = start_rqd(supervisor, config="deny_users = []")
    supervisor.register()
    supervisor.send(helpers.launch("69.1", ["sh", "-c", 'echo "uid=$(id -u) home=$HOME '
                                                        'user=$USER logname=$LOGNAME"'],
                                   run_as=user.pw_name))
    c = supervisor.completion("69.1")
    assert c.exit_status == 0, c
    log = rqd.state_dir / "logs" / "69.1.log"
    text = log.read_text()
    assert (f"uid={user.pw_uid} home={user.pw_dir} user={user.pw_name} "
            f"logname={user.pw_name}") in text
    assert f"user:      {user.pw_name}" in text
    assert log.stat().st_uid == user.pw_uid and stat.S_ISREG(log.stat().st_mode)
    # rqd can still serve the log.
    supervisor.send(p.LogRequest(token=1, attempt_id="69.1"))
    reply = supervisor.expect("log_reply", lambda b: b.token == 1)
    assert reply.error == "" and f"uid={user.pw_uid}".encode() in reply.data
