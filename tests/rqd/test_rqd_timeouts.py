"""Frame timeouts: runtime and no-output limits, enforced by a real rqd and, in unit form, by
`FrameTimeouts` against a real log file with the monotonic time given by the test."""

from __future__ import annotations

import os
import re
import signal
import sys

import pytest

from cuefarm import protocol as p
from rqd.timeouts import FrameTimeouts, ran_too_long, silent_too_long

PY = sys.executable
# Prints the shell's pid and its child's, then waits for the child: a two-process tree.
TREE = "sleep 60 & echo pids $$ $!; wait"


def tree_pids(log_text: str) -> list[int]:
    match = re.search(r"^pids (\d+) (\d+)$", log_text, re.MULTILINE)
    assert match, "the frame did not print its pids"
    return [int(match.group(1)), int(match.group(2))]


def run_frame(supervisor, start_rqd, helpers, attempt_id: str, command, **limits):
    """Launch one frame on a fresh rqd; return its completion and its log's text."""
    rqd = start_rqd(supervisor)
    supervisor.register()
    supervisor.send(helpers.launch(attempt_id, command, **limits))
    c = supervisor.completion(attempt_id)
    supervisor.send(p.CompleteAck([attempt_id]))
    return c, (rqd.state_dir / "logs" / f"{attempt_id}.log").read_text()


# -- a real rqd --------------------------------------------------------------------------------

def test_runtime_timeout_kills_the_tree(supervisor, start_rqd, helpers):
    c, text = run_frame(supervisor, start_rqd, helpers, "30.1", ["sh", "-c", TREE], timeout=2)
    assert c.reason == "timeout: ran longer than 2 s"
    assert c.exit_status == -signal.SIGTERM
    assert "reason:      timeout: ran longer than 2 s" in text
    pids = tree_pids(text)
    helpers.wait_until(lambda: helpers.gone(pids), message="the timed-out tree to vanish")


def test_steady_output_never_hits_the_no_output_timeout(supervisor, start_rqd, helpers):
    code = ("import time\n"
            "for i in range(10):\n"
            "    print('tick', i, flush=True)\n"
            "    time.sleep(0.3)\n")
    c, text = run_frame(supervisor, start_rqd, helpers, "31.1", [PY, "-c", code],
                        timeout_no_output=1)
    assert c.exit_status == 0 and c.reason == ""
    assert "tick 9" in text and "timeout" not in text.split("tick 9", 1)[1]


def test_silence_after_output_hits_the_no_output_timeout(supervisor, start_rqd, helpers):
    c, text = run_frame(supervisor, start_rqd, helpers, "32.1",
                        ["sh", "-c", "echo started; " + TREE], timeout_no_output=1)
    assert c.reason == "timeout: no output for 1 s"
    assert c.exit_status != 0
    assert "started" in text and "reason:      timeout: no output for 1 s" in text
    pids = tree_pids(text)
    helpers.wait_until(lambda: helpers.gone(pids), message="the silent tree to vanish")


def test_runtime_timeout_applies_to_a_chatty_frame(supervisor, start_rqd, helpers):
    code = "import time\nwhile True:\n    print('still here', flush=True)\n    time.sleep(0.1)\n"
    c, _ = run_frame(supervisor, start_rqd, helpers, "33.1", [PY, "-c", code],
                     timeout=2, timeout_no_output=1)
    assert c.reason == "timeout: ran longer than 2 s" and c.exit_status != 0


def test_a_frame_that_exits_0_when_timed_out_still_fails(supervisor, start_rqd, helpers):
    c, text = run_frame(supervisor, start_rqd, helpers, "34.1",
                        ["sh", "-c", "trap 'exit 0' TERM; " + TREE], timeout=1)
    assert c.reason == "timeout: ran longer than 1 s" and c.exit_status == 1
    helpers.wait_until(lambda: helpers.gone(tree_pids(text)), message="the tree to vanish")


