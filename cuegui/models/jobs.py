"""The jobs table."""

from __future__ import annotations

from qtpy.QtGui import QColor

from dataclasses import replace

from cuefarm.states import SAME_REFUSAL
from cuegui import format as fmt
from cuegui import theme
from cuegui.models import estimate
from cuegui.models.table import CENTER, RIGHT, Column, RowTableModel, field


def done_fraction(job: dict) -> float:
    """Share of the job's frames that succeeded.  Eaten frames (given up on, or killed with
    their job) will not run again but were not rendered: they are not progress."""
    total = job.get("frames_total") or 0
    if not total:
        return 0.0
    return (job.get("succeeded") or 0) / total


def progress_text(job: dict) -> str:
    """The succeeded share; once nothing is left to run, what was eaten too: a killed job of
    four frames reads "0% · 4 eaten", never "100%".  (While frames are still to run, the
    bar's eaten segment and the tooltip say it; the text would not fit beside the share.)"""
    text = fmt.percent(done_fraction(job), 1.0)
    eaten = job.get("eaten") or 0
    left = sum(job.get(k) or 0 for k in ("waiting", "depend", "running"))
    return f"{text} · {eaten} eaten" if eaten and text and not left else text


def progress_tip(job: dict) -> str:
    total = job.get("frames_total") or 0
    parts = [f"{job.get(k) or 0} {k}" for k in
             ("succeeded", "running", "waiting", "depend", "dead", "eaten")]
    return f"{total} frames: " + ", ".join(parts)


def elapsed(job: dict) -> float | None:
    return fmt.span(job.get("started_at"), job.get("finished_at"))


def time_left(job: dict, detail=None) -> float | None:
    """Seconds until the job's frames are done (None: no figure); see cuegui.models.estimate.
    `detail` is (job id, layer rows, layer runs) of the selected job."""
    return estimate.value(job, detail).seconds


def shown_status(job: dict) -> str | None:
    """The status pill: "flagged" for a job the supervisor paused itself (its `flagged` says
    why, e.g. every UP host failed it), else the supervisor's status."""
    return "flagged" if job.get("flagged") else job.get("status")


def status_tip(job: dict) -> str:
    tip = f"{job.get('state')}" + (" - stalled" if job.get("stalled") else "")
    if (job.get("flagged") or "").startswith(SAME_REFUSAL):
        tip += (f"\nPaused by the supervisor: {job['flagged']}\n"
                "The job's own problem, not the hosts': fix it, then resume it.")
    elif job.get("flagged"):
        tip += (f"\nPaused by the supervisor: {job['flagged']}\n"
                "Clear its bad hosts and resume it when the cause is fixed.")
    return tip


def _count(key: str):
    return lambda r: str(r.get(key) or 0)


class JobsModel(RowTableModel):
    """Jobs by id; the `progress` column carries the done fraction for the progress delegate.

    Finished jobs are dimmed so that the eye goes to the work still under way.
    """

    def row_foreground(self, row: dict) -> QColor | None:
        return theme.dim_text() if row.get("state") == "FINISHED" else None

    columns = [
        field("id", "ID", width=62, align=RIGHT),
        field("name", "Name", width=260, filterable=True),
        Column("comments", "Notes", lambda r: r.get("comments") or 0, width=48,
               text=lambda r: str(r.get("comments") or "") if r.get("comments") else "",
               tooltip=lambda r: (f"{r['comments']} comment{'' if r['comments'] == 1 else 's'}"
                                  if r.get("comments") else ""),
               header_tip="Comments people left (read and write them in the Comments tab)"),
        field("project", "Project", width=100, filterable=True),
        field("user", "User", width=90, filterable=True),
        Column("status", "Status", shown_status, width=92, filterable=True,
               tooltip=status_tip),
        Column("progress", "Progress", done_fraction, width=150, align=CENTER,
               text=progress_text, tooltip=progress_tip),
        field("running", "Run", width=48, align=RIGHT, text=_count("running"),
              header_tip="Frames running"),
        field("waiting", "Wait", width=52, align=RIGHT, text=_count("waiting"),
              header_tip="Frames waiting for a slot"),
        field("dead", "Dead", width=50, align=RIGHT, text=_count("dead"),
              color=lambda r: theme.dead_text() if r.get("dead") else None,
              header_tip="Frames that failed and have no retries left"),
        field("slots_used", "Slots", width=52, align=RIGHT, text=_count("slots_used"),
              header_tip="Slots in use by running frames"),
        field("priority", "Pri", width=44, align=RIGHT, header_tip="Priority"),
        field("submitted_at", "Submitted", width=104, align=RIGHT,
              text=lambda r: fmt.clock(r.get("submitted_at")),
              tooltip=lambda r: fmt.full_time(r.get("submitted_at"))),
        Column("elapsed", "Elapsed", elapsed, width=76, align=RIGHT,
               text=lambda r: fmt.duration(elapsed(r)),
               tooltip=lambda r: "started " + fmt.full_time(r.get("started_at"))
               if r.get("started_at") else "not started"),
        Column("left", "Left", lambda r: estimate.value(r, None).sort_value(), width=104,
               align=RIGHT, text=lambda r: estimate.value(r, None).text(),
               tooltip=lambda r: estimate.value(r, None).why,
               header_tip="Estimated time left from the frames' run times (the selected "
                          "job), or blocked when nothing of the job can run"),
        field("min_slots", "Min", width=44, align=RIGHT, hidden=True,
              header_tip="Slots the job is guaranteed (fair share)"),
        field("max_slots", "Max", width=44, align=RIGHT, hidden=True,
              header_tip="Most slots the job may use"),
    ]

    def __init__(self, parent=None):
        super().__init__(parent)
        # (job id, layer rows, layer runs) of the selected job: its time left comes from them.
        self.detail: tuple | None = None
        # Ids of rows on their way out.  Connected before any view's selection model, which
        # moves its current row on rowsAboutToBeRemoved, so the window can tell that move
        # from a user's choice.
        self.leaving: set = set()
        self.rowsAboutToBeRemoved.connect(self._rows_leaving)
        self.rowsRemoved.connect(lambda *_: self.leaving.clear())
        left = lambda r: estimate.value(r, self.detail)          # noqa: E731
        self.columns = [replace(c, value=lambda r: left(r).sort_value(),
                                text=lambda r: left(r).text(), tooltip=lambda r: left(r).why)
                        if c.key == "left" else c for c in type(self).columns]

    def _rows_leaving(self, _parent, first: int, last: int) -> None:
        self.leaving = {self.row(i)["id"] for i in range(first, last + 1)}

    def set_detail(self, job_id, layers: list[dict], frames) -> None:
        """The selected job's layers and frames (None: no job selected), for its time left.
        `frames` is its frame rows, or what they say per layer already (a dict of
        estimate.LayerRuns by layer name, as FramesModel.layer_runs() keeps it)."""
        runs = frames if isinstance(frames, dict) else estimate.layer_runs(frames)
        self.detail = None if job_id is None else (job_id, list(layers), runs)
