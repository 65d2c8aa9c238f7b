"""The state directory and log files."""

from __future__ import annotations

import time

import pytest

from cuefarm import protocol as p
from rqd import logs
from rqd.state import RunningRecord, StateDir, StateLocked


def test_running_and_completions_round_trip(tmp_path):
    state = StateDir(tmp_path)
    state.open()
    rec = RunningRecord("1.1", 1234, 99.5, 1234, time.time(), "/x/1.1.log", 2)
    state.save_running(rec)
    c = p.Completion("2.1", -9, 10.0, 20.0, 1000, 1.5, "killed: user")
    state.save_completion(c)
    assert state.load_running() == [rec]
    assert state.load_completions() == [c]
    assert state.has_completion("2.1")
    state.remove_running("1.1")
    assert state.remove_completion("2.1")
    assert not state.remove_completion("2.1")
    assert not state.remove_completion("../escape")
    assert state.load_running() == [] and state.load_completions() == []
    state.close()


def test_a_corrupt_file_is_moved_aside(tmp_path):
    state = StateDir(tmp_path)
    state.open()
    (state.completions_dir / "3.1.json").write_bytes(b"{not json")
    (state.completions_dir / "4.1.json").write_bytes(
        b'{"attempt_id": "5.1", "exit_status": 0, "started": 1, "stopped": 2}')
    assert state.load_completions() == []
    assert (state.completions_dir / "3.1.json.bad").exists()
    state.close()


def test_one_rqd_per_state_dir(tmp_path):
    first = StateDir(tmp_path)
    first.open()
    with pytest.raises(StateLocked):
        StateDir(tmp_path).open()
    first.close()
    again = StateDir(tmp_path)
    again.open()
    again.close()


@pytest.mark.parametrize("attempt_id, ok", [
    ("12.3", True), ("a-b_c.d", True), ("", False), ("../x", False), ("a/b", False),
    (".hidden", False), ("x" * 201, False), ("a..b", False), ("é", False)])
def test_safe_attempt_ids(attempt_id, ok):
    assert logs.safe_attempt_id(attempt_id) is ok


def test_read_range(tmp_path):
    path = tmp_path / "a.log"
    path.write_bytes(b"0123456789")
    assert logs.read_range(path, 0, 4) == (0, 10, b"0123")
    assert logs.read_range(path, 8, 100) == (8, 10, b"89")
    assert logs.read_range(path, -3, 100) == (7, 10, b"789")
    assert logs.read_range(path, -100, 2) == (0, 10, b"01")
    assert logs.read_range(path, 50, 5) == (10, 10, b"")
    assert logs.read_range(path, 0, -1) == (0, 10, b"")
    with pytest.raises(FileNotFoundError):
        logs.read_range(tmp_path / "none.log", 0, 10)


def test_footer_names_the_signal():
    text = logs.footer(exit_status=-15, started=0.0, stopped=2.5, peak_rss=2 * 1024 * 1024,
                       cpu_time=1.25, reason="killed: x").decode()
    assert "exit status: -15 (signal SIGTERM)" in text
    assert "reason:      killed: x" in text and "runtime:     2.50 s" in text
    assert "peak rss:    2.0 MiB" in text
