"""A frame's progress from the lines it prints: the parser on real Blender 3.4 output (captured
from `blender -b scene.blend -f N` and `-s 1 -e 3 -a`, Cycles on the CPU), the generic
`PROGRESS n%` line, reading only what a log gained, and the runner reporting it."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from rqd import runner as rn
from rqd.progress import MAX_READ, ProgressParser, ProgressReader

BLENDER = Path(__file__).parent / "blender"
PY = sys.executable


def replay(name: str, start: int, end: int, frames: str = "") -> list[tuple[bytes, int | None]]:
    """Feed a captured Blender log to a parser line by line: (line, percent after it)."""
    parser = ProgressParser(start, end, frames or (f"{start}-{end}" if end != start
                                                   else str(start)))
    seen = []
    for line in (BLENDER / name).read_bytes().splitlines():
        parser.feed_line(line)
        seen.append((line, parser.percent))
    return seen


def after(seen: list[tuple[bytes, int | None]], text: bytes) -> int | None:
    """The percent right after the first line containing `text`."""
    return next(percent for line, percent in seen if text in line)


def test_one_frame_goes_by_its_samples():
    seen = replay("cycles_frame_5_256_samples.txt", 5, 5)
    assert seen[0][1] is None                       # "Blender 3.4.1": nothing said yet
    assert after(seen, b"Sample 0/256") == 0
    assert after(seen, b"Sample 128/256") == 50
    assert after(seen, b"Sample 192/256") == 75
    assert seen[-1][1] == 100
    percents = [p for _, p in seen if p is not None]
    assert percents == sorted(percents)


def test_a_frame_is_done_at_finished():
    seen = replay("cycles_frame_3.txt", 3, 3)
    assert after(seen, b"Sample 1/16") == 6
    assert after(seen, b"| Finished") == 100


def test_a_chunk_counts_the_frames_before_the_current_one():
    seen = replay("cycles_chunk_1-3.txt", 1, 3)
    assert after(seen, b"Fra:1 ") == 0
    assert after(seen, b"frame_0001.png") == 33      # frame 1 finished: a third of the chunk
    assert after(seen, b"Fra:2 ") == 33
    assert after(seen, b"frame_0002.png") == 66
    assert after(seen, b"Fra:3 ") == 66
    assert seen[-1][1] == 100
    percents = [p for _, p in seen if p is not None]
    assert percents == sorted(percents)


def test_a_stepped_chunk_counts_its_own_frames():
    parser = ProgressParser(1, 9, "1-9x2")          # frames 1, 3, 5, 7, 9
    parser.feed_line(b"Fra:5 Mem:9.68M | Scene, ViewLayer | Sample 0/16")
    assert parser.percent == 40                     # two of five frames done
    parser.feed_line(b"Fra:5 Mem:9.68M | Scene, ViewLayer | Sample 8/16")
    assert parser.percent == 50
    # A frame Blender renders that is not in the chunk's list: placed by its number.
    parser.feed_line(b"Fra:6 Mem:9.68M | Scene, ViewLayer | Sample 0/16")
    assert parser.percent == 50


@pytest.mark.parametrize("line, percent", [
    (b"PROGRESS 45%", 45),
    (b"PROGRESS 45.9%", 45),
    (b"PROGRESS 0%", 0),
    (b"PROGRESS 100%", 100),
    (b"PROGRESS   7 %\r", 7),
    (b"PROGRESS 101%", None),           # not a percentage
    (b"PROGRESS 45", None),             # no % sign
    (b"PROGRESS -5%", None),
    (b"PROGRESS 45% done", None),       # the line is exactly the form, nothing after it
    (b"progress 45%", None),
    (b"  PROGRESS 45%", None),
    (b"Fra:x Sample 1/2", None),
    (b"Fra:1 | Sample 3/0", 0),         # frame 1 began; a zero sample count says nothing more
])
def test_generic_and_malformed_lines(line, percent):
    parser = ProgressParser(1, 1, "1")
    parser.feed_line(line)
    assert parser.percent == percent


def test_the_latest_line_wins():
    parser = ProgressParser(1, 1, "1")
    parser.feed(b"PROGRESS 80%\nFra:1 Mem:1M | Sample 4/16\nsomething else\n")
    assert parser.percent == 25
    parser.feed(b"PROGRESS 90%\n")
    assert parser.percent == 90


def test_reader_reads_only_the_frames_output_and_waits_for_whole_lines(tmp_path):
    log = tmp_path / "1.1.log"
    header = b"CueFarm attempt 1.1\nPROGRESS 99%\n"     # rqd's header is not the frame's
    log.write_bytes(header)
    reader = ProgressReader(log, len(header), 1, 1, "1")
    assert reader.poll() is None
    with open(log, "ab") as f:
        f.write(b"starting\nPROGRESS 1")
    assert reader.poll() is None                      # the line is not finished yet
    with open(log, "ab") as f:
        f.write(b"2%\nmore output\n")
    assert reader.poll() == 12
    assert reader.poll() == 12                        # nothing new: the same


def test_reader_takes_lines_that_a_carriage_return_ends(tmp_path):
    log = tmp_path / "1.1.log"
    log.write_bytes(b"PROGRESS 10%\rPROGRESS 20%\r\nPROGRESS 30%\rPROGRESS 4")
    reader = ProgressReader(log, 0, 1, 1, "1")
    assert reader.poll() == 30


def test_reader_takes_only_the_tail_of_a_flood(tmp_path):
    log = tmp_path / "1.1.log"
    log.write_bytes(b"")
    reader = ProgressReader(log, 0, 1, 1, "1")
    with open(log, "ab") as f:
        f.write(b"PROGRESS 10%\n" + b"x" * 100 + b"\n")
        f.write(b"noise line\n" * (3 * MAX_READ // 11))
        f.write(b"PROGRESS 70%\nnoise")
    assert reader.poll() == 70
    assert reader.offset == log.stat().st_size
    with open(log, "ab") as f:
        f.write(b" ends\nPROGRESS 71%\n")
    assert reader.poll() == 71


def test_reader_survives_a_missing_or_truncated_log(tmp_path):
    log = tmp_path / "1.1.log"
    reader = ProgressReader(log, 0, 1, 1, "1")
    assert reader.poll() is None                      # no log (yet): no progress, no error
    log.write_bytes(b"PROGRESS 30%\n")
    assert reader.poll() == 30
    log.write_bytes(b"")                              # someone truncated it
    assert reader.poll() == 30
    log.write_bytes(b"PROGRESS 40%\n")
    assert reader.poll() == 40


def test_runner_reports_the_progress_a_frame_prints(tmp_path, helpers):
    runner = rn.Runner("w1", tmp_path / "logs")
    go = tmp_path / "go"
    code = ("import os, sys, time\n"
            "print('PROGRESS 25%', flush=True)\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
            "print('PROGRESS 75%', flush=True)\n"
            "time.sleep(30)\n")
    attempt = runner.launch(helpers.launch("20.1", [PY, "-c", code]))
    try:
        deadline = time.monotonic() + 60
        while runner.sample(attempt).progress != 25:
            assert time.monotonic() < deadline, attempt.log_path.read_text()
            time.sleep(0.05)
        go.touch()
        while runner.sample(attempt).progress != 75:
            assert time.monotonic() < deadline, attempt.log_path.read_text()
            time.sleep(0.05)
    finally:
        runner.terminate(attempt, "test over", 0.0)
        runner.kill_tree(attempt)
        runner.finish(attempt, runner.exits.get(timeout=30))


def test_a_frame_printing_nothing_reports_no_progress(tmp_path, helpers):
    runner = rn.Runner("w1", tmp_path / "logs")
    attempt = runner.launch(helpers.launch("21.1", [PY, "-c", "print('hello')"]))
    ex = runner.exits.get(timeout=30)
    assert runner.sample(attempt).progress is None
    runner.finish(attempt, ex)