def test_a_kill_before_the_timeout_stays_a_kill(supervisor, start_rqd, helpers, tmp_path):
    # The frame ignores SIGTERM, so its no-output deadline passes during the kill's grace
    # period (2 s in these tests): the completion must still name the kill, not a timeout.
    start_rqd(supervisor)
    supervisor.register()
    ready = tmp_path / "trap-set"
    supervisor.send(helpers.launch("35.1", ["sh", "-c", f"trap '' TERM; touch {ready}; sleep 60"],
                                   timeout_no_output=2))
    # Killed before the shell set its trap, it would end by SIGTERM at once.
    helpers.wait_until(ready.exists, message="the frame to ignore SIGTERM")
    supervisor.send(p.Kill(["35.1"], "by wrangler"))
    c = supervisor.completion("35.1")
    assert c.reason == "killed: by wrangler" and c.exit_status == -signal.SIGKILL


# -- FrameTimeouts with a given clock --------------------------------------------------------

@pytest.fixture
def log_file(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"header\n")
    return path


def watch(path, runtime=0, no_output=0, wall=None) -> FrameTimeouts:
    return FrameTimeouts(path, runtime, no_output, started=100.0,
                         log_size=path.stat().st_size,
                         **({"wall_clock": wall} if wall else {}))


@pytest.mark.parametrize("runtime, no_output, active", [
    (0, 0, False), (-5, 0, False), (float("nan"), float("inf"), False), ("10", None, False),
    (True, 0, False), (10, 0, True), (0, 10, True), (0.5, 3, True)])
def test_limits_from_untrusted_input(log_file, runtime, no_output, active):
    t = watch(log_file, runtime, no_output)
    assert t.active is active
    assert (t.due() is not None) is active


def test_runtime_deadline(log_file):
    t = watch(log_file, runtime=10)
    assert t.due() == 110.0
    assert t.check(109.9) == ""
    assert t.check(110.0) == ran_too_long(10) == "timeout: ran longer than 10 s"


def test_no_output_deadline_moves_with_output(log_file):
    now_wall = [0.0]
    t = watch(log_file, no_output=5, wall=lambda: now_wall[0])
    assert t.due() == 105.0 and t.check(104.0) == ""
    with open(log_file, "ab") as f:
        f.write(b"frame output\n")
    # Written (by its mtime) 1 s before the look at 105: the next deadline is 5 s after that.
    now_wall[0] = os.stat(log_file).st_mtime + 1.0
    assert t.check(105.0) == ""
    assert t.due() == pytest.approx(109.0)
    assert t.check(109.0) == silent_too_long(5) == "timeout: no output for 5 s"


def test_an_implausible_mtime_counts_the_output_as_just_now(log_file):
    t = watch(log_file, no_output=5, wall=lambda: 1e12)     # the wall clock jumped ahead
    with open(log_file, "ab") as f:
        f.write(b"x")
    assert t.check(105.0) == ""
    assert t.due() == 110.0


def test_an_mtime_a_tick_before_the_previous_look_is_clamped_to_it(log_file):
    now_wall = [0.0]
    t = watch(log_file, no_output=5, wall=lambda: now_wall[0])
    with open(log_file, "ab") as f:
        f.write(b"x")
    # At 105 the mtime reads 5.02 s old: 0.02 s before the frame started (a coarse clock).
    now_wall[0] = os.stat(log_file).st_mtime + 5.02
    assert t.check(105.0) == ""
    assert t.due() == 105.0
    assert t.check(105.0) == "timeout: no output for 5 s"


def test_runtime_wins_over_output(log_file):
    t = watch(log_file, runtime=3, no_output=1)
    assert t.due() == 101.0
    with open(log_file, "ab") as f:
        f.write(b"x")
    assert t.check(101.0) == ""
    assert t.check(103.0) == "timeout: ran longer than 3 s"


def test_a_missing_log_never_proves_silence(log_file):
    t = watch(log_file, no_output=2)
    log_file.unlink()
    assert t.check(102.0) == ""
    assert t.due() == 104.0
