"""Retention: finished jobs older than `[retention] finished_job_days` go to archive files.

A pass (a farm duty: one supervisor does it) takes the due jobs oldest first, in batches of at
most `batch_frames` frames; each batch is written to one gzip file of JSON lines in
`[retention] directory` (written beside, flushed to disk, then renamed into place), and only
then deleted from the live tables in one short transaction.  A crash between the two leaves the
jobs live and a file holding them: the next pass writes them again, and restoring skips jobs
that are live.  Usage accounting's per-day figures (billing) are never archived; a job is due
only once every attempt of it has been counted.

File: the first line is a manifest {"cuefarm_archive": 1, "jobs": [...], ...}; then one line
per row, {"t": table, "r": row}.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec
from sqlalchemy import Engine

from cuefarm.config import ConfigError, data_dir
from supervisor.store import archive as store

log = logging.getLogger(__name__)
DAY = 86400.0
FORMAT = 1
NAME_RE = re.compile(r"cuefarm-archive-[0-9TZ]+-[0-9]+\.jsonl\.gz")


@dataclass
class RetentionConfig:
    """The `[retention]` section (env CUEFARM_RETENTION_<KEY>)."""

    finished_job_days: float = 0.0    # archive jobs finished this long ago; 0: never
    directory: str = ""               # where archive files go; default <data dir>/archive
    interval: float = 300.0           # seconds between passes
    batch_frames: int = 20_000        # frames deleted in one transaction (at least one job)
    pass_jobs: int = 5_000            # jobs archived in one pass at most
    restored_days: float = 7.0        # a restored job stays this long before it goes again

    def check(self) -> None:
        for key in ("finished_job_days", "restored_days"):
            if getattr(self, key) < 0:
                raise ConfigError(f"[retention] {key}: must be 0 or more")
        for key in ("interval", "batch_frames", "pass_jobs"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"[retention] {key}: must be more than 0")

    @property
    def path(self) -> Path:
        return Path(self.directory) if self.directory else data_dir() / "archive"


@dataclass
class PassResult:
    jobs: int = 0
    frames: int = 0
    files: list[str] | None = None


def archive_pass(engine: Engine, cfg: RetentionConfig, now: float,
                 stop: Callable[[], bool] = lambda: False, most: int | None = None,
                 days: float | None = None, dry_run: bool = False) -> PassResult:
    """Archive the jobs due now, batch by batch, until none is left, `pass_jobs` (or `most`)
    are done or `stop()` says so.  `days` overrides finished_job_days; with `dry_run`, only
    count the jobs (and frames) that would go, writing and deleting nothing."""
    result = PassResult(files=[])
    limit = cfg.pass_jobs if most is None else min(most, cfg.pass_jobs)
    days = cfg.finished_job_days if days is None else days
    if days <= 0:
        return result
    before = now - days * DAY
    restored_before = now - cfg.restored_days * DAY
    if dry_run:
        with engine.connect() as conn:
            due = store.due_jobs(conn, before, restored_before, limit)
            conn.rollback()
        result.jobs, result.frames = len(due), sum(n for _, n in due)
        return result
    directory = cfg.path
    directory.mkdir(parents=True, exist_ok=True)
    while result.jobs < limit and not stop():
        with engine.connect() as conn:
            due = store.due_jobs(conn, before, restored_before,
                                 min(1000, limit - result.jobs))
            conn.rollback()
        if not due:
            break
        for batch in _batches(due, cfg.batch_frames):
            ids = [j for j, _ in batch]
            path, finished = _write(engine, directory, ids, now)
            with engine.begin() as conn:
                gone = store.unchanged(conn, finished)
                store.delete_jobs(conn, gone)
            if len(gone) < len(ids):
                log.info("jobs %s changed while archived: kept", sorted(set(ids) - set(gone)))
            ids = gone
            result.jobs += len(ids)
            result.frames += sum(n for j, n in batch if j in set(gone))
            result.files.append(path.name)
            log.info("archived %d job(s) to %s", len(ids), path)
            if stop():
                break
    if result.jobs:
        store.reclaim(engine)
    return result


def _batches(due: list[tuple[int, int]], most: int) -> Iterator[list[tuple[int, int]]]:
    batch: list[tuple[int, int]] = []
    frames = 0
    for job_id, n in due:
        if batch and frames + n > most:
            yield batch
            batch, frames = [], 0
        batch.append((job_id, n))
        frames += n
    if batch:
        yield batch


def _write(engine: Engine, directory: Path, ids: list[int], now: float
           ) -> tuple[Path, dict[int, float]]:
    """Write the jobs' rows to a new archive file; the file and each job's finish time."""
    stamp = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"cuefarm-archive-{stamp}-{ids[0]}.jsonl.gz"
    part = path.with_name(path.name + ".part")
    with engine.connect() as conn:
        rows = list(store.job_rows(conn, ids))
        conn.rollback()
    jobs = [{"id": r["id"], "name": r["name"], "project": r["project"], "user": r["user"],
             "finished_at": r["finished_at"]} for t, r in rows if t == "job"]
    manifest = {"cuefarm_archive": FORMAT, "created_at": now, "jobs": jobs, "rows": len(rows)}
    encode = msgspec.json.Encoder().encode
    with open(part, "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=5) as gz:
            gz.write(encode(manifest) + b"\n")
            lines = []
            for table, row in rows:
                lines.append(encode({"t": table, "r": row}))
                if len(lines) >= 5000:
                    gz.write(b"\n".join(lines) + b"\n")
                    lines = []
            if lines:
                gz.write(b"\n".join(lines) + b"\n")
        raw.flush()
        os.fsync(raw.fileno())
    os.replace(part, path)
    return path, {j["id"]: j["finished_at"] for j in jobs}


class ArchiveError(ValueError):
    pass


def resolve(cfg: RetentionConfig, name: str) -> Path:
    """The archive file called `name` in the archive directory (a bare file name)."""
    if not NAME_RE.fullmatch(name):
        raise ArchiveError(f"{name!r} is not the name of an archive file "
                           "(cuefarm-archive-....jsonl.gz; see `cuefarm archive list`)")
    path = cfg.path / name
    if not path.is_file():
        raise ArchiveError(f"no archive file {name} in {cfg.path}")
    return path


def manifest(path: Path) -> dict[str, Any]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            head = json.loads(f.readline())
    except (OSError, EOFError, ValueError) as exc:
        raise ArchiveError(f"{path.name}: not a readable archive: {exc}") from None
    if not isinstance(head, dict) or head.get("cuefarm_archive") != FORMAT:
        raise ArchiveError(f"{path.name}: line 1 is not an archive manifest")
    return head


def read_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of an archive file; ArchiveError naming the line that cannot be read."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        f.readline()
        for n, line in enumerate(f, start=2):
            try:
                item = json.loads(line)
                yield item["t"], item["r"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ArchiveError(f"{path.name}: line {n}: {exc}") from None


def listing(cfg: RetentionConfig) -> list[dict[str, Any]]:
    """The archive files, oldest first: name, size, jobs, first and last job finish time."""
    out = []
    directory = cfg.path
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("cuefarm-archive-*.jsonl.gz")):
        try:
            head = manifest(path)
            jobs = head["jobs"]
            finished = [j["finished_at"] for j in jobs if j.get("finished_at")]
            out.append({"file": path.name, "bytes": path.stat().st_size,
                        "created_at": head["created_at"], "jobs": len(jobs),
                        "job_ids": [j["id"] for j in jobs], "rows": head.get("rows", 0),
                        "first_finished": min(finished, default=None),
                        "last_finished": max(finished, default=None), "error": ""})
        except (ArchiveError, KeyError, TypeError, OSError) as exc:
            out.append({"file": path.name, "bytes": path.stat().st_size, "created_at": None,
                        "jobs": 0, "job_ids": [], "rows": 0, "first_finished": None,
                        "last_finished": None, "error": str(exc)})
    return out


def restore_file(engine: Engine, cfg: RetentionConfig, name: str, now: float,
                 only: set[int] | None = None) -> list[int]:
    """Bring the jobs of archive file `name` back (read-only); the ids restored."""
    path = resolve(cfg, name)
    manifest(path)
    with engine.begin() as conn:
        try:
            ids = store.restore(conn, read_rows(path), name, now, only)
        except store.RestoreError as exc:
            raise ArchiveError(str(exc)) from None
        missing = sorted((only or set()) - set(ids))
        if missing:     # raised inside the transaction: nothing is restored
            raise ArchiveError(f"job {missing[0]} is not in {name}")
        return ids


def duty(cfg: RetentionConfig, engine: Engine, clock: Callable[[], float] = time.time
         ) -> Callable[[Any], Callable[[], Any] | None]:
    """The periodic task: fn(cx) returns the pass to run on the housekeeping thread."""
    def due(cx: Any) -> Callable[[], Any] | None:
        if cfg.finished_job_days <= 0:
            return None
        return lambda: archive_pass(engine, cfg, clock())
    return due
