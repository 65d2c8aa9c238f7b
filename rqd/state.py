"""What must survive an rqd crash: running attempts and completions not yet acknowledged.

Layout of the state directory (one per rqd; several rqds on a machine each have their own):

    rqd.lock                    held (flock) while an rqd uses this directory
    running/<attempt_id>.json   a frame process this rqd started (pid, create_time, pgid)
    completions/<attempt_id>.json
                                a finished attempt the supervisor has not acknowledged yet
    drained                     the previous run exited at the end of a drain ("exit"/"reboot")
    farm                        the farm (its id) the running attempts and completions belong to
    other-farms/<farm id>/      completions of a farm this rqd no longer serves, set aside
    work/<farm id>/<attempt_id>/
                                the working directory of a frame whose job gives none

Attempt ids are unique within one farm (one database) only: logs and working directories are
kept per farm, and what this rqd keeps for one farm is never reported to another.

Each file is written to a temporary name, fsynced and renamed, so a crash leaves either the old
or the new content, never half of one.
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


class StateDir:
    """The persisted state of one rqd."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.running_dir = self.root / "running"
        self.completions_dir = self.root / "completions"
        self._lock_file = None

    def open(self) -> None:
        """Create the directories and take the lock; raise StateLocked if another rqd holds it."""
        self.running_dir.mkdir(parents=True, exist_ok=True)
        self.completions_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock_file = lockfile.take(self.root / "rqd.lock", "")
        except lockfile.Held:
            raise StateLocked(f"state directory {self.root} is in use by another rqd") from None

    def close(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()        # closing releases the flock
            self._lock_file = None

    # -- running attempts ---------------------------------------------------------------------

    def save_running(self, record: RunningRecord) -> None:
        _write(self.running_dir / f"{record.attempt_id}.json", msgspec.json.encode(record))

    def remove_running(self, attempt_id: str) -> None:
        _remove(self.running_dir / f"{attempt_id}.json")

    def load_running(self) -> list[RunningRecord]:
        return _load_all(self.running_dir, RunningRecord)

    # -- completions --------------------------------------------------------------------------

    def save_completion(self, completion: p.Completion) -> None:
        _write(self.completions_dir / f"{completion.attempt_id}.json",
               msgspec.json.encode(completion))

    def remove_completion(self, attempt_id: str) -> bool:
        """Forget an acknowledged completion; False when there was none (or a bad id)."""
        if not safe_attempt_id(attempt_id):
            return False
        return _remove(self.completions_dir / f"{attempt_id}.json")

    def has_completion(self, attempt_id: str) -> bool:
        return (safe_attempt_id(attempt_id)
                and (self.completions_dir / f"{attempt_id}.json").is_file())

    def load_completions(self) -> list[p.Completion]:
        return _load_all(self.completions_dir, p.Completion)

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
        """Move the completions kept for `farm` out of the way (to other-farms/<farm>/): they
        must not be reported to another farm, and are not thrown away.  Return where."""
        target = self.root / "other-farms" / (farm or "unknown")
        target.mkdir(parents=True, exist_ok=True)
        for path in self.completions_dir.glob("*.json"):
            os.replace(path, target / path.name)
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


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _remove(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except FileNotFoundError:
        return False


def _load_all(directory: Path, cls: type) -> list:
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
        items.append(item)
    return items
