"""A lock on a file, held while the process holding it runs: the operating system lets go of it
when the process ends, however it ends.  One rqd per state directory, one supervisor per SQLite
database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO


class Held(Exception):
    """Another process holds the lock; `holder` is what it wrote in the file."""

    def __init__(self, holder: str):
        super().__init__(holder)
        self.holder = holder


def take(path: Path, note: str) -> IO[str]:
    """Take the lock on `path` (created if missing) and write `note` and this process's id in
    it; close the returned file to let go.  Held when another process has it.  Where there is no
    advisory locking (Windows), the file is opened and nothing is checked."""
    f = open(path, "a+")
    try:
        import fcntl
    except ImportError:
        return f
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise Held(holder) from None
    f.seek(0)
    f.truncate()
    f.write(f"{note}{', ' if note else ''}pid {os.getpid()}\n")
    f.flush()
    return f


def held(path: Path) -> bool:
    """Whether a process holds the lock on `path`, found without taking it for long and
    without writing the file (a healthcheck asks this of a running rqd).  False when there is
    no such file.  Where there is no advisory locking (Windows), the file being there is the
    answer."""
    try:
        f = open(path)
    except FileNotFoundError:
        return False
    with f:
        try:
            import fcntl
        except ImportError:
            return True
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False
