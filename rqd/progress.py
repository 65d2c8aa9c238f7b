"""A running frame's progress, read from the lines it prints.

A frame writes straight into its log file (no pipe through rqd), so nothing here sits on the
path of each line: with each heartbeat the daemon asks each running attempt's
`ProgressReader` to look at what the log gained since the last look (one `stat` when it gained
nothing) and parse only those bytes.  The lines understood:

- Blender's status lines, `Fra:N ... | Sample x/y`: frame N of the chunk and how far through
  its samples the render is (`| Finished` ends the frame).  A chunk (`-s #FRAME_START#
  -e #FRAME_END# -a`) is as far along as its frames before N plus N's share.
- `PROGRESS 45%` (or `PROGRESS 45.5%`) alone on a line: any script can print it; it is the
  progress of the whole frame (or chunk).

The latest line that says something wins.  Progress is a whole percentage, 0 to 100.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cuefarm.frames import RangeError, count_frames, expand

# The bytes read per look at most: only the latest progress line matters, so a frame that
# printed a flood since the last heartbeat has only its tail read.
MAX_READ = 64 * 1024
# A line longer than this is no progress line: an unfinished one is not kept beyond it.
MAX_LINE = 4096
# Chunks up to this many frames have their exact frame list; longer ones are measured by
# their first and last frame only.
MAX_LISTED = 10_000

_FRA = re.compile(rb"^Fra:(-?\d{1,10})\b")
_SAMPLE = re.compile(rb"\bSample (\d{1,10})/(\d{1,10})")
_FINISHED = re.compile(rb"\|\s*Finished\s*$")
_GENERIC = re.compile(rb"^PROGRESS\s+(\d{1,3}(?:\.\d+)?)\s*%$")


class ProgressParser:
    """The progress of one frame (or chunk) from its output lines; `percent` is the latest
    (None until a line said anything)."""

    def __init__(self, frame_start: int, frame_end: int, frames: str = ""):
        """`frames` is the chunk's label ("5", "1-8", "1-9x2"); when it cannot be read the
        chunk is taken as every frame from `frame_start` to `frame_end`."""
        self.start, self.end = frame_start, frame_end
        self.count = abs(frame_end - frame_start) + 1
        self.listed: dict[int, int] | None = None       # frame number -> its place
        if frames and frames not in (str(frame_start), f"{frame_start}-{frame_end}"):
            try:
                n = count_frames(frames)
                if n <= MAX_LISTED:
                    self.listed = {f: i for i, f in enumerate(expand(frames, MAX_LISTED))}
                    self.count = max(1, len(self.listed))
            except RangeError:
                pass
        self.percent: int | None = None
        self.frame: int | None = None       # the Blender frame being rendered

    def _place(self, frame: int) -> float:
        """How many frames of the chunk come before `frame` (fractional for a frame outside
        the chunk's list, clamped to the chunk)."""
        if self.listed is not None and frame in self.listed:
            return float(self.listed[frame])
        span = self.end - self.start
        if span == 0:
            return 0.0
        share = (frame - self.start) / span * (self.count - 1)
        return min(max(share, 0.0), self.count - 1.0)

    def _frame_percent(self, frame: int, fraction: float) -> int:
        return _whole((self._place(frame) + fraction) / self.count * 100.0)

    def feed_line(self, line: bytes) -> None:
        """Take one line (without its end of line)."""
        line = line.rstrip(b"\r\n\t ")
        if line.startswith(b"PROGRESS"):
            m = _GENERIC.match(line)
            if m and float(m.group(1)) <= 100.0:    # a larger figure is not a percentage
                self.percent = _whole(float(m.group(1)))
            return
        m = _FRA.match(line)
        if m is None:
            return
        frame = int(m.group(1))
        if frame != self.frame:
            self.frame = frame
            self.percent = self._frame_percent(frame, 0.0)
        if _FINISHED.search(line):
            self.percent = self._frame_percent(frame, 1.0)
            return
        s = _SAMPLE.search(line)
        if s:
            done, total = int(s.group(1)), int(s.group(2))
            if total > 0:
                self.percent = self._frame_percent(frame, min(done, total) / total)

    def feed(self, data: bytes) -> None:
        """Take whole lines (the caller keeps an unfinished last line for later)."""
        # Only lines that can be progress are looked at: most output is skipped unparsed.
        if b"Fra:" not in data and b"PROGRESS" not in data:
            return
        for line in data.split(b"\n"):
            if line.startswith((b"Fra:", b"PROGRESS")):
                self.feed_line(line)


def _whole(value: float) -> int:
    return int(min(max(value, 0.0), 100.0))


class ProgressReader:
    """Reads what a running frame's log gained since the last look and keeps its progress."""

    def __init__(self, log_path: Path, offset: int, frame_start: int, frame_end: int,
                 frames: str = ""):
        """`offset` is where the frame's own output starts in the log (after rqd's header)."""
        self.path = log_path
        self.offset = offset
        self.rest = b""                 # an unfinished last line, parsed once it ends
        self.parser = ProgressParser(frame_start, frame_end, frames)

    @property
    def percent(self) -> int | None:
        return self.parser.percent

    def poll(self) -> int | None:
        """Read the log's new bytes, if any, and return the progress so far."""
        try:
            size = os.stat(self.path).st_size
        except OSError:
            return self.parser.percent
        if size <= self.offset:
            if size < self.offset:      # truncated by someone: start again from there
                self.offset, self.rest = size, b""
            return self.parser.percent
        start = max(self.offset, size - MAX_READ)
        try:
            with open(self.path, "rb") as f:
                f.seek(start)
                data = f.read(size - start)
        except OSError:
            return self.parser.percent
        skipped = start > self.offset
        self.offset = start + len(data)
        # A carriage return ends a line too: tools that redraw one status line use it.
        data = data.replace(b"\r", b"\n")
        if skipped:                     # only the tail was read: its first line is cut
            cut = data.find(b"\n")
            data = data[cut + 1:] if cut >= 0 else b""
            self.rest = b""
        data = self.rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.rest = data if len(data) <= MAX_LINE else b""
            return self.parser.percent
        self.rest = data[cut + 1:] if len(data) - cut - 1 <= MAX_LINE else b""
        self.parser.feed(data[:cut])
        return self.parser.percent
