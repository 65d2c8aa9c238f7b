"""The log panel against a simulated supervisor holding a 100 MB log: the tail first, earlier
pages on demand, the first error and a search found anywhere in the file, earlier attempts."""

from __future__ import annotations

from functools import partial

import pytest

from cuegui.connection import Connection
from cuegui.logfollow import PAGE, trim_to_line
from cuegui.window import MainWindow
from tests import rows
from tests.cuegui import helpers
from tests.cuegui.simsupervisor import SimSupervisor

WAIT = 30_000
wait = partial(helpers.wait, timeout=WAIT)
LINE = "render: tile {:09d} of frame 1 done in 0.23 s, 48 samples, no warnings\n"
HEADER = ("=" * 78 + "\nCueFarm attempt 1.1\nenvironment:\n  ERROR_LOG=/tmp/x\n" + "=" * 78
          + "\n")


def big_log(size: int) -> bytes:
    """About `size` bytes of log lines: the worker's header, an error at line 5000 and a
    needle half way."""
    count = size // len(LINE.format(0))
    lines = [LINE.format(i) for i in range(count)]
    lines[5000] = "Traceback (most recent call last): RuntimeError: out of memory\n"
    lines[count // 2] = "needle: the one line to find\n"
    return (HEADER + "".join(lines)).encode()


@pytest.fixture(scope="module")
def log_bytes() -> bytes:
    return big_log(100 * 1024 * 1024)


@pytest.fixture
def sim(log_bytes):
    s = SimSupervisor()
    s.jobs = {1: rows.job(1, name="big_log_job")}
    s.frames = {1: rows.frame(1, job_id=1, state="SUCCEEDED", attempt=2, attempt_id="1.2",
                              host="render01")}
    s.logs[(1, 2)] = log_bytes
    s.logs[(1, 1)] = b"first attempt: crashed\n"
    s.start()
    yield s
    s.stop()


@pytest.fixture
def win(qtbot, sim):
    conn = Connection(sim.address, idle_ping=1.0, request_timeout=10.0)
    w = MainWindow(conn, mode="wrangler")
    qtbot.addWidget(w)
    w.show()
    conn.start()
    wait(qtbot, lambda: w.jobs_model.total == 1)
    yield w
    w.close()


def open_log(qtbot, win) -> None:
    win.open_log(rows.frame(1, job_id=1, state="SUCCEEDED", attempt=2, attempt_id="1.2",
                            host="render01"))
    wait(qtbot, lambda: win.log_panel.size and not win.log_panel.busy)


def test_a_100_mb_log_opens_at_its_tail(qtbot, win, log_bytes):
    panel = win.log_panel
    open_log(qtbot, win)
    text = panel.contents()
    assert panel.size == len(log_bytes) and panel.end == len(log_bytes)
    assert 0 < len(log_bytes) - panel.start <= PAGE
    assert len(text) <= PAGE and log_bytes.decode().endswith(text)
    assert text.startswith("render: tile")           # whole lines only
    assert panel.earlier_button.isEnabled() and not panel.later_button.isEnabled()
    assert "attempt 2" in panel.caption.text()


def test_earlier_pages_are_prepended_in_order(qtbot, win, log_bytes):
    panel = win.log_panel
    open_log(qtbot, win)
    start = panel.start
    panel.earlier_button.click()
    wait(qtbot, lambda: panel.start < start and not panel.busy)
    assert start - panel.start <= PAGE
    assert panel.contents() == log_bytes[panel.start:].decode()


def test_first_error_is_found_in_the_whole_log(qtbot, win):
    panel = win.log_panel
    open_log(qtbot, win)
    assert not panel.first_error()              # not in the loaded tail: the worker looks
    wait(qtbot, lambda: "Traceback" in panel.text.textCursor().selectedText())
    assert panel.start < 5100 * len(LINE.format(0))   # the window moved to the top
    assert "ERROR_LOG" not in panel.text.textCursor().selectedText()   # header skipped


def test_search_finds_a_line_outside_the_window(qtbot, win):
    panel = win.log_panel
    open_log(qtbot, win)
    panel.search.setText("needle")
    assert not panel.find_next()
    wait(qtbot, lambda: "needle" in panel.text.textCursor().selectedText(), timeout=60_000)
    assert panel.highlighted() >= 1
    panel.search.setText("tile 0")
    assert panel.find_next()                      # in the loaded part: found at once
    assert panel.highlighted() > 10


def test_an_earlier_attempt(qtbot, win):
    panel = win.log_panel
    open_log(qtbot, win)
    assert panel.attempts.count() == 2 and panel.attempts.isEnabled()
    panel.attempts.setCurrentIndex(panel.attempts.findData(1))
    panel.attempts.activated.emit(panel.attempts.currentIndex())
    wait(qtbot, lambda: panel.contents() == "first attempt: crashed\n")
    assert "attempt 1" in panel.caption.text()


def test_log_viewer_follow_top_wrap_and_match_count(qtbot, win, sim):
    panel = win.log_panel
    open_log(qtbot, win)
    panel.search.setText("tile 00000")
    assert panel.matches.text() == "no matches loaded"       # the tail holds none of them
    assert not panel.first_error()
    wait(qtbot, lambda: "Traceback" in panel.text.textCursor().selectedText())
    assert not panel.follow.isChecked()
    # Another frame's log: followed again, and the search counts its matches.
    short = "".join(LINE.format(i) for i in range(30)) + "x" * 3000 + "\n"
    sim.frames[2] = rows.frame(2, job_id=1, state="SUCCEEDED", attempt=1, attempt_id="2.1",
                               host="render01")
    sim.logs[(2, 1)] = short.encode()
    win.open_log(sim.frames[2])
    wait(qtbot, lambda: panel.contents() == short and not panel.busy)
    assert panel.follow.isChecked()
    panel.search.setText("tile 00000001")                  # tiles 10 to 19
    assert panel.matches.text() == "10 matches"
    assert panel.find_next() and panel.matches.text() == "1 of 10"
    assert panel.find_next() and panel.matches.text() == "2 of 10"
    # The whole log is loaded: "to top" still takes you there.
    bar = panel.text.verticalScrollBar()
    bar.setValue(bar.maximum())
    assert panel.earlier_button.isEnabled()
    panel.earlier_button.click()
    assert bar.value() == 0
    # Long lines wrap on demand.
    assert panel.text.horizontalScrollBar().maximum() > 0
    panel.wrap.setChecked(True)
    assert panel.text.lineWrapMode() == panel.text.LineWrapMode.WidgetWidth
    wait(qtbot, lambda: panel.text.horizontalScrollBar().maximum() == 0)


def test_trim_to_line():
    assert trim_to_line(b"tail\nwhole\n", 0) == (b"tail\nwhole\n", 0)
    assert trim_to_line(b"tail\nwhole\n", 10) == (b"whole\n", 15)
    assert trim_to_line(b"no newline", 10) == (b"", 20)
