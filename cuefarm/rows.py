"""The rows the supervisor sends for jobs, layers, frames and hosts, as typed structs.

These are the shapes of `Rows.rows` in the replies to `list_jobs`, `list_layers`,
`list_frames` and `list_hosts` (and of the rows in change events).  On the wire a row is a
map with exactly these keys; a reader that wants the types checks a row with `check(row,
JobRow)`.  Tests build their sample rows with `sample(JobRow, ...)`, so a sample cannot
drift from what the supervisor sends: a key the row does not have, or a value of the wrong
type, is an error.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec


class _Row(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    pass


class _Counts(_Row):
    """Frames in each state (of a job or a layer)."""

    waiting: int
    depend: int
    running: int
    succeeded: int
    dead: int
    eaten: int


class JobRow(_Counts):
    id: int
    name: str
    project: str
    user: str
    priority: int
    state: str                       # ACTIVE, PAUSED, FINISHED
    killed: bool
    status: str                      # in words: waiting, running, dependency, done, ...
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    frames_total: int
    min_slots: int
    max_slots: int | None
    flagged: str                     # why the job was paused by the farm ("": it was not)
    slots_used: int
    stalled: bool
    comments: int                    # how many comments people left on the job


class LayerRow(_Counts):
    id: int
    job_id: int
    name: str
    command: list[str]
    range: str
    chunk: int
    slots: int
    slots_mode: str
    memory: int
    gpus: int
    max_retries: int
    depends_on: list[Any]
    tags: list[str]
    os: str | None
    hosts: list[str]
    omit_hosts: list[str]
    requirements: Any
    limits: list[str]
    timeout: float
    timeout_no_output: float
    frames_total: int
    slots_running: int
    outputs: list[str] = []          # path patterns of the images a frame writes


class FrameRow(_Row):
    id: int
    job_id: int
    layer_id: int
    layer: str
    number: int
    frames: str                      # the frame numbers it carries ("5", "5-8")
    frame_start: int
    frame_end: int
    state: str
    attempt: int                     # the latest attempt's number (0: none yet)
    attempt_id: str | None           # "<frame id>.<attempt>"
    attempt_state: str | None
    retries: int
    host: str | None
    started_at: float | None
    stopped_at: float | None
    runtime: float | None
    peak_rss: int
    cpu_time: float
    exit_status: int | None
    reason: str                      # why the latest attempt did not run or ended ("": none)
    progress: int | None             # percent of the latest attempt, from what it printed


class RunningFrameRow(FrameRow):
    """A frame running on a host (`list_frames` with a host), from any job."""

    job_name: str
    slots: int


class HostRow(_Row):
    id: int
    name: str
    hostname: str
    address: str
    os: str
    cores: int
    memory_mb: int
    memory_free_mb: int
    disk_free_mb: int
    gpus: int
    tags: list[str]
    state: str                       # UP, DOWN
    lock: str                        # OPEN, LOCKED
    lock_kind: str
    lock_slots: int | None
    nimby: bool
    draining: bool
    drain: Any
    slots: int
    slots_configured: int
    slots_override: int | None
    slots_total: int
    slots_used: int
    running: int
    load: float
    cpu_percent: float
    last_seen: float | None
    comments: int                    # how many comments people left on the host


R = TypeVar("R", bound=_Row)


def check(row: dict[str, Any], kind: type[R]) -> R:
    """`row` as a `kind`; msgspec.ValidationError naming the key that is missing, unknown or
    of the wrong type."""
    return msgspec.convert(row, kind, strict=True)


def sample(kind: type[R], **values: Any) -> dict[str, Any]:
    """A row of `kind` as the supervisor would send it, from the given values (every field)."""
    return msgspec.to_builtins(check(values, kind))
