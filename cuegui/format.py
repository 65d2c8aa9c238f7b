"""Text for times, durations, sizes and counts as the tables show them."""

from __future__ import annotations

import time
from typing import Callable

MIB = 1024 * 1024

# The clock is injectable so tests can pin "now" for elapsed-time columns.
now: Callable[[], float] = time.time


_today: tuple[float, float] = (0.0, -1.0)     # [start, end) of today, local time


def _today_span() -> tuple[float, float]:
    """Today's bounds, recomputed only when the clock leaves them (tables call clock() for
    every visible cell on every repaint)."""
    global _today
    t = now()
    if not _today[0] <= t < _today[1]:
        lt = time.localtime(t)
        start = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        _today = (start, time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday + 1, 0, 0, 0, 0, 0,
                                      -1)))
    return _today


def clock(epoch: float | None) -> str:
    """Wall-clock time of day (with the date when it is not today), or '' for None."""
    if epoch is None:
        return ""
    start, end = _today_span()
    if start <= epoch < end:
        return time.strftime("%H:%M:%S", time.localtime(epoch))
    return time.strftime("%m-%d %H:%M", time.localtime(epoch))


def full_time(epoch: float | None) -> str:
    """Date and time for tooltips."""
    if epoch is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))


def duration(seconds: float | None) -> str:
    """Compact duration: 0:42, 12:05, 3:04:59, 2d 03:10."""
    if seconds is None:
        return ""
    s = max(0, int(seconds))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours:02d}:{minutes:02d}"
    if hours:
        return f"{hours}:{minutes:02d}:{s:02d}"
    return f"{minutes}:{s:02d}"


def span(start: float | None, stop: float | None) -> float | None:
    """Seconds from start to stop, or to now while still going; None when not started."""
    if start is None:
        return None
    return (stop if stop is not None else now()) - start


def megabytes(nbytes: int | float | None) -> str:
    """Bytes as whole MB (the frame table's peak memory)."""
    if not nbytes:
        return ""
    return f"{nbytes / MIB:,.0f}"


def gigabytes(mb: int | float | None) -> str:
    if mb is None:
        return ""
    return f"{mb / 1024:.1f}"


def percent(part: float, whole: float) -> str:
    if not whole:
        return ""
    return f"{100.0 * part / whole:.0f}%"
