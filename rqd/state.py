"""What must survive an rqd crash: running attempts and completions not yet acknowledged.

Layout of the state directory (one per rqd; several rqds on a machine each have their own):

    rqd.lock                    held (flock) while an rqd uses this directory
    journal                     running attempts and unacknowledged completions, one JSON record
                                per line (see below)
    drained                     the previous run exited at the end of a drain ("exit"/"reboot")
    registered                  the supervisor this rqd is registered with, while it is (read by
                                the container healthcheck: a worker has no key for asking the
                                supervisor's client API)
    farm                        the farm (its id) the running attempts and completions belong to
    other-farms/<farm id>/      completions of a farm this rqd no longer serves, set aside
    work/<farm id>/<attempt_id>/
                                the working directory of a frame whose job gives none

The journal is appended to: `{"op": "run", ...}` when a frame starts, `{"op": "ended", ...}`
when its completion replaces it, `{"op": "done", ...}` for the completion, `{"op": "acked",
...}` once the supervisor acknowledged it.  Changes are kept in memory until `flush()`, which
appends all of them and syncs the file once: the daemon flushes once per turn of its loop, so
the frames that start and end in one turn cost one disk sync together, not two each.  After a
crash the journal is read back (a last line torn by the crash is ignored); it is rewritten with
only what is still live when it opens and whenever most of its lines are history.  The small
`farm` and `drained` files are written to a temporary name, synced and renamed.

Attempt ids are unique within one farm (one database) only: logs and working directories are
kept per farm, and what this rqd keeps for one farm is never reported to another.

Directories `running/` and `completions/` (one JSON file per record) are what older rqds kept;
they are read once and folded into the journal.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from cuefarm import lockfile
from cuefarm import protocol as p
from rqd.logs import safe_attempt_id

log = logging.getLogger(__name__)


class RunningRecord(msgspec.Struct, forbid_unknown_fields=False):
    """A frame process started by this rqd; enough to find and kill it after a crash."""

    attempt_id: str
    pid: int
    create_time: float
    pgid: int
    started: float
    log_path: str = ""
    slots: int = 1


class StateLocked(Exception):
    """Another rqd already uses this state directory."""


class _Run(msgspec.Struct, tag_field="op", tag="run"):
    record: RunningRecord


class _Ended(msgspec.Struct, tag_field="op", tag="ended"):
    attempt_id: str


class _Done(msgspec.Struct, tag_field="op", tag="done"):
    completion: p.Completion


class _Acked(msgspec.Struct, tag_field="op", tag="acked"):
    attempt_id: str


_Entry = _Run | _Ended | _Done | _Acked
_decode_entry = msgspec.json.Decoder(_Entry).decode
_encode = msgspec.json.Encoder().encode

# Rewrite the journal once it holds this many lines more than what is live.
COMPACT_AFTER = 2000


class Kept(msgspec.Struct):
    """What a journal holds: running attempts and unacknowledged completions, by attempt id."""

    running: dict[str, RunningRecord]
    completions: dict[str, p.Completion]
    lines: int = 0


def read_journal(path: Path) -> Kept:
    """Replay a journal file (missing: empty).  A line that cannot be read is skipped with an
    error, except the last one, which a crash may have cut short."""
    kept = Kept({}, {})
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return kept
    lines = data.split(b"\n")
    torn = lines.pop() if lines else b""     # after the last newline: empty unless torn
    if torn:
        log.warning("%s: the last line was cut short (a crash while writing); ignored", path)
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        kept.lines += 1
        try:
            entry = _decode_entry(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("%s line %d is unreadable (%s); skipped", path, n, exc)
            continue
        if isinstance(entry, _Run):
            if safe_attempt_id(entry.record.attempt_id):
                kept.running[entry.record.attempt_id] = entry.record
        elif isinstance(entry, _Ended):
            kept.running.pop(entry.attempt_id, None)
        elif isinstance(entry, _Done):
            if safe_attempt_id(entry.completion.attempt_id):
                kept.completions[entry.completion.attempt_id] = entry.completion
        else:
            kept.completions.pop(entry.attempt_id, None)
    return kept


def kept_in(root: str | Path) -> Kept:
    """What the state directory `root` has on disk now (another process may be using it):
    what a crash at this moment would leave."""
    return read_journal(Path(root) / "journal")


class StateDir:
    """The persisted state of one rqd."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.journal_path = self.root / "journal"
        self.running: dict[str, RunningRecord] = {}
        self.completions: dict[str, p.Completion] = {}
        self._pending: list[bytes] = []
        self._lines = 0              # lines in the journal file
        self._fd: int | None = None
        self._torn = False           # the last append failed part way
        self._lock_file = None

    def open(self) -> None:
        """Take the lock and read the journal back; raise StateLocked if another rqd holds
        the lock."""
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            self._lock_file = lockfile.take(self.root / "rqd.lock", "")
        except lockfile.Held:
            raise StateLocked(f"state directory {self.root} is in use by another rqd") from None
        _remove(self.root / "registered")     # a previous run's, not this one's
        kept = read_journal(self.journal_path)
        self.running, self.completions = kept.running, kept.completions
        legacy = self._read_legacy()
        self._rewrite()
        for path in legacy:          # folded into the journal, which is synced
            _remove(path)

    def close(self) -> None:
        try:
            if self._fd is not None:
                self.flush()
        finally:
            if self._lock_file is not None:
                try:
                    _remove(self.root / "registered")
                except OSError:
                    pass            # the lock goes below: the note is not believed without it
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            if self._lock_file is not None:
                self._lock_file.close()        # closing releases the flock
                self._lock_file = None

    def flush(self) -> None:
        """Make every change since the last flush durable (one append, one sync).  On an
        OSError the changes stay pending and the next flush tries again."""
        if not self._pending or self._fd is None:
            return
        data = b"".join(self._pending)
        if self._torn:            # a failed write may have left half a line: end it first
            data = b"\n" + data
        self._torn = True
        written = 0
        while written < len(data):
            written += os.write(self._fd, data[written:])
        _sync(self._fd)
        self._torn = False
        self._lines += len(self._pending)
        self._pending.clear()
        if self._lines > COMPACT_AFTER + len(self.running) + len(self.completions):
            self._rewrite()

    def _add(self, entry: _Entry) -> None:
        self._pending.append(_encode(entry) + b"\n")

    def _rewrite(self) -> None:
        """Replace the journal by one holding only what is live (temporary file, synced,
        renamed, directory synced), and append to the new one from now on."""
        self._pending.clear()
        lines = [_encode(_Run(r)) + b"\n" for r in self.running.values()]
        lines += [_encode(_Done(c)) + b"\n" for c in self.completions.values()]
        _write(self.journal_path, b"".join(lines))
        _sync_dir(self.root)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.journal_path,
                           os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
        self._lines = len(lines)
        self._torn = False

    def _read_legacy(self) -> list[Path]:
        """Records older rqds kept one per file: take them, return the files."""
        found: list[Path] = []
        for sub, cls, into in (("running", RunningRecord, self.running),
                               ("completions", p.Completion, self.completions)):
            directory = self.root / sub
            if not directory.is_dir():
                continue
            for item, path in _load_all(directory, cls):
                into.setdefault(item.attempt_id, item)
                found.append(path)
        return found

    # -- running attempts ---------------------------------------------------------------------

    def save_running(self, record: RunningRecord) -> None:
        self.running[record.attempt_id] = record
        self._add(_Run(record))

    def remove_running(self, attempt_id: str) -> None:
        if self.running.pop(attempt_id, None) is not None:
            self._add(_Ended(attempt_id))

    def load_running(self) -> list[RunningRecord]:
        return list(self.running.values())

    # -- completions --------------------------------------------------------------------------

    def save_completion(self, completion: p.Completion) -> None:
        self.completions[completion.attempt_id] = completion
        self._add(_Done(completion))

    def remove_completion(self, attempt_id: str) -> bool:
        """Forget an acknowledged completion; False when there was none (or a bad id)."""
        if self.completions.pop(attempt_id, None) is None:
            return False
        self._add(_Acked(attempt_id))
        return True

    def has_completion(self, attempt_id: str) -> bool:
        return attempt_id in self.completions

    def load_completions(self) -> list[p.Completion]:
        return list(self.completions.values())

    # -- the farm served ---------------------------------------------------------------------

    def load_farm(self) -> str:
        """The id of the farm whose attempts this directory keeps ("" before the first)."""
        try:
            farm = (self.root / "farm").read_text().strip()
        except (OSError, UnicodeDecodeError):
            return ""
        return farm if safe_attempt_id(farm) else ""

    def save_farm(self, farm: str) -> None:
        _write(self.root / "farm", farm.encode())

    def set_aside_completions(self, farm: str) -> Path:
        """Move the completions kept for `farm` out of the way (to other-farms/<farm>/, one
        JSON file each): they must not be reported to another farm, and are not thrown away.
        Return where."""
        target = self.root / "other-farms" / (farm or "unknown")
        target.mkdir(parents=True, exist_ok=True)
        for c in self.completions.values():
            _write(target / f"{c.attempt_id}.json", _encode(c))
        self.completions.clear()
        self._rewrite()
        return target

    # -- a finished drain ---------------------------------------------------------------------

    def save_drained(self, action: str) -> None:
        """Remember that this rqd exits (or reboots) because a drain asked it to, so the next
        run can tell the supervisor the drain is done."""
        _write(self.root / "drained", action.encode())

    def load_drained(self) -> str:
        """The action a drain ended the previous run with ("exit", "reboot"), or ""."""
        try:
            action = (self.root / "drained").read_text().strip()
        except (OSError, UnicodeDecodeError):
            return ""
        return action if action in ("exit", "reboot") else ""

    def clear_drained(self) -> None:
        _remove(self.root / "drained")

    # -- registration, for a healthcheck ------------------------------------------------------

    def save_registered(self, note: str) -> None:
        """Note that this rqd is registered (`note`: with which supervisor, as which host);
        `note` "" removes the note."""
        if note:
            _write(self.root / "registered", note.encode())
        else:
            _remove(self.root / "registered")


def registered_in(root: str | Path) -> str:
    """What the rqd using the state directory `root` noted of its registration: "" when it is
    not registered, or no rqd runs there (a killed rqd cannot remove its note, but its lock
    goes with it)."""
    root = Path(root)
    if not lockfile.held(root / "rqd.lock"):
        return ""
    try:
        return (root / "registered").read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _sync(fd: int) -> None:
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _sync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX; Windows has no directory handles to sync)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _load_all(directory: Path, cls: type) -> list[tuple]:
    """(record, file) of each readable record file of an older rqd in `directory`."""
    items = []
    for path in sorted(directory.glob("*.json")):
        try:
            item = msgspec.json.decode(path.read_bytes(), type=cls)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Keep the evidence but never trip over it again.
            log.error("unreadable state file %s (%s); moved aside", path, exc)
            try:
                os.replace(path, path.with_name(path.name + ".bad"))
            except OSError:
                pass
            continue
        if item.attempt_id != path.stem or not safe_attempt_id(item.attempt_id):
            log.error("state file %s names attempt %r; ignored", path, item.attempt_id)
            continue
        items.append((item, path))
    return items
