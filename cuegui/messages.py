"""What the connection worker sends the UI thread: plain data, no Qt."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Snapshot:
    """Everything after a resync; models merge it in place."""

    supervisor: dict
    jobs: list[dict]
    hosts: list[dict]
    job_id: Any
    layers: list[dict]
    frames: list[dict]
    dependencies: list[dict] = field(default_factory=list)
    frames_complete: bool = True        # False: the rest of the frames follow in FramesPages


@dataclass
class Changes:
    """Rows changed by one or more event batches: frames and layers of the selected job only,
    and the frames running on (or just leaving) the selected host."""

    job_id: Any = None
    jobs: dict[Any, dict] = field(default_factory=dict)
    hosts: dict[Any, dict] = field(default_factory=dict)
    layers: dict[Any, dict] = field(default_factory=dict)
    frames: dict[Any, dict] = field(default_factory=dict)
    deleted_jobs: set = field(default_factory=set)
    host: str | None = None
    host_frames: dict[Any, dict] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.hosts or self.layers or self.frames or self.deleted_jobs
                    or self.host_frames)


@dataclass
class JobData:
    """The layers, frames and dependencies of a newly selected job (None: nothing selected).
    A big job's `frames` are its first page; the rest follow in FramesPages."""

    job_id: Any
    layers: list[dict]
    frames: list[dict]
    dependencies: list[dict] = field(default_factory=list)
    complete: bool = True               # False: more frames follow


@dataclass
class FramesPage:
    """The next page of the selected job's frames; `done` on the last one."""

    job_id: Any
    frames: list[dict]
    done: bool


@dataclass
class HostData:
    """The frames running on a newly selected host (None: nothing selected)."""

    host: str | None
    frames: list[dict]


def merge_rows(into: dict, rows: list[dict]) -> None:
    """Merge rows into `into` by id, later fields winning."""
    for row in rows:
        rid = row["id"]
        into[rid] = {**into[rid], **row} if rid in into else row
