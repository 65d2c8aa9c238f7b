"""The frame runner with real processes: logs, tokens, environment, killing trees, orphans."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from rqd import accounts
from rqd import runner as rn
from rqd.state import RunningRecord, StateDir

PY = sys.executable
needs_root_here = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                     reason="switching users needs the test to run as root")


@pytest.fixture
def runner(tmp_path):
    return rn.Runner("w1", tmp_path / "logs")


def wait_exit(runner: rn.Runner, attempt: rn.Attempt, timeout: float = 60.0) -> rn.Exit:
    """What the daemon loop does for one attempt: escalate a kill when due, take the exit."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if attempt.kill_due is not None and time.monotonic() >= attempt.kill_due:
            runner.kill_tree(attempt)
        try:
            return runner.exits.get(timeout=0.05)
        except Exception:
            runner.sample(attempt)
    raise AssertionError(f"{attempt.attempt_id} did not exit")


def run(runner: rn.Runner, launch) -> tuple[rn.Attempt, rn.Exit, str]:
    attempt = runner.launch(launch)
    ex = wait_exit(runner, attempt)
    completion = runner.finish(attempt, ex)
    return attempt, completion, attempt.log_path.read_text()


def test_log_has_header_output_and_footer(runner, helpers):
    code = "import sys; print('hello out', flush=True); sys.stderr.write('hello err\\n'); sys.exit(3)"
    attempt, completion, text = run(runner, helpers.launch("10.1", [PY, "-c", code]))
    assert completion.exit_status == 3
    assert completion.reason == ""
    assert completion.stopped >= completion.started
    assert attempt.log_path.name == "10.1.log"
    head, rest = text.split("\nhello out\n", 1)      # the command in the header quotes it too
    assert "CueFarm attempt 10.1" in head and "command:" in head and "environment:" in head
    assert "CUE_ATTEMPT=10.1" in head and "started:" in head and "host:      w1" in head
    assert "hello err" in rest
    footer = rest.split("hello err\n", 1)[1]
    assert "exit status: 3" in footer and "runtime:" in footer and "peak rss:" in footer
    assert "cpu time:" in footer


def test_tokens_and_cue_env_reach_a_shell_command(runner, helpers, tmp_path):
    cmd = ("echo start=#FRAME_START# end=#FRAME_END# frame=#FRAME# z=#ZFRAME#; "
           "echo job=$CUE_JOB id=$CUE_JOB_ID layer=$CUE_LAYER f=$CUE_FRAME "
           "fs=$CUE_FRAME_START fe=$CUE_FRAME_END att=$CUE_ATTEMPT host=$CUE_HOST "
           "threads=$CUE_THREADS proj=$CUE_PROJECT user=$CUE_USER log=$CUE_LOG own=$MY_VAR; "
           "pwd")
    workdir = tmp_path / "work"
    workdir.mkdir()
    launch = helpers.launch("20.2", cmd, job_id=20, job="shot010", layer="comp",
                            frames="7-9", frame_start=7, frame_end=9, slots=2,
                            env={"MY_VAR": "mine"}, cwd=str(workdir))
    attempt, completion, text = run(runner, launch)
    assert completion.exit_status == 0
    assert "start=7 end=9 frame=7 z=0007" in text
    assert (f"job=shot010 id=20 layer=comp f=7 fs=7 fe=9 att=20.2 host=w1 threads=2 proj=proj "
            f"user=artist log={attempt.log_path} own=mine") in text
    assert str(workdir) in text.split("environment:")[-1]


def test_tokens_in_an_argv_command(runner, helpers):
    code = "import os, sys; print('args', sys.argv[1:], os.environ['CUE_FRAME_END'])"
    _, completion, text = run(runner, helpers.launch(
        "21.1", [PY, "-c", code, "#FRAME#", "#ZFRAME#"], frame_start=12, frame_end=14))
    assert completion.exit_status == 0
    assert "args ['12', '0012'] 14" in text


@pytest.mark.parametrize("kw, says", [
    (dict(command=["/no/such/program-x"]), "command '/no/such/program-x' not found on this host"),
    (dict(command=[PY, "-c", "pass"], cwd="/no/such/dir"),
     "the working directory /no/such/dir does not exist on this host")])
