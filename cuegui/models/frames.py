"""The frames table of one job."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

from cuegui import format as fmt
from cuegui.background import Stepper
from cuegui.models import estimate
from cuegui.models.ordering import STEP
from cuegui.models.table import RIGHT, Column, RowTableModel, field

_ID = itemgetter("id")


def runtime(frame: dict) -> float | None:
    """The attempt's run time: the recorded one, or the time so far while running."""
    if frame.get("state") == "RUNNING" and frame.get("started_at") is not None:
        return fmt.span(frame["started_at"], None)
    return frame.get("runtime")


def label(frame: dict) -> str:
    return str(frame.get("frames") or frame.get("number", ""))


def _blank0(frame: dict, key: str) -> str:
    value = frame.get(key)
    return "" if not value else str(value)


def progress(frame: dict) -> int | None:
    """A running frame's progress in percent (from the progress lines it printed); None for
    a frame that printed none, or is not running."""
    return frame.get("progress") if frame.get("state") == "RUNNING" else None


def _percent(frame: dict) -> str:
    value = progress(frame)
    return "" if value is None else f"{value}%"


def _exit(frame: dict) -> str:
    status = frame.get("exit_status")
    return "" if status is None else str(status)


class FramesModel(RowTableModel):
    """The frames of the job in `job_id`; rows of other jobs are ignored.

    It keeps what its frames say about run times per layer up to date as they change
    (`layer_runs()`, for the job's time left), so no one needs to read 100,000 frames again."""

    columns = [
        Column("frame", "Frame", lambda r: r.get("number"), text=label, width=80, align=RIGHT,
               filterable=True, tooltip=lambda r: f"frame id {r.get('id')}"),
        field("layer", "Layer", width=120, filterable=True),
        field("state", "State", width=92, filterable=True),
        Column("progress", "Progress", progress, text=_percent, width=90, align=RIGHT,
               header_tip="How far a running frame is, from the progress lines it prints "
                          "(Blender's, or PROGRESS 45%)"),
        field("host", "Host", width=110, filterable=True),
        field("attempt", "Try", width=40, align=RIGHT, text=lambda r: _blank0(r, "attempt"),
              header_tip="Attempt number"),
        field("started_at", "Start", width=84, align=RIGHT,
              text=lambda r: fmt.clock(r.get("started_at")),
              tooltip=lambda r: fmt.full_time(r.get("started_at"))),
        Column("runtime", "Runtime", runtime, width=72, align=RIGHT,
               text=lambda r: fmt.duration(runtime(r))),
        field("peak_rss", "Peak MB", width=70, align=RIGHT,
              text=lambda r: fmt.megabytes(r.get("peak_rss")),
              header_tip="Peak memory of the attempt's process tree"),
        field("cpu_time", "CPU", width=64, align=RIGHT,
              text=lambda r: fmt.duration(r.get("cpu_time")) if r.get("cpu_time") else "",
              header_tip="CPU time of the attempt's processes"),
        field("exit_status", "Exit", width=44, align=RIGHT, text=_exit),
        field("retries", "Retries", width=56, align=RIGHT, text=lambda r: _blank0(r, "retries"),
              header_tip="Failed attempts spent"),
        field("reason", "Reason", width=240, filterable=True,
              tooltip=lambda r: r.get("reason") or "",
              header_tip="Why the latest attempt did not run or ended (a refusal, a launch "
                         "failure, a kill...)"),
    ]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.job_id: Any = None
        self.paging = False                  # more of the job's frames are on their way
        self._seen: set | None = None        # ids seen while paging through a resync
        self._runs = estimate.FrameRuns()
        self._recount = Stepper(lambda _: None, self)

    def layer_runs(self) -> dict[str, estimate.LayerRuns]:
        """Per layer name, what the frames held say about run times (kept up to date: the
        same dict changes as frames change)."""
        return self._runs.layers

    def _stored(self, rows, gone: list) -> None:
        runs = self._runs
        for row in rows:
            runs.set(row)
        for rid in gone:
            runs.drop(rid)

    def _replaced(self) -> None:
        self._runs.clear()
        ids = list(self._all)
        self._recount.start(self._count_steps(ids))     # replaces a count under way
        if len(ids) < self.async_threshold:
            self._recount.finish()

    def _count_steps(self, ids: list):
        """Count a new set of frames in steps.  Each frame is read as it is by then, and a
        frame counts once by id, so batches applied meanwhile are neither lost nor doubled."""
        runs, rows = self._runs, self._all
        for start in range(0, len(ids), STEP):
            for rid in ids[start:start + STEP]:
                row = rows.get(rid)
                if row is not None:
                    runs.set(row)
            yield

    def show_job(self, job_id: Any, frames: list[dict], complete: bool = True) -> None:
        """Switch to another job's frames (a model reset), or resync the same job in place.
        Unless `complete`, `frames` is the first page and `add_page` brings the rest."""
        self.paging = not complete
        if job_id != self.job_id:
            self.job_id = job_id
            self._seen = None
            self.reset(frames)
        elif complete:
            self._seen = None
            self.replace_all(frames)
        else:
            # A resync of the job shown, page by page: update in place, and once the last
            # page is in, drop what no page had.
            self._seen = {f["id"] for f in frames}
            self.apply(frames)

    def add_page(self, job_id: Any, frames: list[dict], done: bool) -> None:
        """The next page of the job's frames, after `show_job`; `done` on the last one."""
        if job_id != self.job_id or job_id is None or not self.paging:
            return
        self.apply(frames)
        if self._seen is not None:
            self._seen.update(map(_ID, frames))
        if done:
            self.paging = False
            seen, self._seen = self._seen, None
            if seen is not None:
                gone = list(self._all.keys() - seen)   # in C: 100,000 rows held the UI 12 ms
                if gone:
                    self.apply([], gone)

    def apply_job(self, job_id: Any, frames: list[dict]) -> None:
        """Apply changed frames if they belong to the job shown."""
        if job_id == self.job_id and job_id is not None:
            self.apply([f for f in frames if f.get("job_id", job_id) == job_id])


