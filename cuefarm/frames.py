"""Frame ranges (VFX syntax, through fileseq), chunking and command tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

import fileseq

# One comma-separated part: start[-end[xstep]], ASCII digits only.  Python's int() would take
# Unicode digits and underscores, and fileseq takes a few extra forms (":" fill, "y" inverse) that
# users do not expect; we accept the plain forms and let fileseq expand them.  The digit count is
# bounded so int() never sees a huge string (it raises a plain ValueError past 4300 digits).
_PART = re.compile(r"(-?[0-9]{1,18})(?:-(-?[0-9]{1,18})(?:x(-?[0-9]{1,18}))?)?", re.ASCII)
# Frame numbers stay within a signed 32-bit integer so they fit any database's INTEGER column.
MAX_FRAME_NUMBER = 2**31 - 1


class RangeError(ValueError):
    """A frame range that does not parse, or that is too large."""


def count_frames(frange: str) -> int:
    """Count the frames of `frange` without expanding it (upper bound when parts overlap)."""
    if not isinstance(frange, str):
        raise RangeError("a frame range is a string such as '1-100x2'")
    text = frange.replace(" ", "")
    if not text:
        raise RangeError("the frame range is empty")
    total = 0
    for part in text.split(","):
        m = _PART.fullmatch(part)
        if not m:
            raise RangeError(f"cannot parse {part!r} in frame range {frange!r} "
                             "(expected forms: 1-100, 1-100x2, 1,5,9, 10-1)")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        step = int(m.group(3)) if m.group(3) is not None else (1 if end >= start else -1)
        if max(abs(start), abs(end), abs(step)) > MAX_FRAME_NUMBER:
            raise RangeError(f"{part!r} in frame range {frange!r}: frame numbers and steps are "
                             f"at most {MAX_FRAME_NUMBER}")
        if step == 0:
            raise RangeError(f"step 0 in {part!r}: a step must not be zero")
        if (end - start) * step < 0:
            raise RangeError(f"step {step} in {part!r} goes away from the end frame")
        total += abs(end - start) // abs(step) + 1
    return total


def expand(frange: str, max_frames: int) -> list[int]:
    """Expand `frange` to its frame numbers in order; refuse before expanding if over `max_frames`."""
    n = count_frames(frange)
    if n > max_frames:
        raise RangeError(f"frame range {frange!r} has {n} frames, more than the maximum of {max_frames:,}")
    try:
        frames = list(fileseq.FrameSet(frange.replace(" ", "")))
    except (fileseq.ParseException, fileseq.MaxSizeException, ValueError) as exc:
        raise RangeError(f"cannot parse frame range {frange!r}: {exc}") from None
    return frames


@dataclass(frozen=True)
class Chunk:
    """A unit of dispatch: one or more frame numbers run by one process."""

    index: int
    numbers: tuple[int, ...]

    @property
    def start(self) -> int:
        return self.numbers[0]

    @property
    def end(self) -> int:
        return self.numbers[-1]

    @property
    def label(self) -> str:
        if len(self.numbers) == 1:
            return str(self.numbers[0])
        return fileseq.framesToFrameRange(list(self.numbers), sort=False)


def chunks(frames: list[int], size: int) -> list[Chunk]:
    """Group `frames` in order into chunks of `size` frames (the last may be shorter)."""
    if size < 1:
        raise RangeError("chunk must be at least 1")
    return [Chunk(i, tuple(frames[o:o + size])) for i, o in enumerate(range(0, len(frames), size))]


def chunk_columns(frames: list[int], size: int) -> tuple[list[int], list[int], list[str]]:
    """Starts, ends and labels of the chunks of `frames`, as columns (fast for big layers)."""
    if size < 1:
        raise RangeError("chunk must be at least 1")
    if size == 1:
        return list(frames), list(frames), [str(f) for f in frames]
    cs = chunks(frames, size)
    return [c.start for c in cs], [c.end for c in cs], [c.label for c in cs]


def substitute(text: str, start: int, end: int) -> str:
    """Replace the frame tokens in one command word or string."""
    return (text.replace("#FRAME_START#", str(start))
                .replace("#FRAME_END#", str(end))
                .replace("#ZFRAME#", f"{start:04d}")
                .replace("#FRAME#", str(start)))


def expand_command(command: list[str] | str, start: int, end: int) -> list[str] | str:
    """Return `command` (argv list or shell string) with frame tokens replaced."""
    if isinstance(command, str):
        return substitute(command, start, end)
    return [substitute(word, start, end) for word in command]