def test_launch_failure_is_a_completion_with_127(runner, helpers, kw, says):
    launch = helpers.launch("30.1", **kw)
    with pytest.raises(rn.LaunchError) as info:
        runner.launch(launch)
    completion = runner.failed_launch(launch, str(info.value))
    assert completion.exit_status == 127
    assert completion.reason == f"launch failed: {says}"
    assert f"launch failed: {says}" in (runner.log_dir / "30.1.log").read_text()


def test_a_missing_shell_command_says_so(runner, helpers):
    _, completion, text = run(runner, helpers.launch("31.1", "no-such-program-x --frame 1"))
    assert completion.exit_status == 127
    assert completion.reason == "command not found (the shell exited 127)"
    assert "no-such-program-x" in text.split("=" * 78)[-3]      # the shell's own message


def _logged_env(text: str) -> dict[str, str]:
    head = text.split("environment:\n", 1)[1].split("=" * 78, 1)[0]
    return dict(line.strip().split("=", 1) for line in head.splitlines() if line.strip())


def test_a_frame_gets_a_clean_environment(helpers, tmp_path, monkeypatch):
    monkeypatch.setenv("CUEFARM_TEST_SECRET", "hunter2")
    monkeypatch.setenv("VIRTUAL_ENV", "/opt/rqd-venv")
    monkeypatch.setenv("LC_TIME", "C")
    runner = rn.Runner("w1", tmp_path / "logs")
    code = "import os, json; print('ENV=' + json.dumps(dict(os.environ)))"
    _, completion, text = run(runner, helpers.launch("32.1", [PY, "-c", code],
                                                     env={"OCIO": "/x"}))
    assert completion.exit_status == 0
    assert "hunter2" not in text and "rqd-venv" not in text
    seen = json.loads(text.split("\nENV=", 1)[1].splitlines()[0])
    assert seen["PATH"] == os.environ["PATH"] and seen["LC_TIME"] == "C"
    assert seen["OCIO"] == "/x" and seen["CUE_ATTEMPT"] == "32.1"
    # The header lists exactly what the frame received (the platform may add a few of its
    # own, such as PWD or a shell's SHLVL; none of rqd's).
    logged = _logged_env(text)
    assert set(logged) <= set(seen) and {k: seen[k] for k in logged} == logged
    assert set(seen) - set(logged) <= {"PWD", "SHLVL", "_", "LC_CTYPE"}


