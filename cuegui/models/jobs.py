"""The jobs table."""

from __future__ import annotations

from qtpy.QtGui import QColor

from cuefarm.states import SAME_REFUSAL
from cuegui import format as fmt
from cuegui import theme
from cuegui.models.table import CENTER, RIGHT, Column, RowTableModel, field



def done_fraction(job: dict) -> float:
    """Share of the job's frames that will not run again: succeeded or eaten."""
    total = job.get("frames_total") or 0
    if not total:
        return 0.0
    return ((job.get("succeeded") or 0) + (job.get("eaten") or 0)) / total


def progress_tip(job: dict) -> str:
    total = job.get("frames_total") or 0
    parts = [f"{job.get(k) or 0} {k}" for k in
             ("succeeded", "running", "waiting", "depend", "dead", "eaten")]
    return f"{total} frames: " + ", ".join(parts)


def elapsed(job: dict) -> float | None:
    return fmt.span(job.get("started_at"), job.get("finished_at"))


def time_left(job: dict) -> float | None:
    """Seconds until the job's remaining frames are done, at the pace so far (None: unknown).

    The pace is frames done over time since the job started, which already accounts for how
    many frames run side by side.  Dead frames are not counted as remaining: they wait for
    someone to retry them."""
    if job.get("state") != "ACTIVE":
        return None
    done = (job.get("succeeded") or 0) + (job.get("eaten") or 0)
    left = (job.get("frames_total") or 0) - done - (job.get("dead") or 0)
    spent = elapsed(job)
    if left <= 0 or not done or not spent:
        return None
    return left * spent / done


def _left_tip(job: dict) -> str:
    seconds = time_left(job)
    if seconds is None:
        return "not enough finished frames to estimate" if job.get("state") == "ACTIVE" else ""
    done = (job.get("succeeded") or 0) + (job.get("eaten") or 0)
    return (f"about {fmt.duration(seconds)} left: {done} frames done in "
            f"{fmt.duration(elapsed(job))}, at that pace")


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
        field("project", "Project", width=100, filterable=True),
        field("user", "User", width=90, filterable=True),
        Column("status", "Status", shown_status, width=92, filterable=True,
               tooltip=status_tip),
        Column("progress", "Progress", done_fraction, width=150, align=CENTER,
               text=lambda r: fmt.percent(done_fraction(r), 1.0), tooltip=progress_tip),
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
        Column("left", "Left", time_left, width=104, align=RIGHT,
               text=lambda r: "~" + fmt.duration(time_left(r)) if time_left(r) is not None
               else "", tooltip=_left_tip, header_tip="Estimated time left at the pace so far"),
        field("min_slots", "Min", width=44, align=RIGHT, hidden=True,
              header_tip="Slots the job is guaranteed (fair share)"),
        field("max_slots", "Max", width=44, align=RIGHT, hidden=True,
              header_tip="Most slots the job may use"),
    ]
