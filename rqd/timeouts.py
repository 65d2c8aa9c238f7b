"""Frame timeouts: a limit on runtime and a limit on time without new output in the log.

A frame writes its output straight into its log file (no pipe through rqd), so "output" is
the log file growing.  Nothing polls: each `FrameTimeouts` says when it next needs a look
(`due`), the daemon's loop sleeps until the earliest of those, and `check` then stats the log
once.  All times here are monotonic seconds; the log's wall-clock mtime is only used, within
bounds that a clock jump cannot break, to place the last write more precisely than "some time
since the previous look".
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MTIME_SLACK = 0.1       # seconds an mtime may lag the write (coarse kernel file times)


def _seconds(value: float) -> str:
    # Limits come as whole seconds: print 86400, not 8.64e+04.
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def ran_too_long(seconds: float) -> str:
    """The completion reason of a frame killed by its runtime limit."""
    return f"timeout: ran longer than {_seconds(seconds)} s"


def silent_too_long(seconds: float) -> str:
    """The completion reason of a frame killed for printing nothing for too long."""
    return f"timeout: no output for {_seconds(seconds)} s"


def _limit(value: object) -> float:
    """A usable limit in seconds from untrusted input; 0 means none."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return 0.0
    if not math.isfinite(value) or value <= 0:
        return 0.0
    return float(value)


class FrameTimeouts:
    """The timeout limits of one running frame and what has been seen of its log so far."""

    def __init__(self, log_path: Path, runtime: object, no_output: object, started: float,
                 log_size: int, wall_clock: Callable[[], float] = time.time):
        """`started` is the monotonic time the frame started; `log_size` the log's size then
        (after the header, so the header does not count as output)."""
        self.log_path = log_path
        self.runtime = _limit(runtime)
        self.no_output = _limit(no_output)
        self.started = started
        self.log_size = log_size
        self.output_at = started        # monotonic time of the last output seen (or the start)
        self.looked_at = started        # monotonic time of the last stat of the log
        self._wall_clock = wall_clock

    @property
    def active(self) -> bool:
        return bool(self.runtime or self.no_output)

    def due(self) -> float | None:
        """The monotonic time of the next deadline, or None when the frame has no limit."""
        deadlines = []
        if self.runtime:
            deadlines.append(self.started + self.runtime)
        if self.no_output:
            deadlines.append(self.output_at + self.no_output)
        return min(deadlines) if deadlines else None

    def check(self, now: float) -> str:
        """The timeout reason when a limit has been exceeded at `now`, else ""."""
        if self.runtime and now >= self.started + self.runtime:
            return ran_too_long(self.runtime)
        if self.no_output and now >= self.output_at + self.no_output:
            if self._saw_output(now):
                return ""
            return silent_too_long(self.no_output)
        return ""

    def _saw_output(self, now: float) -> bool:
        """Stat the log; when it changed size since the last look, note when it was written."""
        try:
            st = os.stat(self.log_path)
        except OSError as exc:
            # A log we cannot see cannot prove silence either: do not kill for it.
            log.warning("cannot check the output of %s: %s", self.log_path, exc)
            self.output_at = self.looked_at = now
            return True
        previous = self.looked_at
        self.looked_at = now
        if st.st_size == self.log_size:
            return False
        self.log_size = st.st_size
        # The write happened after the previous look (the size was different then) and by
        # now.  The mtime says when within that window (file times come from a coarse clock
        # that lags by a tick, hence the slack); if the wall clock jumped and the mtime falls
        # well outside it, assume the write was just now, which never kills a frame early.
        written = now - (self._wall_clock() - st.st_mtime)
        if previous - MTIME_SLACK <= written <= now + MTIME_SLACK:
            self.output_at = min(max(written, previous), now)
        else:
            self.output_at = now
        return True
