"""The `cuefarm` command line against a real supervisor and real workers, and `cuefarm up`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from cuefarm import Client, CueFarmError
from tests.farm import PostgresDatabase, answers, free_port_block, marked_processes, wait_until

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="uses POSIX signals")


def submit(farm, tmp_path: Path, text: str) -> int:
    path = tmp_path / "job.yaml"
    path.write_text(textwrap.dedent(text))
    result = farm.cli("submit", str(path))
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    return int(result.stdout.strip())


@pytest.fixture
def worker_farm(sqlite_farm):
    sqlite_farm.start_rqd("w1", 2)
    sqlite_farm.wait_hosts_up(["w1"])
    return sqlite_farm


def test_submit_query_and_control(worker_farm, tmp_path):
    farm = worker_farm
    job_id = submit(farm, tmp_path, """\
        name: mixed
        project: demo
        layers:
          - name: say
            command: ["sh", "-c", "echo frame #FRAME#"]
            range: 1-4
          - name: fail
            command: ["sh", "-c", "echo failing >&2; exit 3"]
            range: "1"
            max_retries: 0
        """)
    result = farm.cli("wait", str(job_id), "--timeout", "120")
    assert result.exit_code == 1, result.output      # one dead frame
    assert "1 dead" in result.stdout

    [job] = json.loads(farm.cli("jobs", "--project", "demo", "--json").stdout)
    assert (job["id"], job["name"], job["succeeded"], job["dead"]) == (job_id, "mixed", 4, 1)
    table = farm.cli("jobs").stdout
    assert "mixed" in table and "4/5" in table

    assert json.loads(farm.cli("job", str(job_id), "--json").stdout)["id"] == job_id
    layers = json.loads(farm.cli("layers", str(job_id), "--json").stdout)
    assert [la["name"] for la in layers] == ["say", "fail"]

    [dead] = json.loads(farm.cli("frames", str(job_id), "--state", "dead", "--json").stdout)
    assert (dead["layer"], dead["exit_status"], dead["host"]) == ("fail", 3, "w1")
    frames_table = farm.cli("frames", str(job_id), "--layer", "say").stdout
    assert frames_table.count("SUCCEEDED") == 4

    log = farm.cli("log", str(job_id), "--layer", "say", "--frame", "3")
    assert log.exit_code == 0 and "frame 3" in log.stdout
    log = farm.cli("log", str(job_id), "--layer", "fail", "--frame", "1", "--tail", "400")
    assert "failing" in log.stdout and len(log.stdout.encode()) <= 400

    result = farm.cli("retry", str(job_id), "--layer", "fail", "--frame", "1")
    assert result.exit_code == 0 and "requeued 1 frame" in result.stdout
    result = farm.cli("wait", str(job_id), "--timeout", "120")
    assert result.exit_code == 1, result.output      # it fails again
    [again] = json.loads(farm.cli("frames", str(job_id), "--state", "DEAD", "--json").stdout)
    assert again["attempt"] == 2

    result = farm.cli("eat", str(job_id))
    assert result.exit_code == 0 and "ate 1 frame" in result.stdout
    result = farm.cli("wait", str(job_id), "--timeout", "60")
    assert result.exit_code == 0, result.output

    result = farm.cli("job", "999999")
    assert result.exit_code == 1 and result.stderr.startswith("error: ")


def test_pause_priority_kill(worker_farm, tmp_path):
    farm = worker_farm
    job_id = submit(farm, tmp_path, """\
        name: slow
        layers: [{name: nap, command: [sleep, "30"], range: 1-4}]
        """)
    assert farm.cli("pause", str(job_id)).exit_code == 0
    assert json.loads(farm.cli("job", str(job_id), "--json").stdout)["state"] == "PAUSED"
    assert farm.cli("resume", str(job_id)).exit_code == 0
    assert farm.cli("priority", str(job_id), "-5").exit_code == 0
    row = json.loads(farm.cli("job", str(job_id), "--json").stdout)
    assert (row["state"], row["priority"]) == ("ACTIVE", -5)
    result = farm.cli("kill", str(job_id))
    assert result.exit_code == 0 and "killed 4 frames" in result.stdout
    result = farm.cli("wait", str(job_id), "--timeout", "60")
    assert result.exit_code == 1 and "killed" in result.stdout


def test_lock_and_unlock_hosts(worker_farm):
    farm = worker_farm
    assert "locked 1 host" in farm.cli("lock", "w1").stdout
    [host] = json.loads(farm.cli("hosts", "--json").stdout)
    assert (host["name"], host["lock"]) == ("w1", "LOCKED")
    assert "w1" in farm.cli("hosts").stdout
    assert "unlocked 1 host" in farm.cli("unlock", "w1").stdout
    [host] = json.loads(farm.cli("hosts", "--json").stdout)
    assert host["lock"] == "OPEN"


def test_log_follow(worker_farm, tmp_path):
    farm = worker_farm
    job_id = submit(farm, tmp_path, """\
        name: ticker
        layers:
          - name: tick
            command: ["sh", "-c", "for i in 1 2 3 4 5; do echo tick $i; sleep 0.4; done"]
            range: "1"
        """)
    client = farm.client()

    def running():
        frames = client.frames(job_id, states=["RUNNING", "SUCCEEDED"])
        if not frames:
            return False
        try:
            client.log(job_id, "tick", 1, limit=1)
            return True
        except CueFarmError:
            return False

    wait_until(running, 60, message="the frame to start")
    result = farm.cli("log", str(job_id), "--layer", "tick", "--frame", "1", "--follow")
    assert result.exit_code == 0, result.output
    assert all(f"tick {i}" in result.stdout for i in range(1, 6))
    assert "exit status: 0" in result.stdout
    # The job has one layer: the frame number alone names the frame.
    result = farm.cli("log", str(job_id), "--frame", "1")
    assert result.exit_code == 0 and "tick 5" in result.stdout, result.output


# --- scheduling commands -------------------------------------------------------------------------

def test_limits_and_projects(sqlite_farm):
    farm = sqlite_farm
    result = farm.cli("limits", "set", "arnold", "2")
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    assert json.loads(farm.cli("limits", "--json").stdout) == [
        {"name": "arnold", "max": 2, "per_host": False, "in_use": 0}]
    assert farm.cli("limits", "set", "arnold", "3", "--per-host").exit_code == 0
    assert "arnold" in farm.cli("limits").stdout
    [arnold] = json.loads(farm.cli("limits", "--json").stdout)
    assert (arnold["max"], arnold["per_host"]) == (3, True)
    assert farm.cli("limits", "delete", "arnold").exit_code == 0
    assert json.loads(farm.cli("limits", "--json").stdout) == []
    result = farm.cli("limits", "delete", "arnold")
    assert result.exit_code == 1 and result.stderr == "error: no limit named 'arnold'\n"

    result = farm.cli("projects", "set", "demo", "--guaranteed", "2", "--max", "4")
    assert result.exit_code == 0, result.output
    demo = {r["name"]: r for r in json.loads(farm.cli("projects", "--json").stdout)}["demo"]
    assert (demo["guaranteed"], demo["max_slots"], demo["slots_used"]) == (2, 4, 0)
    assert farm.cli("projects", "set", "demo", "--unlimited").exit_code == 0
    demo = {r["name"]: r for r in json.loads(farm.cli("projects", "--json").stdout)}["demo"]
    assert (demo["guaranteed"], demo["max_slots"]) == (2, None)
    result = farm.cli("projects", "set", "demo", "--guaranteed", "5", "--max", "4")
    assert result.exit_code == 1 and result.stderr.startswith("error: --guaranteed: ")


def test_why_job_set_and_layer_set(sqlite_farm, tmp_path):
    farm = sqlite_farm
    job_id = submit(farm, tmp_path, """\
        name: nowhere
        layers: [{name: render, command: [echo, "#FRAME#"], range: 1-3}]
        """)
    result = farm.cli("why", str(job_id))
    assert result.exit_code == 0, result.output
    assert "no worker is UP" in result.stdout
    answer = json.loads(farm.cli("why", str(job_id), "--layer", "render", "--frame", "2",
                                 "--json").stdout)
    assert answer["job_id"] == job_id and any("no worker is UP" in r for r in answer["reasons"])
    result = farm.cli("why", str(job_id), "--layer", "nope")
    assert result.exit_code == 1 and result.stderr.startswith(
        f"error: --layer: job {job_id} has no layer 'nope'")

    result = farm.cli("job", "set", str(job_id), "--priority", "80", "--max-slots", "3",
                      "--project", "fx")
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    row = json.loads(farm.cli("job", str(job_id), "--json").stdout)
    assert (row["priority"], row["project"]) == (80, "fx")
    result = farm.cli("job", "set", str(job_id), "--min-slots", "4")
    assert result.exit_code == 1 and "max_slots" in result.stderr

    result = farm.cli("layer", "set", str(job_id), "render", "--requirements", "mem > 4")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: --requirements: "), result.stderr
    result = farm.cli("layer", "set", str(job_id), "render", "--tags", "gpu",
                      "--requirements", "host.memory >= 1", "--slots", "2+", "--memory", "100")
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    result = farm.cli("layer", "set", str(job_id), "render", "--limits", "no-such-limit")
    assert result.exit_code == 1 and result.stderr.startswith("error: --limits: ")


def test_deps_of_a_two_layer_job(sqlite_farm, tmp_path):
    farm = sqlite_farm
    job_id = submit(farm, tmp_path, """\
        name: two
        layers:
          - {name: render, command: [echo, "#FRAME#"], range: 1-3}
          - {name: comp, command: [echo, "#FRAME#"], range: 1-3, depends_on: [render]}
        """)
    [dep] = json.loads(farm.cli("deps", str(job_id), "--json").stdout)
    assert (dep["layer"], dep["target_job_id"], dep["target_layer"], dep["satisfied"]) == \
        ("comp", job_id, "render", False)
    header, row = farm.cli("deps", str(job_id)).stdout.splitlines()
    assert header.split()[:3] == ["ID", "KIND", "LAYER"]
    assert row.split()[:3] == [str(dep["id"]), dep["kind"], "comp"]
    assert "waiting for layer 'render'" in farm.cli("why", str(job_id), "--layer",
                                                     "comp").stdout

    result = farm.cli("deps", "satisfy", str(job_id), str(dep["id"]))
    assert result.exit_code == 0, result.output + farm.supervisor_log()
    [dep] = json.loads(farm.cli("deps", "list", str(job_id), "--json").stdout)
    assert dep["satisfied"] is True
    assert farm.cli("deps", "drop", str(job_id), str(dep["id"])).exit_code == 0
    assert json.loads(farm.cli("deps", str(job_id), "--json").stdout) == []
    result = farm.cli("deps", "drop", str(job_id), str(dep["id"]))
    assert result.exit_code == 1 and result.stderr.startswith(
        f"error: job {job_id} has no dependency {dep['id']}")


def test_hosts_next(worker_farm, tmp_path):
    farm = worker_farm
    assert farm.cli("lock", "w1").exit_code == 0
    job_id = submit(farm, tmp_path, """\
        name: queued
        layers: [{name: render, command: [echo, "#FRAME#"], range: 1-5}]
        """)
    rows = json.loads(farm.cli("hosts", "next", "w1", "--limit", "3", "--json").stdout)
    assert [(r["job_id"], r["layer"], r["frame"]) for r in rows] == [
        (job_id, "render", "1"), (job_id, "render", "2"), (job_id, "render", "3")]
    result = farm.cli("hosts", "next", "w1")
    assert result.exit_code == 0 and "queued" in result.stdout and "locked" in result.stderr
    result = farm.cli("hosts", "next", "nobody")
    assert result.exit_code == 1 and result.stderr.startswith("error: no host named 'nobody'")
    assert [h["name"] for h in json.loads(farm.cli("hosts", "--json").stdout)] == ["w1"]
    assert farm.cli("unlock", "w1").exit_code == 0
    assert farm.cli("wait", str(job_id), "--timeout", "120").exit_code == 0


# --- cuefarm up ----------------------------------------------------------------------------------

def up_env(tmp_path: Path, display: bool = False) -> dict[str, str]:
    """The environment of a `cuefarm up` under test: no config file, a display only if asked."""
    env = {**os.environ, "CUEFARM_CONFIG": str(tmp_path / "none.toml"), "PYTHONUNBUFFERED": "1"}
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    if display:
        # `up` decides from DISPLAY; the client itself then runs on Qt's offscreen platform.
        env.update(DISPLAY=":0", QT_QPA_PLATFORM="offscreen")
    return env


def start_up(tmp_path: Path, *extra: str, display: bool = False, port: int | None = None,
             terminal: int | None = None) -> tuple[subprocess.Popen, str]:
    """`cuefarm up` with one worker of one slot on free ports (or `port`), its output piped
    (or on the `terminal` given, a pty's end), in a session of its own as a shell's job is."""
    port = port or free_port_block()
    out: dict = ({"stdin": terminal, "stdout": terminal, "stderr": terminal} if terminal
                 else {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True})
    proc = subprocess.Popen(
        [sys.executable, "-m", "cuefarm.cli", "up", "--port", str(port), "--workers", "1",
         "--slots", "1", "--data-dir", str(tmp_path / "farm"), *extra],
        env=up_env(tmp_path, display), start_new_session=True, preexec_fn=terminal_signals,
        **out)
    return proc, f"127.0.0.1:{port}"


def terminal_signals() -> None:
    """Ctrl-C and hangup as a terminal's foreground job gets them (a test run in the
    background inherits them ignored, and `up` keeps an ignored signal ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def hosts_up(address: str) -> list[dict]:
    try:
        with Client(address, timeout=1) as client:
            return [h for h in client.hosts() if h["state"] == "UP"]
    except CueFarmError:
        return []


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        for child in psutil.Process(proc.pid).children(recursive=True):
            child.kill()
        proc.kill()
    proc.communicate(timeout=30)


def test_up_runs_a_farm_and_stops_in_order_on_sigterm(tmp_path):
    proc, address = start_up(tmp_path)
    try:
        wait_until(lambda: hosts_up(address), 60, message="a worker of `cuefarm up`")
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2    # the supervisor and one worker (no display, no GUI)
        with Client(address, timeout=15) as client:
            [job_id] = client.submit({"name": "hi", "layers": [
                {"name": "say", "command": ["echo", "#FRAME#"], "range": "1-3"}]})
            assert client.wait(job_id, timeout=120)["succeeded"] == 3
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, out
    assert f"CueFarm is running at {address}" in out
    assert str(tmp_path / "farm" / "cuefarm.db") in out
    port = int(address.rsplit(":", 1)[1])
    assert f"metrics:   http://127.0.0.1:{port + 3}/metrics" in out
    assert out.count("the desktop client is not opened") == 1
    assert out.index("stopping worker") < out.index("stopping supervisor")
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive
    assert (tmp_path / "farm" / "logs" / "supervisor.log").exists()


def test_up_exits_when_the_supervisor_dies(tmp_path):
    proc, address = start_up(tmp_path)
    try:
        wait_until(lambda: hosts_up(address), 60, message="a worker of `cuefarm up`")
        children = psutil.Process(proc.pid).children()
        [sup] = [c for c in children if "supervisor" in c.cmdline()]
        sup.kill()
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 1, out
    assert "the supervisor exited" in out
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


def test_up_refuses_a_port_already_served(sqlite_farm, tmp_path):
    port = sqlite_farm.port
    result = subprocess.run(
        [sys.executable, "-m", "cuefarm.cli", "up", "--port", str(port), "--no-gui",
         "--data-dir", str(tmp_path / "farm")],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"already answers at 127.0.0.1:{port}" in result.stderr


def test_up_opens_the_desktop_client_when_there_is_a_display(tmp_path):
    proc, address = start_up(tmp_path, display=True)
    try:
        wait_until(lambda: hosts_up(address), 60, message="a worker of `cuefarm up`")
        children = psutil.Process(proc.pid).children()
        gui = [c for c in children if "cuegui" in c.cmdline()]
        assert len(gui) == 1 and gui[0].cmdline()[-2:] == ["--supervisor", address]
        proc.send_signal(signal.SIGINT)   # what Ctrl-C sends
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, out
    assert out.index("stopping worker") < out.index("stopping gui") < \
        out.index("stopping supervisor")
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive


@pytest.mark.postgres
def test_up_takes_a_postgres_url_as_postgresql(require_postgres, tmp_path):
    with PostgresDatabase() as db:
        spelled = db.url.replace("postgresql://", "postgres://", 1)
        proc, address = start_up(tmp_path, "--db", spelled, "--workers", "0", "--no-gui")
        try:
            out = ""
            while "Press Ctrl-C" not in out and proc.poll() is None:
                out += proc.stdout.readline()
            assert _answers(address), out
            proc.send_signal(signal.SIGTERM)
            out += proc.communicate(timeout=60)[0]
        finally:
            stop(proc)
    assert proc.returncode == 0, out
    assert f"database:  {db.url}" in out
    assert "desktop client" not in out      # --no-gui: nothing said


def _answers(address: str) -> bool:
    with Client(address, timeout=1) as client:
        return answers(client)


# --- however `up` ends, nothing of its farm is left running ------------------------------

def running_frame(address: str, marker: str, command: str = "sleep 300") -> None:
    """Submit a long frame marked `marker` and wait until it runs."""
    wait_until(lambda: hosts_up(address), 60, message="a worker of `cuefarm up`")
    with Client(address, timeout=15) as client:
        client.submit({"name": "long", "layers": [
            {"name": "a", "command": command, "range": "1", "env": {"MARKER": marker}}]})
    wait_until(lambda: marked_processes(marker), 60, message="the frame to run")


def assert_all_gone(procs: list[psutil.Process], marker: str) -> None:
    _, alive = psutil.wait_procs(procs, timeout=30)
    assert not alive, alive
    assert not marked_processes(marker)


def assert_up_starts_again(tmp_path: Path, address: str) -> None:
    """A second `cuefarm up` on the same port and data directory runs, and stops."""
    proc, _ = start_up(tmp_path, port=int(address.rsplit(":", 1)[1]))
    try:
        wait_until(lambda: hosts_up(address), 60, message="the second `cuefarm up`")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 0, out


def test_up_stops_its_farm_when_its_terminal_closes(tmp_path):
    import pty
    master, slave = pty.openpty()
    proc, address = start_up(tmp_path, terminal=slave)
    os.close(slave)
    marker = f"hup-{proc.pid}"
    try:
        running_frame(address, marker)
        procs = psutil.Process(proc.pid).children(recursive=True)
        os.close(master)                    # the terminal window closes: writes now fail
        proc.send_signal(signal.SIGHUP)
        assert proc.wait(60) == 0
        assert_all_gone(procs, marker)
    finally:
        stop(proc)
    assert_up_starts_again(tmp_path, address)


def test_up_stops_its_farm_on_a_second_ctrl_c(tmp_path):
    proc, address = start_up(tmp_path)
    marker = f"int-{proc.pid}"
    try:
        # A frame that ignores SIGTERM: its worker waits out its grace before killing it.
        running_frame(address, marker, "trap '' TERM; sleep 300")
        procs = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        out = ""
        while "stopping worker" not in out:
            out += proc.stdout.readline()
        proc.send_signal(signal.SIGINT)     # impatient: the stop hurries, it is not abandoned
        out += proc.communicate(timeout=60)[0]
        assert proc.returncode == 0, out
        assert out.index("stopping worker") < out.index("stopping supervisor")
        assert_all_gone(procs, marker)
    finally:
        stop(proc)
    assert_up_starts_again(tmp_path, address)


def test_the_farm_stops_by_itself_when_up_is_killed(tmp_path):
    proc, address = start_up(tmp_path, display=True)
    marker = f"kill-{proc.pid}"
    try:
        running_frame(address, marker)
        procs = psutil.Process(proc.pid).children(recursive=True)
        assert any("cuegui" in p.cmdline() for p in procs)    # the desktop client too
        proc.kill()
        proc.communicate(timeout=30)
        assert_all_gone(procs, marker)
    finally:
        stop(proc)
    assert_up_starts_again(tmp_path, address)


def test_up_in_the_background_and_down(tmp_path):
    port = free_port_block()
    address = f"127.0.0.1:{port}"
    farm_dir = tmp_path / "farm"
    cuefarm = [sys.executable, "-m", "cuefarm.cli"]
    started = subprocess.run(
        [*cuefarm, "up", "--background", "--port", str(port), "--workers", "1", "--slots", "1",
         "--data-dir", str(farm_dir)], env=up_env(tmp_path), capture_output=True, text=True,
        timeout=120)
    record = json.loads((farm_dir / "up.json").read_text())
    marker = f"bg-{record['pid']}"
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"running in the background at {address} (pid {record['pid']})" in started.stdout
        assert f"cuefarm down --data-dir {farm_dir}" in started.stdout
        running_frame(address, marker)
        procs = [psutil.Process(record["pid"])]
        procs += procs[0].children(recursive=True)
        again = subprocess.run([*cuefarm, "up", "--port", str(port + 10), "--data-dir",
                                str(farm_dir)], env=up_env(tmp_path), capture_output=True,
                               text=True, timeout=60)
        assert again.returncode == 1 and "already runs from" in again.stderr
        down = subprocess.run([*cuefarm, "down", "--data-dir", str(farm_dir)],
                              env=up_env(tmp_path), capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stdout + down.stderr
        assert_all_gone(procs, marker)
        assert not (farm_dir / "up.json").exists()
        log = (farm_dir / "logs" / "up.log").read_text()
        assert log.index("stopping worker") < log.index("stopping supervisor")
    finally:
        if psutil.pid_exists(record["pid"]):   # the test failed: leave nothing behind
            up = psutil.Process(record["pid"])
            for proc in [up, *up.children(recursive=True)]:
                proc.kill()
    none = subprocess.run([*cuefarm, "down", "--data-dir", str(farm_dir)],
                          env=up_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert none.returncode == 1 and f"no farm started by `cuefarm up` runs from {farm_dir}" \
        in none.stderr
    assert_up_starts_again(tmp_path, address)
