"""Actions on jobs, frames and dependencies: what each does, its rule, and its handler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qtpy.QtWidgets import QApplication

from cuegui import permissions as perm
from cuegui.actions import ActionGroup, Spec, describe
from cuegui.models.layers import frame_command

RETRYABLE = {"DEAD", "EATEN", "SUCCEEDED", "RUNNING"}
EATABLE = {"WAITING", "DEPEND", "RUNNING", "DEAD"}


@dataclass
class Ctx:
    """What the rules look at: the selected rows, the mode, the user (and for frames, the job)."""

    rows: list[dict]
    mode: str
    user: str
    jobs: list[dict]


def _job_rule(*checks):
    def rule(c: Ctx) -> str | None:
        return perm.first(perm.selection(c.rows, "job"), perm.own_jobs(c.mode, c.user, c.rows),
                          *[check(c) for check in checks])
    return rule


def _wrangle(what: str):
    def rule(c: Ctx) -> str | None:
        return perm.first(perm.selection(c.rows, "job"), perm.needs(c.mode, perm.WRANGLER, what))
    return rule


def _active(c: Ctx):
    return perm.having(c.rows, lambda r: r.get("state") == "ACTIVE",
                       "none of the selected jobs is active")


def _paused(c: Ctx):
    return perm.having(c.rows, lambda r: r.get("state") == "PAUSED",
                       "none of the selected jobs is paused")


def _unfinished(c: Ctx):
    return perm.having(c.rows, lambda r: r.get("state") != "FINISHED",
                       "the selected jobs have finished")


def _dead(c: Ctx):
    return perm.having(c.rows, lambda r: (r.get("dead") or 0) > 0,
                       "the selected jobs have no dead frames")


def _why_job(c: Ctx):
    return perm.one(c.rows, "job")


JOB_ACTIONS = [
    Spec("pause", "Pause", "pause", "Pause the selected jobs: running frames finish, no new ones "
         "start", shortcut="Ctrl+P", rule=_job_rule(_active)),
    Spec("resume", "Resume", "resume", "Resume the selected jobs", shortcut="Ctrl+R",
         rule=_job_rule(_paused)),
    Spec("clear_resume", "Clear bad hosts and resume", "resume", "Forget the bad hosts of the "
         "selected paused jobs and resume them (once the cause is fixed)",
         rule=_job_rule(_paused)),
    Spec("kill", "Kill", "kill", "Kill the selected jobs and their running frames",
         confirm="Kill {what}? Running frames are stopped and the jobs end as killed.",
         shortcut="Ctrl+Shift+K", rule=_job_rule(_unfinished)),
    Spec("retry", "Retry dead frames", "retry", "Run the dead frames of the selected jobs again",
         rule=_job_rule(_dead)),
    Spec("eat", "Eat dead frames", "eat", "Give up on the dead frames of the selected jobs",
         confirm="Eat the dead frames of {what}? They will not run again unless retried.",
         rule=_job_rule(_dead)),
    Spec("why", "Why not running?", "why", "Show why the selected job's frames are not "
         "running", shortcut="Ctrl+Shift+Y", rule=_why_job),
    Spec("priority", "Set priority...", "priority", "Change the priority of the selected jobs",
         rule=_wrangle("Changing priority")),
    Spec("slots", "Set min/max slots...", "slots", "Change the slots the selected jobs are "
         "guaranteed and may use", rule=_wrangle("Changing job slots")),
    Spec("project", "Move to project...", "project", "Move the selected jobs to another project",
         rule=_wrangle("Moving jobs between projects")),
    Spec("badhosts", "Bad hosts...", "host", "Hosts that failed the selected job's frames, "
         "and how long they are kept off it",
         rule=lambda c: perm.first(perm.one(c.rows, "job"),
                                   perm.supported("bad_hosts", "Listing bad hosts"))),
    Spec("submit", "Submit job...", "submit", "Submit a new job", shortcut="Ctrl+N"),
]


def _frame_rule(states: set[str], message: str):
    def rule(c: Ctx) -> str | None:
        return perm.first(perm.selection(c.rows, "frame"), perm.own_jobs(c.mode, c.user, c.jobs),
                          perm.having(c.rows, lambda r: r.get("state") in states, message))
    return rule


def _ran(c: Ctx) -> str | None:
    return perm.first(perm.selection(c.rows, "frame"),
                      perm.having(c.rows[:1], lambda r: bool(r.get("attempt")),
                                  "this frame has not run yet"))


def _why_frame(c: Ctx) -> str | None:
    return perm.one(c.rows, "frame")


FRAME_ACTIONS = [
    Spec("log", "Open log", "log", "Show the log of the frame's latest attempt",
         shortcut="Ctrl+L", rule=_ran),
    Spec("copy", "Copy command", "copy", "Copy the command line the frame runs",
         shortcut="Ctrl+Shift+C", rule=lambda c: perm.selection(c.rows, "frame")),
    Spec("retry", "Retry", "retry", "Run the selected frames again (running ones restart)",
         shortcut="Ctrl+Alt+R",
         rule=_frame_rule(RETRYABLE, "only dead, eaten, succeeded or running frames can be "
                                     "retried")),
    Spec("kill", "Kill", "kill", "Stop the selected running frames; they wait to run again",
         confirm="Kill {what}? Their processes are stopped and the frames wait to run again.",
         shortcut="Ctrl+Alt+K",
         rule=_frame_rule({"RUNNING"}, "none of the selected frames is running")),
    Spec("eat", "Eat", "eat", "Give up on the selected frames",
         confirm="Eat {what}? They will not run again unless retried.",
         shortcut="Ctrl+Alt+E",
         rule=_frame_rule(EATABLE, "the selected frames have already finished")),
    Spec("why", "Why not running?", "why", "Show why the selected frame is not running",
         shortcut="Ctrl+Alt+Y", rule=_why_frame),
]


def _dep_rule(what: str):
    def rule(c: Ctx) -> str | None:
        return perm.first(perm.one(c.rows, "dependency"),
                          perm.needs(c.mode, perm.WRANGLER, what),
                          perm.having(c.rows, lambda r: not r.get("satisfied"),
                                      "this dependency is already satisfied"))
    return rule


DEPENDENCY_ACTIONS = [
    Spec("satisfy", "Satisfy dependency", "satisfy", "Let the waiting layer run as if what it "
         "waits for were done", rule=_dep_rule("Satisfying a dependency")),
    Spec("drop", "Drop dependency", "drop", "Remove the dependency",
         confirm="Drop {what}? What waited on it may start at once.",
         rule=_dep_rule("Dropping a dependency")),
]


class JobActions:
    """The job, frame and dependency action groups of a window."""

    def __init__(self, window):
        self.window = window
        w = window
        self.jobs = ActionGroup(w, JOB_ACTIONS, self._job_ctx, self._job_action)
        self.frames = ActionGroup(w, FRAME_ACTIONS, self._frame_ctx, self._frame_action)
        self.deps = ActionGroup(w, DEPENDENCY_ACTIONS, self._dep_ctx, self._dep_action)

    # contexts

    def _job_ctx(self) -> Ctx:
        w = self.window
        rows = w.jobs_view.selected_rows()
        return Ctx(rows, w.mode, w.user, rows)

    def _frame_ctx(self) -> Ctx:
        w = self.window
        job = w.jobs_model.get(w.frames_model.job_id)
        return Ctx(w.frames_view.selected_rows(), w.mode, w.user, [job] if job else [])

    def _dep_ctx(self) -> Ctx:
        w = self.window
        dep = w.job_panel.graph.selected_dependency()
        return Ctx([dep] if dep else [], w.mode, w.user, [])

    # handlers

    def _job_action(self, key: str) -> None:
        w = self.window
        if key == "submit":
            w.open_submit()
            return
        rows = w.jobs_view.selected_rows()
        if not rows:
            return
        what = describe("job", rows)
        spec = self.jobs.specs[key]
        if spec.confirm and not w.confirm(w, spec.confirm.format(what=what)):
            return
        if key == "why":
            w.show_why(rows[0]["id"])
            return
        if key == "badhosts":
            self.open_bad_hosts(rows[0])
            return
        call = self._job_call(key, rows)
        if call is not None:
            w.connection.run_action(f"{spec.text.rstrip('.')}: {what}", call)

    def _job_call(self, key: str, rows: list[dict]):
        w = self.window
        ids = [r["id"] for r in rows]
        simple = {"pause": lambda c: c.pause(ids), "resume": lambda c: c.resume(ids),
                  "clear_resume": lambda c: c.resume(ids, clear_bans=True),
                  "kill": lambda c: c.kill(ids), "retry": lambda c: c.retry(ids),
                  "eat": lambda c: c.eat(ids)}
        if key in simple:
            return simple[key]
        if key == "priority":
            value = w.prompts.integer("Set priority", f"Priority of {describe('job', rows)}:",
                                      rows[0].get("priority") or 0, -1_000_000, 1_000_000)
            return None if value is None else (lambda c: c.set_priority(ids, value))
        if key == "slots":
            values = w.prompts.slots(rows[0])
            if values is None:
                return None
            lo, hi = values
            return each(ids, lambda c, i: c.set_job(i, min_slots=lo, max_slots=hi))
        if key == "project":
            projects = sorted({j.get("project") for j in w.jobs_model.all_rows()} - {None})
            name = w.prompts.project(rows[0].get("project"), projects)
            if not name:
                return None
            return each(ids, lambda c, i: c.set_job(i, project=name))
        return None

    def _frame_action(self, key: str) -> None:
        w = self.window
        view = w.frames_view
        if key == "log":
            frame = view.current_row() or (view.selected_rows() or [None])[0]
            if frame is not None:
                w.open_log(frame)
            return
        rows = view.selected_rows()
        if not rows:
            return
        if key == "copy":
            self.copy_command(view.current_row() or rows[0])
            return
        if key == "why":
            f = rows[0]
            w.show_why(f["job_id"], f.get("layer"), f.get("number"))
            return
        job_id = rows[0]["job_id"]
        ids = [r["id"] for r in rows]
        what = describe("frame", rows, "frames")
        spec = self.frames.specs[key]
        if spec.confirm and not w.confirm(w, spec.confirm.format(what=what)):
            return
        # Retrying a running frame kills its process: ask first, naming how many.
        running = any(r.get("state") == "RUNNING" for r in rows)
        if key == "retry" and running and not w.confirm(w, retry_question(rows)):
            return
        w.connection.run_action(f"{spec.text}: {what}",
                                lambda c: c.frame_control(key, job_id, ids))
        # The frames change state: a state filter would hide them as they do.
        w.frames_panel.set_checked_states(())

    def open_bad_hosts(self, job: dict):
        """The bad-host list of `job`; clearing it is for wranglers."""
        from cuegui.views.hostadmin import BadHostsDialog
        w = self.window
        reason = perm.first(perm.needs(w.mode, perm.WRANGLER, "Clearing bad hosts"),
                            perm.supported("clear_bad_host", "Clearing bad hosts"))
        self.bad_hosts_dialog = BadHostsDialog(w, job, reason)
        self.bad_hosts_dialog.show()
        return self.bad_hosts_dialog

    def copy_command(self, frame: dict) -> None:
        w = self.window
        layer = w.layers_model.by_name(frame.get("layer"))
        if layer is None:
            w.show_message(f"The command of layer {frame.get('layer')} is not known")
            return
        text = frame_command(layer, frame)
        QApplication.clipboard().setText(text)
        w.show_message(f"Copied: {text}")

    def _dep_action(self, key: str) -> None:
        w = self.window
        dep = w.job_panel.graph.selected_dependency()
        if dep is None:
            return
        what = (f"the dependency of job {dep.get('job_id')} / {dep.get('layer')} on this job"
                if dep.get("dependant") else
                f"the dependency of {dep.get('layer')} on {dependency_target(dep)}")
        spec = self.deps.specs[key]
        if spec.confirm and not w.confirm(w, spec.confirm.format(what=what)):
            return
        # What waits on the job shown is a dependency of the waiting job.
        job_id = dep["job_id"] if dep.get("dependant") else w.frames_model.job_id
        dep_id = dep["id"]
        call: Any = (lambda c: c.satisfy_dependency(job_id, dep_id)) if key == "satisfy" \
            else (lambda c: c.drop_dependency(job_id, dep_id))
        w.connection.run_action(f"{spec.text}: {what}", call)
        w.job_panel.refresh_dependencies_soon()


def retry_question(rows: list[dict]) -> str:
    """The question before retrying frames of which some are running: they restart."""
    running = sum(1 for r in rows if r.get("state") == "RUNNING")
    lost = "work done so far is lost"
    if running == 1 and len(rows) == 1:
        return f"Retry the running frame? Its process is killed and it starts again; {lost}."
    if running == len(rows):
        return (f"Retry all {running} running frames? Their processes are killed and they "
                f"start again; {lost}.")
    verb = "is" if running == 1 else "are"
    return (f"Retry {len(rows)} frames? {running} of them {verb} running and will be killed "
            f"and started again; {lost}.")


def each(items: list, call) -> Any:
    """A worker call applying `call(client, item)` to every item; returns how many."""
    def run(client) -> int:
        for item in items:
            call(client, item)
        return len(items)
    return run


def dependency_target(dep: dict) -> str:
    """What a dependency waits for, in words."""
    job, layer = dep.get("target_job_id"), dep.get("target_layer")
    if job is not None:
        return f"job {job}" + (f" / {layer}" if layer else "")
    return f"layer {layer}" + (" (frame by frame)" if dep.get("kind") == "frame" else "")
