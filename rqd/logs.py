"""Frame log files: one per attempt, a header before the output and a footer after it."""

from __future__ import annotations

import datetime
import os
import re
import signal
from pathlib import Path
from typing import Mapping

# Attempt ids come from the network and become file names: allow only plain names.
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
# A log reply must fit in one worker message (MAX_WORKER_MESSAGE, 8 MiB) with room to spare.
MAX_READ = 4 * 1024 * 1024
RULE = "=" * 78


def safe_attempt_id(attempt_id: str) -> bool:
    """True when `attempt_id` can be used as a file name without escaping the directory."""
    return bool(_SAFE_ID.match(attempt_id)) and ".." not in attempt_id


def log_path(log_dir: str | Path, attempt_id: str) -> Path:
    return Path(log_dir) / f"{attempt_id}.log"


def _when(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch).astimezone().isoformat(timespec="seconds")


def header(*, attempt_id: str, command: list[str] | str, cwd: str,
           env: Mapping[str, str], host: str, hostname: str, started: float,
           job: str = "", layer: str = "", frames: str = "",
           submitted: list[str] | str | None = None, user: str | None = None,
           own_cwd: bool = False) -> bytes:
    """The text written before the frame's own output.

    `command` is what runs (paths translated for this host); `submitted`, when given, is the
    command as the job has it, before translation.  `user` is who the frame runs as when rqd
    switched to the job's user.  `cwd` is where it runs; `own_cwd` says rqd made it for this
    attempt because the job gives none.  `env` is exactly the frame's environment.
    """
    lines = [
        RULE,
        f"CueFarm attempt {attempt_id}",
        f"job:       {job}",
        f"layer:     {layer}",
        f"frames:    {frames}",
        f"host:      {host} ({hostname})",
        *([f"submitted: {_command_text(submitted)}"] if submitted is not None else []),
        f"command:   {_command_text(command)}",
        *([f"user:      {user}"] if user else []),
        f"cwd:       {cwd}" + (" (made for this attempt: the job gives no cwd)"
                                 if own_cwd else ""),
        f"started:   {_when(started)}",
        "environment:",
        *(f"  {k}={v}" for k, v in sorted(env.items())),
        RULE,
        "",
    ]
    return "\n".join(lines).encode("utf-8", "replace")


def _command_text(command: list[str] | str) -> str:
    return command if isinstance(command, str) else " ".join(_quote(w) for w in command)


def _quote(word: str) -> str:
    return word if word and not any(c.isspace() or c in "\"'" for c in word) else repr(word)


def describe_status(exit_status: int) -> str:
    if exit_status < 0:
        try:
            return f"{exit_status} (signal {signal.Signals(-exit_status).name})"
        except ValueError:
            return f"{exit_status} (signal {-exit_status})"
    return str(exit_status)


def footer(*, exit_status: int, started: float, stopped: float, peak_rss: int,
           cpu_time: float, reason: str = "") -> bytes:
    """The text appended once the frame's process has ended."""
    lines = [
        "",
        RULE,
        f"exit status: {describe_status(exit_status)}",
        *([f"reason:      {reason}"] if reason else []),
        f"runtime:     {max(0.0, stopped - started):.2f} s",
        f"peak rss:    {peak_rss / (1024 * 1024):.1f} MiB",
        f"cpu time:    {cpu_time:.2f} s",
        f"stopped:     {_when(stopped)}",
        RULE,
        "",
    ]
    return "\n".join(lines).encode("utf-8", "replace")


def refusal(*, attempt_id: str, host: str, hostname: str, job: str, layer: str, frames: str,
            reason: str, when: float) -> bytes:
    """The log of an attempt the host refused to start: nothing ran, and why."""
    lines = [
        RULE,
        f"CueFarm attempt {attempt_id}: refused by {host}, nothing ran",
        f"job:       {job}",
        f"layer:     {layer}",
        f"frames:    {frames}",
        f"host:      {host} ({hostname})",
        f"reason:    {reason}",
        f"refused:   {_when(when)}",
        RULE,
        "",
    ]
    return "\n".join(lines).encode("utf-8", "replace")


def append(path: Path, data: bytes) -> None:
    """Append `data` to a log; a log that cannot be written must not stop the worker."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0),
                 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def read_range(path: Path, offset: int, limit: int) -> tuple[int, int, bytes]:
    """Read up to `limit` bytes from `offset` (negative: from the end); return (offset, size, data).

    Raises OSError (FileNotFoundError when there is no such log).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        start = max(0, size + offset) if offset < 0 else min(offset, size)
        limit = max(0, min(limit, MAX_READ))
        f.seek(start)
        data = f.read(limit) if limit else b""
    return start, size, data


def prune(root: Path, before: float, keep: set[str], max_bytes: int = 0) -> tuple[int, int]:
    """Remove frame logs under `root` (and its per-farm directories) last written before
    `before` (epoch), then, with `max_bytes`, the oldest until the rest fit in it.  Logs of
    attempts in `keep` (running, or finished and not yet acknowledged) stay whatever their age.
    Return (files removed, bytes freed)."""
    found: list[tuple[float, int, str]] = []      # mtime, size, path
    dirs = [str(root)]
    while dirs:
        directory = dirs.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    if directory == str(root):      # per-farm directories, one level
                        dirs.append(e.path)
                    continue
                if not e.name.endswith(".log") or e.name[:-4] in keep:
                    continue
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            found.append((st.st_mtime, st.st_size, e.path))
    found.sort()
    total = sum(size for _, size, _ in found)
    removed = freed = 0
    for mtime, size, path in found:
        if mtime >= before and (not max_bytes or total - freed <= max_bytes):
            break
        try:
            os.unlink(path)
        except OSError:
            continue
        removed += 1
        freed += size
    return removed, freed