def test_the_environment_allow_list_is_configurable(helpers, tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIO_ROOT", "/studio")
    monkeypatch.setenv("STUDIO_TOKEN", "s3cret")
    runner = rn.Runner("w1", tmp_path / "logs", env_allow=["PATH", "STUDIO_R*"])
    _, _, text = run(runner, helpers.launch("33.1", [PY, "-c", "print('hi')"]))
    logged = _logged_env(text)
    assert logged["STUDIO_ROOT"] == "/studio" and "STUDIO_TOKEN" not in logged
    assert "HOME" not in logged and "s3cret" not in text


def test_a_frame_without_cwd_runs_in_a_directory_of_its_own(helpers, tmp_path):
    runner = rn.Runner("w1", tmp_path / "logs", work_dir=tmp_path / "work")
    runner.farm = "farm1"
    code = "import os; print('CWD=' + os.getcwd())"
    attempt, completion, text = run(runner, helpers.launch("34.1", [PY, "-c", code]))
    own = tmp_path / "work" / "farm1" / "34.1"
    assert completion.exit_status == 0
    assert f"CWD={own}" in text and os.getcwd() != str(own)
    assert f"cwd:       {own} (made for this attempt: the job gives no cwd)" in text
    assert attempt.log_path == tmp_path / "logs" / "farm1" / "34.1.log"
    assert not own.exists()          # left empty: removed
    keep = "open('out.txt', 'w').write('x')"
    run(runner, helpers.launch("34.2", [PY, "-c", keep]))
    assert (tmp_path / "work" / "farm1" / "34.2" / "out.txt").read_text() == "x"


LOOK = ("import os; print('INO=%d EMPTY=%s CWD=%s' % "
        "(os.stat('.').st_ino, os.listdir('.') == [], os.getcwd())); "
        "print('MODE=%o' % (os.stat('.').st_mode & 0o7777))")


def _look(text: str) -> tuple[int, bool, str]:
    line = next(x for x in text.splitlines() if x.startswith("INO="))
    ino, empty, cwd = (part.split("=", 1)[1] for part in line.split(" "))
    return int(ino), empty == "True", cwd


def _mode(text: str) -> int:
    return int(next(x for x in text.splitlines() if x.startswith("MODE="))[5:], 8)


def test_an_empty_working_directory_is_used_again_and_looks_new(helpers, tmp_path):
    # Making a directory per frame allocates an inode; an empty one an earlier frame left is
    # renamed into place instead, and only when nothing tells it from a new one.
    runner = rn.Runner("w1", tmp_path / "logs", work_dir=tmp_path / "work")
    runner.farm = "f"
    work = tmp_path / "work" / "f"
    spares = lambda: sorted(p.name for p in work.glob(".spare-*"))  # noqa: E731
    _, done, text = run(runner, helpers.launch("35.1", [PY, "-c", LOOK]))
    first, empty, cwd = _look(text)
    usual = _mode(text)
    assert done.exit_status == 0 and empty and cwd == str(work / "35.1") and usual != 0o700
    assert not (work / "35.1").exists() and spares() == [".spare-0"]
    assert (work / ".spare-0").stat().st_ino == first
    _, _, text = run(runner, helpers.launch("35.2", [PY, "-c", LOOK]))
    assert _look(text) == (first, True, str(work / "35.2"))
    assert spares() == [".spare-0"]
    # Its mode changed: removed, not kept (the next frame gets a new directory).
    run(runner, helpers.launch("35.3", [PY, "-c", "import os; os.chmod('.', 0o700)"]))
    assert spares() == [] and not (work / "35.3").exists()
    _, _, text = run(runner, helpers.launch("35.4", [PY, "-c", LOOK]))
    # (Not the one made 0o700: its inode number may come back, freed and allocated again.)
    assert _look(text)[1] and _mode(text) == usual and spares() == [".spare-0"]
    # Something left in it: it stays where it is, and is not handed to anyone.
    run(runner, helpers.launch("35.5", [PY, "-c", "open('out.txt', 'w').write('x')"]))
    assert (work / "35.5" / "out.txt").read_text() == "x" and spares() == []
    # Replaced by a symlink elsewhere: the next frame still gets a real, empty directory.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret").write_text("s")
    swap = (f"import os; d = os.getcwd(); os.chdir('/'); os.rmdir(d); "
            f"os.symlink({str(elsewhere)!r}, d)")
    run(runner, helpers.launch("35.6", [PY, "-c", swap]))
    assert (work / "35.6").is_symlink() and spares() == []
    _, _, text = run(runner, helpers.launch("35.7", [PY, "-c", LOOK]))
    assert _look(text)[1:] == (True, str(work / "35.7"))
    assert not (work / "35.7").is_symlink() and (elsewhere / "secret").read_text() == "s"
    assert spares() == [".spare-0"]
    runner.close()
    assert spares() == []


@needs_root_here
def test_a_spare_working_directory_goes_only_to_its_own_user(helpers, tmp_path):
    # A process the earlier frame left may still sit in the directory: another user's frame
    # must never get it.
    nobody = accounts.resolve("nobody", 0)
    runner = rn.Runner("w1", tmp_path / "logs", work_dir=tmp_path / "work")
    work = tmp_path / "work"
    os.chmod(tmp_path, 0o755)
    a = runner.launch(helpers.launch("36.1", ["true"]), nobody)
    runner.finish(a, wait_exit(runner, a))
    [spare] = work.glob(".spare-*")
    assert spare.stat().st_uid == nobody.uid
    ino = spare.stat().st_ino
    mine = runner.launch(helpers.launch("36.2", ["sleep", "2"]))
    assert (work / "36.2").stat().st_ino != ino and (work / "36.2").stat().st_uid == 0
    theirs = runner.launch(helpers.launch("36.3", ["sleep", "2"]), nobody)
    assert (work / "36.3").stat().st_ino == ino and (work / "36.3").stat().st_uid == nobody.uid
    for attempt in (mine, theirs):
        runner.finish(attempt, wait_exit(runner, attempt))


def _tree_pids(attempt: rn.Attempt, want: int) -> list[int]:
    """Wait until the attempt's tree has at least `want` descendants; return all its pids."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = attempt.proc.children(recursive=True)
        if len(kids) >= want:
            return [attempt.pid, *(k.pid for k in kids)]
        time.sleep(0.05)
    raise AssertionError("the frame's tree did not appear")


@pytest.mark.parametrize("ignore_term", [False, True])
def test_kill_leaves_no_process_behind(runner, helpers, ignore_term):
    # A shell with a sleeping grandchild in its group, and one that left the group (setsid):
    # both must go.  With SIGTERM ignored (inherited by the children) only SIGKILL works.
    escaped = f"{PY} -c 'import os, time; os.setsid(); time.sleep(300)'"
    cmd = ("trap '' TERM; " if ignore_term else "") + f"sleep 300 & {escaped} & wait"
    attempt = runner.launch(helpers.launch("40.1", cmd))
    pids = _tree_pids(attempt, 2)
    runner.terminate(attempt, "by test", grace=0.5)
    ex = wait_exit(runner, attempt)
    completion = runner.finish(attempt, ex)
    assert completion.reason == "killed: by test"
    assert completion.exit_status == (-signal.SIGKILL if ignore_term else -signal.SIGTERM)
    helpers.wait_until(lambda: helpers.gone(pids), message="the killed tree to vanish")
    assert "reason:      killed: by test" in attempt.log_path.read_text()


def test_leftovers_of_a_finished_frame_are_killed(runner, helpers, tmp_path):
    pidfile = tmp_path / "bg.pid"
    cmd = f"sleep 300 & echo $! > {pidfile}; exit 0"
    attempt = runner.launch(helpers.launch("41.1", cmd))
    ex = wait_exit(runner, attempt)
    completion = runner.finish(attempt, ex)
    assert completion.exit_status == 0
    bg = int(pidfile.read_text())
    helpers.wait_until(lambda: helpers.gone([bg]), message="the background process to die")


def test_sample_measures_the_tree(runner, helpers):
    code = "import time; x = bytearray(30 * 1024 * 1024); time.sleep(300)"
    attempt = runner.launch(helpers.launch("42.1", [PY, "-c", code]))
    try:
        helpers.wait_until(lambda: runner.sample(attempt).rss > 30 * 1024 * 1024,
                           message="rss to reach 30 MiB")
        ra = runner.sample(attempt)
        assert ra.attempt_id == "42.1" and ra.pid == attempt.pid and ra.started > 0
        assert ra.peak_rss >= ra.rss
    finally:
        runner.terminate(attempt, "done", grace=0.5)
        completion = runner.finish(attempt, wait_exit(runner, attempt))
    assert completion.peak_rss > 30 * 1024 * 1024


def _orphan_group(cmd: str) -> tuple[subprocess.Popen, RunningRecord, list[int]]:
    proc = subprocess.Popen(["sh", "-c", cmd], start_new_session=True)
    leader = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    while not leader.children() and time.monotonic() < deadline:
        time.sleep(0.05)
    kids = [k.pid for k in leader.children(recursive=True)]
    assert kids
    record = RunningRecord("50.1", proc.pid, leader.create_time(), os.getpgid(proc.pid),
                           time.time())
    return proc, record, [proc.pid, *kids]


def test_orphan_group_is_killed(helpers, tmp_path):
    proc, record, pids = _orphan_group("sleep 300 & sleep 300 & wait")
    state = StateDir(tmp_path / "state")
    state.open()
    state.save_running(record)
    [loaded] = state.load_running()
    assert rn.kill_orphan(loaded) >= 3
    proc.wait(60)
    helpers.wait_until(lambda: helpers.gone(pids), message="the orphan group to die")
    state.close()


def test_orphan_group_without_its_leader_is_killed(helpers):
    proc, record, pids = _orphan_group("sleep 300 & wait")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(60)               # the leader is gone; its sleeping child keeps the group alive
    assert not helpers.gone(pids[1:])
    assert rn.kill_orphan(record) == 1
    helpers.wait_until(lambda: helpers.gone(pids), message="the leaderless group to die")


def test_a_reused_pid_is_not_killed(helpers):
    # The record names a live pid, but with another start time: it is someone else now.
    proc, record, pids = _orphan_group("sleep 300 & wait")
    try:
        record.create_time -= 1000.0
        assert rn.kill_orphan(record) == 0
        time.sleep(0.2)
        assert not helpers.gone(pids)
    finally:
        os.killpg(record.pgid, signal.SIGKILL)
        proc.wait(60)


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="pidfds are Linux only")
def test_exits_come_through_pidfds_in_the_poller_without_threads(tmp_path, helpers):
    import threading

    import zmq
    poller = zmq.Poller()
    runner = rn.Runner("w1", tmp_path / "logs", poller=poller)
    codes = {"30.1": 0, "31.1": 3, "32.1": 7}
    attempts = {aid: runner.launch(helpers.launch(aid, [PY, "-c", f"raise SystemExit({c})"]))
                for aid, c in codes.items()}
    assert len(runner.pidfds) == 3
    assert not [t for t in threading.enumerate() if t.name.startswith("watch-")]
    exits: dict[str, rn.Exit] = {}
    deadline = time.monotonic() + 60
    while len(exits) < 3 and time.monotonic() < deadline:
        runner.reap(dict(poller.poll(100)))
        while not runner.exits.empty():
            ex = runner.exits.get_nowait()
            exits[ex.attempt_id] = ex
    assert {aid: ex.exit_status for aid, ex in exits.items()} == codes
    assert runner.pidfds == {}              # each pidfd closed and out of the poller
    for aid, ex in exits.items():
        c = runner.finish(attempts[aid], ex)
        assert c.exit_status == codes[aid] and ex.max_rss > 0
    runner.close()


def test_the_record_of_a_launch_finds_the_same_process_after_a_crash(runner, helpers, tmp_path):
    # The create time in the record is psutil's own figure, whatever the command's name holds
    # (its name shows in /proc between parentheses): the kill after a crash trusts it.
    odd = tmp_path / "a) b (c"
    odd.symlink_to(PY)
    attempt = runner.launch(helpers.launch("43.1", [str(odd), "-c", "import time; "
                                                                     "time.sleep(300)"]))
    try:
        record = attempt.record()
        assert abs(record.create_time - psutil.Process(attempt.pid).create_time()) < 0.01
        assert attempt.proc is not None and attempt.proc.pid == attempt.pid
        assert rn.kill_orphan(record) >= 1
        assert wait_exit(runner, attempt).exit_status == -signal.SIGKILL
    finally:
        runner.kill_tree(attempt)


def test_one_look_at_the_process_table_samples_every_tree(runner, helpers):
    from rqd import machine
    attempts = [runner.launch(helpers.launch(f"44.{i}", ["sh", "-c", "sleep 300 & sleep 300 & "
                                                                      "wait"]))
                for i in (1, 2)]
    try:
        helpers.wait_until(lambda: all(len(a.proc.children(recursive=True)) == 2
                                       for a in attempts), message="both trees to start")
        together = machine.sample_trees([a.proc for a in attempts])
        for a, s in zip(attempts, together):
            alone = machine.sample_tree(a.proc)
            assert s is not None and alone is not None
            assert ({d.pid for d in s.descendants} == {d.pid for d in alone.descendants}
                    == {d.pid for d in a.proc.children(recursive=True)})
            assert s.rss > 0
        reports = runner.sample_all(attempts)
        assert [r.attempt_id for r in reports] == ["44.1", "44.2"]
        assert all(r.rss > 0 and len(a.descendants) == 2 for r, a in zip(reports, attempts))
    finally:
        for a in attempts:
            runner.kill_tree(a)
    for a in attempts:
        wait_exit(runner, a)
    assert machine.sample_trees([attempts[0].proc]) == [None]     # reaped: gone
