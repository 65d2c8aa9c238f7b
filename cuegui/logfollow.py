"""One frame attempt's log, on the connection worker's thread.

The log view shows a window of the file, [start, end) in bytes, always starting at a line start.
Opening a log shows its tail; older pages are fetched on demand (`earlier`), later ones too
(`later`) when the window does not reach the end.  While the window reaches the end of the
latest attempt, every event about the frame (running frames change with each report) fetches
the new bytes; a retry starts the window over on the new attempt.  `find` scans the file page
by page for a pattern and moves the window to the first match, so a 100 MB log is searched
without ever being loaded whole.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any, Callable

from cuefarm import Client, CueFarmError, Unreachable

PAGE = 1024 * 1024
RULE = b"=" * 78
CONTEXT_LINES = 12          # lines shown above a match the window jumps to
# What "jump to the first error" looks for (the worker's header and footer never match).
ERROR_PATTERN = r"\b(error|errors|exception|traceback|fatal|segmentation fault|core dumped)\b"


@dataclass
class LogPiece:
    """Text of a log window.  `mode`: reset (replace), append, prepend.  `start`/`end` bound
    the window in bytes after this piece; `size` is the file's size; `focus_line` (reset only)
    a line of the new text to bring into view, e.g. a search match."""

    frame_id: Any
    title: str
    text: str = ""
    mode: str = "reset"
    attempt: int | None = None
    latest: int | None = None        # the frame's latest attempt number
    host: str | None = None
    start: int = 0
    end: int = 0
    size: int = 0
    following: bool = False
    focus_line: int | None = None
    error: str = ""
    running: bool = False            # the attempt shown is running: the log may grow

    @property
    def reset(self) -> bool:
        return self.mode == "reset"


def next_offset(chunk: dict) -> int:
    """Where the next read of a log continues: after the bytes this chunk carried."""
    return int(chunk.get("offset") or 0) + len(chunk.get("data") or b"")


def trim_to_line(data: bytes, offset: int) -> tuple[bytes, int]:
    """Drop a partial first line (a read that starts mid-line); return (data, new offset)."""
    if offset <= 0:
        return data, 0
    cut = data.find(b"\n")
    if cut < 0:
        return b"", offset + len(data)
    return data[cut + 1:], offset + cut + 1


class LogFollower:
    """The open log of `frame` (a frame row); `attempt` None means the latest attempt."""

    def __init__(self, frame: dict, attempt: int | None, emit: Callable[[LogPiece], None],
                 lost: Callable[[str], None], limit: int = PAGE,
                 interrupted: Callable[[], bool] = lambda: False):
        self.frame = dict(frame)
        self.attempt = attempt
        self.emit = emit
        self.lost = lost
        self.limit = limit
        self.interrupted = interrupted
        self.attempt_id: str | None = None     # None until the first read succeeded
        self.start = self.end = self.size = 0
        self.host: str | None = None
        # Appends end wherever the file ended; a character split between two reads must
        # still decode as one, so appended bytes go through one incremental decoder.
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    @property
    def frame_id(self) -> Any:
        return self.frame["id"]

    @property
    def title(self) -> str:
        f = self.frame
        label = f.get("frames") or f.get("number")
        job = f.get("job") or f"job {f.get('job_id')}"
        return f"{job} / {f.get('layer')} / frame {label}"

    @property
    def number(self) -> int | None:
        """The attempt shown: the chosen one, else the frame's latest."""
        return self.attempt if self.attempt is not None else (self.frame.get("attempt") or None)

    @property
    def following(self) -> bool:
        """New bytes are appended as they come: the window reaches the end of the latest."""
        return self.attempt_id is not None and self.end >= self.size and (
            self.attempt is None or self.attempt == self.frame.get("attempt"))

    def update(self, rows: list[dict]) -> bool:
        """Take the frame's latest row from a batch; True when the frame was in it."""
        hit = False
        for row in rows:
            if row["id"] == self.frame["id"]:
                self.frame = {**self.frame, **row}
                hit = True
        return hit

    # -- reading --------------------------------------------------------------------------------

    def _read(self, client: Client, offset: int, limit: int | None = None) -> dict | None:
        f = self.frame
        try:
            chunk = client.log(f["job_id"], f["layer"], f["number"], attempt=self.number,
                               offset=offset, limit=limit or self.limit)
        except Unreachable as exc:
            self.lost(str(exc))
            return None
        except CueFarmError as exc:
            self._send("", "reset" if self.attempt_id is None else "append", error=str(exc))
            return None
        self.attempt_id = chunk.get("attempt_id") or f"{f['id']}.{self.number}"
        self.host = chunk.get("host")
        self.size = int(chunk.get("size") or 0)
        return chunk

    def _send(self, text: str, mode: str, focus_line: int | None = None,
              error: str = "") -> None:
        running = self.frame.get("state") == "RUNNING" and (
            self.attempt is None or self.attempt == self.frame.get("attempt"))
        self.emit(LogPiece(self.frame_id, self.title, text, mode, self.number,
                           self.frame.get("attempt") or None, self.host, self.start, self.end,
                           self.size, self.following, focus_line, error, running))

    def fetch(self, client: Client) -> None:
        """Open (the tail), or append what is new; start over when a new attempt began."""
        frame = self.frame
        if (self.attempt_id is not None and self.attempt is None and frame.get("attempt_id")
                and frame["attempt_id"] != self.attempt_id):
            self.attempt_id = None          # a retry started: show the new attempt's log
        if not self.number:
            self.start = self.end = self.size = 0
            self._send("", "reset", error="This frame has not run yet.")
            return
        if self.attempt_id is None:
            self.tail(client)
        elif self.following:
            self.later(client, follow=True)

    def tail(self, client: Client) -> None:
        """Show the last page of the log."""
        chunk = self._read(client, -self.limit)
        if chunk is None:
            return
        data, start = trim_to_line(chunk["data"] or b"", int(chunk["offset"] or 0))
        self._decoder.reset()
        self.start, self.end = start, next_offset(chunk)
        self._send(self._decoder.decode(data), "reset")
        if self.end < self.size:            # it grew meanwhile
            self.later(client, follow=True)

    def later(self, client: Client, follow: bool = False) -> None:
        """Append the next page (follow: everything new up to the end of the file)."""
        while True:
            chunk = self._read(client, self.end)
            if chunk is None:
                return
            self.end = next_offset(chunk)
            text = self._decoder.decode(chunk["data"] or b"")
            if text or not follow:
                self._send(text, "append")
            if not follow or self.end >= self.size or not chunk["data"]:
                return

    def earlier(self, client: Client) -> None:
        """Prepend the page before the window."""
        if self.start <= 0 or self.attempt_id is None:
            return
        offset = max(0, self.start - self.limit)
        chunk = self._read(client, offset, self.start - offset)
        if chunk is None:
            return
        data, start = trim_to_line(chunk["data"] or b"", int(chunk["offset"] or 0))
        if start >= self.start:             # one line longer than a page: take it whole
            data, start = chunk["data"] or b"", int(chunk["offset"] or 0)
        self.start = start
        self._send(data.decode("utf-8", errors="replace"), "prepend")

    def jump(self, client: Client, offset: int, context: bytes = b"") -> None:
        """Show a page starting a few lines before byte `offset` (a line start)."""
        lines = context.split(b"\n")[-CONTEXT_LINES - 1:-1] if context else []
        back = sum(len(x) + 1 for x in lines)
        chunk = self._read(client, offset - back)
        if chunk is None:
            return
        self._decoder.reset()
        self.start, self.end = int(chunk["offset"] or 0), next_offset(chunk)
        self._send(self._decoder.decode(chunk["data"] or b""), "reset", focus_line=len(lines))

    def find(self, client: Client, pattern: str, offset: int = 0) -> None:
        """Scan from `offset` (a line start) for the first line matching `pattern` (a regular
        expression, case-insensitive) and jump there; report when there is none."""
        try:
            regex = re.compile(pattern.encode("utf-8"), re.IGNORECASE)
        except re.error as exc:
            self._send("", "append", error=f"bad pattern: {exc}")
            return
        carry, header = b"", offset == 0
        position = offset                   # file offset of carry[0]
        while not self.interrupted():
            chunk = self._read(client, position + len(carry))
            if chunk is None:
                return
            data = carry + (chunk["data"] or b"")
            last = len(data) if next_offset(chunk) >= self.size else data.rfind(b"\n") + 1
            lines_start = 0
            if header and data.startswith(RULE):
                # Skip the worker's header (between the first two rules) when scanning from 0.
                second = data.find(RULE, len(RULE))
                if second < 0 and last < len(data):
                    carry = data
                    continue
                lines_start = data.find(b"\n", second) + 1 if second >= 0 else 0
            header = False
            match = regex.search(data, lines_start, last)
            if match:
                line = data.rfind(b"\n", 0, match.start()) + 1
                self.jump(client, position + line, data[:line])
                return
            if last >= len(data) or not chunk["data"]:
                self._send("", "append", error=f"not found: {pattern}")
                return
            carry, position = data[last:], position + last
