"""The state directory and log files."""

from __future__ import annotations

import time

import pytest

from cuefarm import protocol as p
from rqd import logs
from rqd import state as state_module
from rqd.state import Kept, RunningRecord, StateDir, StateLocked, kept_in


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
    assert kept_in(tmp_path).running == {}          # nothing on disk before a flush
    state.flush()
    assert kept_in(tmp_path).running == {"1.1": rec}
    assert kept_in(tmp_path).completions == {"2.1": c}
    state.remove_running("1.1")
    assert state.remove_completion("2.1")
    assert not state.remove_completion("2.1")
    assert not state.remove_completion("../escape")
    assert state.load_running() == [] and state.load_completions() == []
    state.close()                                   # closing flushes
    assert kept_in(tmp_path) == Kept({}, {}, 4)


def test_a_restart_reads_back_what_was_flushed(tmp_path):
    state = StateDir(tmp_path)
    state.open()
    kept = [p.Completion(f"{i}.1", 0, 1.0, 2.0) for i in range(5)]
    for c in kept:
        state.save_completion(c)
    state.flush()
    state.remove_completion("0.1")
    state.flush()
    state.save_completion(p.Completion("9.1", 1, 1.0, 2.0))    # never flushed: a crash
    state._lock_file.close()                                   # the process died
    again = StateDir(tmp_path)
    again.open()
    assert again.load_completions() == kept[1:]
    # Opening rewrote the journal with only what is live.
    assert len((tmp_path / "journal").read_bytes().splitlines()) == 4
    again.close()


def test_a_torn_last_line_is_ignored_and_a_bad_line_skipped(tmp_path):
    state = StateDir(tmp_path)
    state.open()
    state.save_completion(p.Completion("1.1", 0, 1.0, 2.0))
    state.save_completion(p.Completion("2.1", 0, 1.0, 2.0))
    state.close()
    with open(tmp_path / "journal", "ab") as f:
        f.write(b'{"op": "nonsense"}\n')
        f.write(b'{"op": "acked", "attempt_id": "1.1"}\n')
        f.write(b'{"op": "acked", "attem')           # a crash in the middle of a write
    again = StateDir(tmp_path)
    again.open()
    assert [c.attempt_id for c in again.load_completions()] == ["2.1"]
    again.close()


def test_the_journal_is_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(state_module, "COMPACT_AFTER", 50)
    state = StateDir(tmp_path)
    state.open()
    for i in range(200):
        state.save_running(RunningRecord(f"{i}.1", i, 1.0, i, 1.0))
        state.flush()
        state.remove_running(f"{i}.1")
        state.save_completion(p.Completion(f"{i}.1", 0, 1.0, 2.0))
        state.flush()
        if i >= 3:
            state.remove_completion(f"{i - 3}.1")
    state.close()
    lines = (tmp_path / "journal").read_bytes().splitlines()
    assert len(lines) <= 60
    assert set(kept_in(tmp_path).completions) == {"197.1", "198.1", "199.1"}


def test_records_of_an_older_rqd_are_taken_over(tmp_path):
    (tmp_path / "completions").mkdir()
    (tmp_path / "running").mkdir()
    (tmp_path / "completions" / "3.1.json").write_bytes(b"{not json")
    (tmp_path / "completions" / "4.1.json").write_bytes(
        b'{"attempt_id": "5.1", "exit_status": 0, "started": 1, "stopped": 2}')
    (tmp_path / "completions" / "6.1.json").write_bytes(
        b'{"attempt_id": "6.1", "exit_status": 3, "started": 1, "stopped": 2}')
    (tmp_path / "running" / "7.1.json").write_bytes(
        b'{"attempt_id": "7.1", "pid": 70, "create_time": 1.5, "pgid": 70, "started": 1.0}')
    state = StateDir(tmp_path)
    state.open()
    assert [c.attempt_id for c in state.load_completions()] == ["6.1"]
    assert [r.pid for r in state.load_running()] == [70]
    assert (tmp_path / "completions" / "3.1.json.bad").exists()
    assert not (tmp_path / "completions" / "6.1.json").exists()      # now in the journal
    state.close()
    assert set(kept_in(tmp_path).completions) == {"6.1"}


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


def test_the_registered_note_counts_only_while_an_rqd_holds_the_directory(tmp_path):
    state = StateDir(tmp_path)
    state.open()
    assert state_module.registered_in(tmp_path) == ""
    state.save_registered("registered with tcp://sv:9771 as host 3")
    assert state_module.registered_in(tmp_path) == "registered with tcp://sv:9771 as host 3"
    state.save_registered("")
    assert state_module.registered_in(tmp_path) == ""
    state.save_registered("registered with tcp://sv:9771 as host 3")
    state._lock_file.close()         # as when rqd is killed: the lock goes, the note stays
    state._lock_file = None
    assert (tmp_path / "registered").exists()
    assert state_module.registered_in(tmp_path) == ""
    again = StateDir(tmp_path)
    again.open()                      # a new run starts unregistered
    assert not (tmp_path / "registered").exists()
    again.save_registered("registered with tcp://sv:9771 as host 4")
    again.close()
    assert not (tmp_path / "registered").exists()
