"""The `cuefarm` command line, without a real supervisor.

Parsing and local validation need no peer at all; output and requests are checked against
`FakeSupervisor` (tests/cuefarm/conftest.py), a real ZeroMQ peer speaking the real protocol.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
from functools import partial
from pathlib import Path

import pytest

from cuefarm.cli import logs as cli_logs
from cuefarm import protocol as p
from cuefarm import spec
from cuefarm.cli import cli
from cuefarm.client import CONNECT_TIMEOUT, Client
from tests import rows
from tests.farm import run_cli

# Rows as the supervisor sends them (every key, typed: tests.rows builds them on cuefarm.rows).
JOB_ROW = rows.job(12, name="shot010_comp", project="demo", priority=60, status="running",
                   submitted_at=1.7e9, started_at=1.7e9 + 5, frames_total=50, waiting=8,
                   depend=2, running=3, succeeded=35, eaten=2, slots_used=3)
LAYER_ROW = rows.layer(4, job_id=12, name="render", command=["render", "-f", "#FRAME#"],
                       range="1-50", frames_total=50, waiting=8, depend=2, running=3,
                       succeeded=35, eaten=2)
FRAME_ROW = rows.frame(77, job_id=12, layer_id=4, number=7, frames="7", frame_start=7,
                       frame_end=7, state="DEAD", host="node1",
                       attempt=2, attempt_id="77.2", attempt_state="FAILED", started_at=1.7e9,
                       stopped_at=1.7e9 + 3723, runtime=3723.0, peak_rss=512 * 1024 * 1024,
                       cpu_time=100.0, exit_status=3, retries=1)
HOST_ROW = rows.host(1, name="node1", hostname="node1.example", cores=8, memory_free_mb=12288,
                     slots=8, slots_total=8, slots_configured=8, slots_used=3, load=2.5,
                     cpu_percent=30.0, last_seen=1.7e9, running=3)

GOOD_JOB = {"name": "hello", "layers": [{"name": "say", "command": ["echo", "#FRAME#"],
                                          "range": "1-3"}]}


# Against a simulated supervisor, a reply comes at once or not at all.
run = partial(run_cli, timeout="5")


# --- no peer at all ------------------------------------------------------------------------------

def test_help_lists_builtin_and_program_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in ["submit", "jobs", "job", "layers", "frames", "hosts", "log", "pause", "resume",
                 "kill", "retry", "eat", "priority", "lock", "unlock", "wait", "up",
                 "supervisor", "rqd", "gui"]:
        assert f"\n  {name} " in result.output, name


def test_unknown_command_is_a_usage_error(runner):
    result = runner.invoke(cli, ["frobnicate"])
    assert result.exit_code == 2 and "No such command" in result.output


def write_file(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_submit_invalid_file_names_the_field_without_contacting(tmp_path, fake_supervisor):
    path = write_file(tmp_path, "bad.yaml", """\
        name: bad
        layers:
          - name: render
            command: [render, "#FRAME#"]
            range: 1-10x0
        """)
    result = run(fake_supervisor.address, "submit", path)
    assert result.exit_code == 1
    assert f"{path}: jobs[0].layers[0].range" in result.stderr
    assert "step 0" in result.stderr
    assert "Traceback" not in result.output
    assert fake_supervisor.requests == []


def test_submit_invalid_second_job_in_a_json_list(tmp_path, unreachable_address):
    bad = dict(GOOD_JOB, priority=True)
    path = write_file(tmp_path, "jobs.json", json.dumps([GOOD_JOB, bad]))
    result = run(unreachable_address, "submit", path, timeout="0.2")
    assert result.exit_code == 1
    assert "jobs[1].priority" in result.stderr and "whole number" in result.stderr


@pytest.mark.parametrize("name,text,message", [
    ("broken.json", "{\"name\": ", "not valid JSON"),
    ("broken.yaml", "name: [unclosed", "not valid YAML"),
    ("empty.yaml", "", "a job is a mapping"),
    ("scalar.yaml", "just words", "a job is a mapping"),
    ("dup.json", '{"name": "a", "name": "b", "layers": []}', "duplicate key 'name'"),
    ("dup.yaml", "name: a\nlayers:\n  - {name: l, command: x, range: 1-3, range: 5}\n",
     "duplicate key 'range'"),
    ("bytes.yaml", "\udcff", "cannot read"),
])
def test_submit_unreadable_files(tmp_path, unreachable_address, name, text, message):
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    path = str(path)
    result = run(unreachable_address, "submit", path, timeout="0.2")
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.output


def test_yaml_merge_keys_may_be_overridden(tmp_path, unreachable_address):
    path = write_file(tmp_path, "merge.yaml", """\
        - &base {name: x, layers: [{name: l, command: c, range: "1"}]}
        - <<: *base
          name: y
        """)
    result = run(unreachable_address, "submit", "--check", path, timeout="0.2")
    assert result.exit_code == 0, result.output
    assert [line.split(":")[0] for line in result.stdout.splitlines()] == ["x", "y"]


def test_submit_missing_file_is_a_usage_error(tmp_path, unreachable_address):
    result = run(unreachable_address, "submit", str(tmp_path / "nope.yaml"))
    assert result.exit_code in (1, 2)
    assert "nope.yaml" in result.stderr


def test_submit_check_validates_locally(tmp_path, unreachable_address):
    job = {"name": "big", "layers": [{"name": "a", "command": "x", "range": "1-100", "chunk": 10},
                                     {"name": "b", "command": "x", "range": "1-5"}]}
    path = write_file(tmp_path, "job.json", json.dumps(job))
    result = run(unreachable_address, "submit", "--check", path, timeout="0.2")
    assert result.exit_code == 0, result.output
    assert "big: project default, priority 50, 2 layer(s), 105 frame(s) in 15 task(s)" \
        in result.stdout


def test_unreachable_supervisor_exits_2(unreachable_address):
    result = run(unreachable_address, "jobs", timeout="0.3")
    assert result.exit_code == 2
    assert unreachable_address in result.stderr
    assert "cannot connect" in result.stderr and "cuefarm up" in result.stderr
    assert "Traceback" not in result.output


def test_a_supervisor_that_is_not_there_is_told_before_the_reply_timeout(unreachable_address):
    # The reply timeout stays 30 s; nothing listening is told after the connection wait.
    result = run(unreachable_address, "jobs", timeout="30")
    assert result.exit_code == 2
    assert (f"cannot connect to the supervisor at {unreachable_address} (nothing answered "
            f"within {CONNECT_TIMEOUT:g} s)") in result.stderr


def test_a_slow_reply_is_waited_for_once_the_supervisor_is_there(fake_supervisor):
    def slow(name, body):
        time.sleep(0.6)    # longer than the connection wait below
        return p.Rows(rows=[])
    fake_supervisor.handler = slow
    with Client(fake_supervisor.address, timeout=30, connect_timeout=0.2) as client:
        assert client.jobs() == []


def test_unreachable_via_environment(runner, unreachable_address):
    result = runner.invoke(cli, ["hosts"], env={"CUEFARM_SUPERVISOR": unreachable_address,
                                                "CUEFARM_TIMEOUT": "0.3"})
    assert result.exit_code == 2
    assert unreachable_address in result.stderr and "0.3 s" in result.stderr


@pytest.mark.parametrize("args", [
    ["job", "abc"], ["job", "0"], ["job", "-3"], ["job", "1.5"], ["job", "\uff11"],
    ["layers"], ["pause"], ["pause", "1", "x"], ["priority", "1"], ["priority", "1", "high"],
    ["frames", "1", "--state", "BURNING"],
    ["log", "1", "--layer", "a", "--frame", "x"], ["log", "1", "--layer", "a", "--frame", "1",
                                                    "--tail", "0"],
    ["lock"], ["wait", "1", "--timeout", "-1"], ["up", "--workers", "-1"],
    ["up", "--port", "65534"],
])
def test_bad_arguments_are_usage_errors(unreachable_address, args):
    result = run(unreachable_address, *args, timeout="0.2")
    assert result.exit_code == 2, result.output
    assert "Usage:" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("address", ["nohost:", "host:port", "host:70000", ""])
def test_bad_supervisor_address_is_a_usage_error(runner, address):
    result = runner.invoke(cli, ["--supervisor", address, "jobs"])
    assert result.exit_code == 2
    assert "--supervisor" in result.stderr


def test_bad_timeout_is_a_usage_error(runner):
    assert runner.invoke(cli, ["--timeout", "0", "jobs"]).exit_code == 2
    assert runner.invoke(cli, ["jobs"], env={"CUEFARM_TIMEOUT": "soon"}).exit_code == 2


# --- against a simulated supervisor --------------------------------------------------------------

def test_submit_sends_the_jobs_and_prints_ids(tmp_path, fake_supervisor):
    yaml_path = write_file(tmp_path, "two.yaml", """\
        - name: a
          layers: [{name: l, command: "echo #FRAME#", range: "1-2"}]
        - name: b
          layers: [{name: l, command: [echo, hi], range: 5}]
        """)
    json_path = write_file(tmp_path, "one.json", json.dumps(GOOD_JOB))
    fake_supervisor.handler = lambda name, body: p.JobIds(job_ids=[7, 8, 9])
    result = run(fake_supervisor.address, "submit", yaml_path, json_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["7", "8", "9"]
    [(name, body)] = fake_supervisor.requests
    assert name == "submit"
    assert [j["name"] for j in body.jobs] == ["a", "b", "hello"]
    assert body.jobs[2] == GOOD_JOB

    result = run(fake_supervisor.address, "submit", "--json", json_path)
    assert json.loads(result.stdout) == [7, 8, 9]


def test_submit_from_stdin(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.JobIds(job_ids=[3])
    result = run(fake_supervisor.address, "submit", "-", input=json.dumps(GOOD_JOB))
    assert result.exit_code == 0 and result.stdout.strip() == "3"


def test_supervisor_errors_name_the_field(tmp_path, fake_supervisor):
    path = write_file(tmp_path, "job.json", json.dumps(GOOD_JOB))
    fake_supervisor.handler = lambda name, body: p.Error(
        "bad_spec", "no such project", field="jobs[0].project")
    result = run(fake_supervisor.address, "submit", path)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {path}: jobs[0].project: no such project"


def test_error_without_field(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Error("not_found", "no job 99")
    result = run(fake_supervisor.address, "job", "99")
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no job 99"


def test_jobs_table_and_filters(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[JOB_ROW])
    result = run(fake_supervisor.address, "jobs", "--project", "demo", "--user", "ann",
                 "--active")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "PROJECT", "USER", "STATE", "STATUS", "SUCCEEDED",
                              "RUN", "WAIT", "DEP", "DEAD", "EATEN", "PRI"]
    assert row.split() == ["12", "shot010_comp", "demo", "ann", "ACTIVE", "running", "35/50",
                           "3", "8", "2", "0", "2", "60"]
    # Columns line up: each header starts where its column's widest cell starts or ends.
    assert header.index("NAME") == row.index("shot010_comp")
    [(name, body)] = fake_supervisor.requests
    assert name == "list_jobs"
    assert (body.project, body.user, body.include_finished) == ("demo", "ann", False)


def test_jobs_json(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[JOB_ROW, JOB_ROW])
    result = run(fake_supervisor.address, "jobs", "--json")
    assert json.loads(result.stdout) == [JOB_ROW, JOB_ROW]
    assert fake_supervisor.requests[0][1].include_finished is True


def test_job_shows_one_job(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Row(row=JOB_ROW)
    result = run(fake_supervisor.address, "job", "12")
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert lines["name"] == "shot010_comp" and lines["finished_at"] == "-"
    assert fake_supervisor.requests[0] == ("get_job", p.JobRef(12))
    result = run(fake_supervisor.address, "job", "12", "--json")
    assert json.loads(result.stdout) == JOB_ROW


def test_layers_table(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[LAYER_ROW])
    result = run(fake_supervisor.address, "layers", "12")
    assert result.exit_code == 0, result.output
    assert "render -f #FRAME#" in result.stdout and "35/50" in result.stdout
    assert fake_supervisor.requests[0] == ("list_layers", p.JobRef(12))


def test_frames_table_and_filters(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[FRAME_ROW])
    result = run(fake_supervisor.address, "frames", "12", "--layer", "render",
                 "--state", "dead,running", "--state", "Waiting")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == ["ID", "LAYER", "FRAME", "STATE", "PROGRESS", "HOST", "ATTEMPT",
                              "START", "RUNTIME", "PEAK", "MB", "EXIT", "REASON"]
    cells = row.split()
    assert cells[:6] == ["77", "render", "7", "DEAD", "node1", "2"]
    assert cells[-3:] == ["1:02:03", "512", "3"]
    [(name, body)] = fake_supervisor.requests
    assert name == "list_frames"
    assert (body.job_id, body.layer, body.states) == (12, "render", ["DEAD", "RUNNING", "WAITING"])


def test_frames_table_shows_the_progress_of_running_frames(fake_supervisor):
    running = rows.frame(78, job_id=12, state="RUNNING", host="node1", attempt=1,
                         attempt_id="78.1", attempt_state="RUNNING", started_at=1.7e9,
                         progress=45)
    done = rows.frame(79, job_id=12, state="SUCCEEDED", host="node1", attempt=1,
                      attempt_id="79.1", attempt_state="SUCCEEDED", started_at=1.7e9,
                      stopped_at=1.7e9 + 5, runtime=5.0, exit_status=0, progress=100)
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[running, done])
    result = run(fake_supervisor.address, "frames", "12")
    assert result.exit_code == 0, result.output
    _, first, second = result.stdout.splitlines()
    assert first.split()[3:6] == ["RUNNING", "45%", "node1"]
    assert second.split()[3:5] == ["SUCCEEDED", "node1"]     # ended: its state says it


def test_frames_json(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[FRAME_ROW])
    result = run(fake_supervisor.address, "frames", "12", "--json")
    assert json.loads(result.stdout) == [FRAME_ROW]
    assert fake_supervisor.requests[0][1].states is None


def test_hosts_table(fake_supervisor):
    locked = dict(HOST_ROW, name="node2", lock="LOCKED", slots_total=0, slots_used=16,
                  os="Windows")
    fake_supervisor.handler = lambda name, body: p.Rows(rows=[HOST_ROW, locked])
    result = run(fake_supervisor.address, "hosts")
    assert result.exit_code == 0, result.output
    _, first, second = result.stdout.splitlines()
    assert first.split() == ["node1", "UP", "OPEN", "3/8", "3", "8", "12.0/64.0", "2.50", "linux"]
    assert second.split()[:4] == ["node2", "UP", "LOCKED", "16/0"]
    result = run(fake_supervisor.address, "hosts", "--json")
    assert json.loads(result.stdout) == [HOST_ROW, locked]


@pytest.mark.parametrize("command,action,noun", [
    ("pause", "pause", "jobs"), ("resume", "resume", "jobs"), ("kill", "kill", "frames"),
    ("retry", "retry", "frames"), ("eat", "eat", "frames"),
])
def test_job_controls(fake_supervisor, command, action, noun):
    fake_supervisor.handler = lambda name, body: p.Done(count=2)
    result = run(fake_supervisor.address, command, "3", "4")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(f"2 {noun}")
    assert fake_supervisor.requests == [("job_control", p.JobControl(action, [3, 4]))]


@pytest.mark.parametrize("command", ["kill", "retry", "eat"])
def test_frame_controls(fake_supervisor, command):
    fake_supervisor.handler = lambda name, body: p.Done(count=3)
    result = run(fake_supervisor.address, command, "12", "--frame", "7,8", "--frame", "9-13x2",
                 "--layer", "render")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("3 frames")
    assert fake_supervisor.requests == [
        ("frame_control", p.FrameControl(command, 12, layer="render", numbers=[7, 8, 9, 11, 13]))]


@pytest.mark.parametrize("args", [["retry", "1", "2", "--frame", "7"],
                                  ["eat", "1", "--frame", "x"], ["kill", "1", "--frame", "1-"],
                                  ["kill", "1", "--layer", "render"],
                                  ["pause", "1", "--frame", "7"]])
def test_frame_control_usage_errors(fake_supervisor, args):
    result = run(fake_supervisor.address, *args)
    assert result.exit_code == 2, result.output
    assert fake_supervisor.requests == []


def test_priority_accepts_negative_values(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Done(count=1)
    result = run(fake_supervisor.address, "priority", "3", "-10")
    assert result.exit_code == 0, result.output
    assert fake_supervisor.requests == [("job_control", p.JobControl("priority", [3], -10))]


def test_lock_and_unlock(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Done(count=2)
    assert run(fake_supervisor.address, "lock", "n1", "n2", "--purge").exit_code == 0
    assert run(fake_supervisor.address, "unlock", "n1").exit_code == 0
    assert fake_supervisor.requests == [
        ("host_control", p.HostControl("lock", ["n1", "n2"], purge=True)),
        ("host_control", p.HostControl("unlock", ["n1"])),
    ]


class LogFile:
    """Serves a growing log the way the supervisor does: byte offsets (negative: from the end),
    bytes decoded with errors="replace"."""

    def __init__(self, data: bytes):
        self.data = data

    def chunk(self, body: p.GetLog) -> p.LogChunk:
        size = len(self.data)
        start = max(0, size + body.offset) if body.offset < 0 else min(body.offset, size)
        piece = self.data[start:start + body.limit]
        return p.LogChunk(attempt_id="77.2", host="node1", offset=start, size=size, data=piece)


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(cli_logs, "LOG_PAGE", 1000)


def test_log_pages_through_the_whole_file(fake_supervisor, small_pages):
    text = "".join(f"line {i}\n" for i in range(500))
    log = LogFile(text.encode())
    fake_supervisor.handler = lambda name, body: log.chunk(body)
    result = run(fake_supervisor.address, "log", "12", "--layer", "render", "--frame", "7")
    assert result.exit_code == 0, result.output
    assert result.stdout == text
    offsets = [body.offset for _, body in fake_supervisor.requests]
    assert offsets == list(range(0, len(log.data), 1000))
    # After the first page the attempt is pinned, so a retry cannot switch files midway.
    assert fake_supervisor.requests[0][1].attempt is None
    assert all(body.attempt == 2 for _, body in fake_supervisor.requests[1:])


def test_log_pages_of_non_ascii_text_lose_no_bytes(fake_supervisor, small_pages):
    # Pages split characters, but no byte is skipped or read twice.
    text = "".join(f"line {i} \u00e9t\u00e9\n" for i in range(500))
    log = LogFile(text.encode())
    fake_supervisor.handler = lambda name, body: log.chunk(body)
    result = run(fake_supervisor.address, "log", "12", "--layer", "render", "--frame", "7")
    assert result.exit_code == 0, result.output
    offsets = [body.offset for _, body in fake_supervisor.requests]
    assert offsets == list(range(0, len(log.data), 1000))
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == [str(i) for i in range(500)]


def test_log_pages_of_non_ascii_text_are_exact(fake_supervisor, small_pages):
    text = "".join(f"line {i} \u00e9t\u00e9\n" for i in range(500))
    log = LogFile(text.encode())
    fake_supervisor.handler = lambda name, body: log.chunk(body)
    result = run(fake_supervisor.address, "log", "12", "--layer", "render", "--frame", "7")
    assert result.stdout == text


def test_log_tail(fake_supervisor):
    log = LogFile(b"0123456789" * 10)
    fake_supervisor.handler = lambda name, body: log.chunk(body)
    result = run(fake_supervisor.address, "log", "12", "--layer", "render", "--frame",
                 "7", "--attempt", "1", "--tail", "15")
    assert result.exit_code == 0, result.output
    assert result.stdout == "567890123456789"
    first = fake_supervisor.requests[0][1]
    assert (first.offset, first.attempt, first.frame, first.layer) == (-15, 1, 7, "render")


def test_log_follow_reads_until_the_frame_stops(fake_supervisor, monkeypatch):
    monkeypatch.setattr(cli_logs, "FOLLOW_INTERVAL", 0.01)
    log = LogFile(b"start\n")
    polls = []

    def handler(name, body):
        if name == "list_frames":
            polls.append(1)
            # Each poll the frame writes a line; on the fourth it has finished.
            log.data += f"tick {len(polls)}\n".encode()
            state = "RUNNING" if len(polls) < 4 else "SUCCEEDED"
            return p.Rows(rows=[dict(FRAME_ROW, state=state)])
        return log.chunk(body)

    fake_supervisor.handler = handler
    result = run(fake_supervisor.address, "log", "12", "--layer", "render", "--frame",
                 "7", "--follow")
    assert result.exit_code == 0, result.output
    assert result.stdout == "start\ntick 1\ntick 2\ntick 3\ntick 4\n"


@pytest.mark.parametrize("row,code,words", [
    (dict(JOB_ROW, state="FINISHED", status="finished", succeeded=50, waiting=0, depend=0,
          running=0, eaten=0), 0, "finished: 50/50 succeeded"),
    (dict(JOB_ROW, state="FINISHED", status="finished", succeeded=48, dead=2, waiting=0,
          depend=0, running=0, eaten=0), 1, "2 dead"),
    (dict(JOB_ROW, state="ACTIVE", status="failing", stalled=True, dead=3), 1, "failing"),
    (dict(JOB_ROW, state="FINISHED", status="killed"), 1, "killed"),
])
def test_wait_exit_status(fake_supervisor, row, code, words):
    fake_supervisor.handler = lambda name, body: p.Row(row=row)
    result = run(fake_supervisor.address, "wait", "12")
    assert result.exit_code == code, result.output
    assert words in result.stdout


def test_wait_timeout_exits_3(fake_supervisor):
    fake_supervisor.handler = lambda name, body: p.Row(row=JOB_ROW)
    result = run(fake_supervisor.address, "wait", "12", "--timeout", "0.2")
    assert result.exit_code == 3
    assert "did not finish" in result.stderr


def test_unreadable_reply_is_reported(fake_supervisor):
    # A reply of the wrong kind for the request (rows expected, done given).
    fake_supervisor.handler = lambda name, body: p.Done(count=1)
    result = run(fake_supervisor.address, "jobs")
    assert result.exit_code == 1
    assert "Traceback" not in result.output


def test_yaml_comment_eating_a_token_is_warned_about(tmp_path, unreachable_address):
    path = write_file(tmp_path, "job.yaml", """\
        name: hello
        layers:
          - name: say
            command: echo frame #FRAME#
            range: 1-3
        """)
    result = run(unreachable_address, "submit", "--check", path, timeout="0.2")
    assert result.exit_code == 0
    assert "warning:" in result.stderr and "comment" in result.stderr
    quoted = write_file(tmp_path, "ok.yaml", """\
        name: hello
        layers:
          - {name: say, command: "echo frame #FRAME#", range: 1-3}
        """)
    result = run(unreachable_address, "submit", "--check", quoted, timeout="0.2")
    assert result.exit_code == 0 and "warning" not in result.stderr


def test_program_commands_load_from_entry_points(runner):
    result = runner.invoke(cli, ["rqd", "--help"])
    assert result.exit_code == 0, result.output
    assert "--supervisor" in result.stdout and "--slots" in result.stdout


def test_a_broken_program_command_is_reported_not_raised(runner):
    import importlib.metadata

    from cuefarm.cli import CueFarmGroup

    broken = importlib.metadata.EntryPoint("broken", "cuefarm_no_such_module:command",
                                           "cuefarm.commands")

    class Group(CueFarmGroup):
        def _plugins(self):
            return {"broken": broken}

    group = Group("cuefarm", commands=dict(cli.commands), callback=cli.callback,
                  params=cli.params)
    result = runner.invoke(group, ["--help"])
    assert re.search(r"\n  broken +Run the broken program\.", result.stdout)
    result = runner.invoke(group, ["broken", "--anything"])
    assert result.exit_code == 1
    assert "the broken command is not available: ModuleNotFoundError" in result.stderr


def test_spec_prints_the_job_file_reference_and_submit_points_to_it(runner):
    result = runner.invoke(cli, ["spec", "--reference"])
    assert result.exit_code == 0 and result.output == spec.reference()
    keys = runner.invoke(cli, ["spec"]).output
    assert all(f"  {name} " in keys for name in spec.LAYER_FIELDS)
    assert "docs/job-file.md" in runner.invoke(cli, ["submit", "--help"]).output