class HostFramesModel(RowTableModel):
    """The frames running on one host, from any job; `job_name(job_id)` names their jobs."""

    columns = [
        Column("job", "Job", lambda r: r.get("job_name") or r.get("job_id"), width=180,
               filterable=True, tooltip=lambda r: f"job {r.get('job_id')}"),
        field("layer", "Layer", width=110, filterable=True),
        Column("frame", "Frame", lambda r: r.get("number"), text=label, width=70, align=RIGHT),
        field("attempt", "Try", width=40, align=RIGHT, text=lambda r: _blank0(r, "attempt")),
        field("started_at", "Start", width=84, align=RIGHT,
              text=lambda r: fmt.clock(r.get("started_at")),
              tooltip=lambda r: fmt.full_time(r.get("started_at"))),
        Column("runtime", "Runtime", runtime, width=72, align=RIGHT,
               text=lambda r: fmt.duration(runtime(r))),
        field("peak_rss", "Peak MB", width=70, align=RIGHT,
              text=lambda r: fmt.megabytes(r.get("peak_rss"))),
        field("cpu_time", "CPU", width=64, align=RIGHT,
              text=lambda r: fmt.duration(r.get("cpu_time")) if r.get("cpu_time") else ""),
    ]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.host: str | None = None

    def show_host(self, host: str | None, frames: list[dict]) -> None:
        """Switch to another host's frames, or resync the same host in place."""
        frames = [f for f in frames if f.get("host") == host and f.get("state") == "RUNNING"]
        if host == self.host:
            self.replace_all(frames)
        else:
            self.host = host
            self.reset(frames)

    def apply_host(self, host: str | None, frames: list[dict]) -> None:
        """Frames that started on the host stay; those that ended or moved away leave."""
        if host != self.host or host is None:
            return
        keep = [f for f in frames if f.get("host") == host and f.get("state") == "RUNNING"]
        gone = [f["id"] for f in frames if f.get("host") != host or f.get("state") != "RUNNING"]
        self.apply(keep, gone)
