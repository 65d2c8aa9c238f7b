"""What wranglers reach for beyond retry, kill and eat: frames marked done, moved to the front,
staggered, retried with more memory or resubmitted; a layer's properties, a layer staggered or
marked done; dependencies added between jobs on the farm."""

from __future__ import annotations

import math
from typing import Any

from cuefarm import frames as franges
from cuegui import permissions as perm
from cuegui.actions import ActionGroup, Spec, describe
from cuegui.jobactions import EATABLE, Ctx

QUEUED = {"WAITING", "DEPEND"}
FINISHED = {"SUCCEEDED", "EATEN"}
MORE_MEMORY = 1.5
MB = 1024 * 1024


def _frame_rule(states: set[str], message: str):
    def rule(c: Ctx) -> str | None:
        return perm.first(perm.selection(c.rows, "frame"), perm.own_jobs(c.mode, c.user, c.jobs),
                          perm.having(c.rows, lambda r: r.get("state") in states, message))
    return rule


FRAME_ACTIONS = [
    Spec("done", "Mark done", "done", "Count the selected frames as done without running them: "
         "what waits on them starts (running ones are killed first)",
         confirm="Mark {what} done? They will not run, and what waits on them starts; "
                 "running ones are killed first.",
         rule=_frame_rule(EATABLE, "the selected frames have already finished")),
    Spec("front", "Dispatch next", "earlier", "Move the selected waiting frames to the front "
         "of their layer's queue", rule=_frame_rule(QUEUED, "none of the selected frames is "
                                                            "waiting to run")),
    Spec("stagger", "Stagger...", "stagger", "Reorder the selected waiting frames so that every "
         "Nth runs first", rule=_frame_rule(QUEUED, "none of the selected frames is waiting "
                                                    "to run")),
    Spec("memory", "Retry with more memory...", "memory", "Raise the layer's memory "
         "reservation and run the selected frames again",
         rule=_frame_rule({"DEAD", "EATEN", "SUCCEEDED", "RUNNING"},
                          "only frames that ran can be retried with more memory")),
    Spec("resubmit", "Resubmit", "retry", "Run the selected finished frames again",
         confirm="Resubmit {what}? They run again and their output is made anew.",
         rule=_frame_rule(FINISHED, "none of the selected frames has finished")),
]


def _layer_rule(*checks, least: str | None = None, what: str = ""):
    def rule(c: Ctx) -> str | None:
        return perm.first(perm.one(c.rows, "layer"),
                          perm.needs(c.mode, least, what) if least else
                          perm.own_jobs(c.mode, c.user, c.jobs),
                          *[check(c) for check in checks])
    return rule


def _queued(c: Ctx) -> str | None:
    return perm.having(c.rows, lambda r: bool((r.get("waiting") or 0) + (r.get("depend") or 0)),
                       "the layer has no frames waiting to run")


def _unfinished(c: Ctx) -> str | None:
    return perm.having(c.rows, lambda r: bool((r.get("waiting") or 0) + (r.get("depend") or 0)
                                              + (r.get("running") or 0) + (r.get("dead") or 0)),
                       "the layer has finished")


LAYER_ACTIONS = [
    Spec("properties", "Layer properties...", "slots", "Change the layer's slots, memory, "
         "tags, limits and timeouts", rule=_layer_rule(least=perm.WRANGLER,
                                                       what="Changing a layer")),
    Spec("stagger", "Stagger layer...", "stagger", "Reorder the layer's waiting frames so that "
         "every Nth runs first", rule=_layer_rule(_queued)),
    Spec("done", "Mark layer done", "done", "Count every unfinished frame of the layer as done: "
         "what waits on the layer starts", confirm="Mark every unfinished frame of {what} done? "
         "They will not run; running ones are killed first.", rule=_layer_rule(_unfinished)),
]

JOB_ACTIONS = [
    Spec("adddep", "Add dependency...", "graph", "Make the selected job wait for another job, "
         "a layer of one, or its frames one by one",
         rule=lambda c: perm.first(perm.one(c.rows, "job"),
                                   perm.own_jobs(c.mode, c.user, c.rows),
                                   perm.supported("add_dependency", "Adding dependencies"))),
]


def memory_suggestion(layer: dict | None, frames: list[dict]) -> int:
    """What to offer for "more memory": 1.5 times the larger of the layer's reservation and
    the frames' latest peak, in MB (at least 1)."""
    peak = max([math.ceil((f.get("peak_rss") or 0) / MB) for f in frames] + [0])
    base = max(int((layer or {}).get("memory") or 0), peak)
    return max(1, math.ceil(base * MORE_MEMORY)) if base else 1024


class WrangleActions:
    """The window's extra frame actions, its layer actions and Add dependency."""

    def __init__(self, window):
        self.window = window
        w = window
        self.frames = ActionGroup(w, FRAME_ACTIONS, w.job_actions._frame_ctx, self._frame_action)
        self.layers = ActionGroup(w, LAYER_ACTIONS, self._layer_ctx, self._layer_action)
        self.jobs = ActionGroup(w, JOB_ACTIONS, w.job_actions._job_ctx, self._job_action)
        self.dialog = None

    def _layer_ctx(self) -> Ctx:
        w = self.window
        job = w.jobs_model.get(w.layers_model.job_id)
        return Ctx(w.layers_view.selected_rows(), w.mode, w.user, [job] if job else [])

    # -- frames --------------------------------------------------------------------------------

    def _frame_action(self, key: str) -> None:
        w = self.window
        rows = w.frames_view.selected_rows()
        if not rows:
            return
        job_id = rows[0]["job_id"]
        spec = self.frames.specs[key]
        what = describe("frame", rows, "frames")
        if spec.confirm and not w.confirm(w, spec.confirm.format(what=what)):
            return
        if key in ("front", "stagger"):
            rows = [r for r in rows if r.get("state") in QUEUED]
        elif key == "resubmit":
            rows = [r for r in rows if r.get("state") in FINISHED]
        ids = [r["id"] for r in rows]
        if key == "done":
            call: Any = lambda c: c.frame_control("done", job_id, ids)
        elif key == "front":
            call = lambda c: c.frames_to_front(job_id, ids)
        elif key == "resubmit":
            call = lambda c: c.frame_control("retry", job_id, ids)
        elif key == "stagger":
            every = w.prompts.integer("Stagger frames", f"Run every Nth of {what} first; N:",
                                      2, 2, 1_000_000)
            if every is None:
                return
            call = lambda c: c.stagger(job_id, every, ids)
        else:       # memory
            layer = w.layers_model.by_name(rows[0].get("layer"))
            memory = w.prompts.integer(
                "Retry with more memory",
                f"Memory to reserve for {what} (MB; layer {rows[0].get('layer')} reserves "
                f"{(layer or {}).get('memory') or 0}):",
                memory_suggestion(layer, rows), 1, 1 << 30)
            if memory is None:
                return
            call = lambda c: c.retry_more_memory(job_id, ids, memory=memory)
        w.connection.run_action(f"{spec.text.rstrip('.')}: {what}", call)
        w.frames_panel.set_checked_states(())

    # -- layers --------------------------------------------------------------------------------

    def _layer_action(self, key: str) -> None:
        w = self.window
        rows = w.layers_view.selected_rows()
        if not rows:
            return
        layer, job_id = rows[0], w.layers_model.job_id
        name = layer.get("name")
        spec = self.layers.specs[key]
        what = describe("layer", rows)
        if spec.confirm and not w.confirm(w, spec.confirm.format(what=what)):
            return
        if key == "properties":
            self.open_layer_properties(job_id, layer)
            return
        if key == "stagger":
            every = w.prompts.integer("Stagger layer", f"Run every Nth waiting frame of {name} "
                                      "first; N:", 2, 2, 1_000_000)
            if every is None:
                return
            call: Any = lambda c: c.stagger(job_id, every, layer=name)
        else:       # done
            def call(c):
                numbers = franges.expand(layer.get("range") or "", 10_000_000)
                return c.frame_control("done", job_id, layer=name, numbers=numbers)
        w.connection.run_action(f"{spec.text.rstrip('.')}: {what}", call)

    def open_layer_properties(self, job_id: Any, layer: dict):
        from cuegui.views.wrangle import LayerPropertiesDialog
        w = self.window
        dialog = self.dialog = LayerPropertiesDialog(w.connection, job_id, layer, w)

        def changed():
            w.show_message(f"Layer {layer.get('name')} of job {job_id} changed")
            if dialog.frames_change() is not None and w.selected_job == job_id:
                w.connection.select_job(job_id)     # its frames were made again
        dialog.accepted.connect(changed)
        dialog.show()
        return dialog

    # -- dependencies --------------------------------------------------------------------------

    def _job_action(self, key: str) -> None:
        rows = self.window.jobs_view.selected_rows()
        if rows:
            self.open_dependency_wizard(rows[0])

    def open_dependency_wizard(self, job: dict):
        from cuegui.views.wrangle import DependencyWizard
        w = self.window
        layers = ([r.get("name") for r in w.layers_model.all_rows()]
                  if w.layers_model.job_id == job.get("id") else [])
        jobs = sorted(w.jobs_model.all_rows(), key=lambda j: -j["id"])
        self.dialog = DependencyWizard(w.connection, job, layers, jobs, w)
        self.dialog.accepted.connect(lambda: (
            w.show_message(f"Job {job.get('name')} waits for another job now"),
            w.job_panel.refresh_dependencies_soon()))
        self.dialog.show()
        return self.dialog


def extend_menus(w) -> None:
    """Put the actions in the context menus and the menu bar beside their kin."""
    wa = w.wrangle_actions
    frame_extra = [None, *wa.frames.menu(["done", "front", "stagger", "memory", "resubmit"])]
    w.frames_view.context_actions = list(w.frames_view.context_actions) + frame_extra
    w.layers_view.context_actions = wa.layers.menu(["properties", None, "stagger", "done"])
    w.jobs_view.context_actions = list(w.jobs_view.context_actions) + [None, wa.jobs["adddep"]]
    graph = w.job_panel.graph
    graph.context_actions = list(graph.context_actions) + [None, wa.jobs["adddep"]]
    menus = {a.text().replace("&", ""): a.menu() for a in w.menuBar().actions() if a.menu()}
    for title, actions in (("Frames", frame_extra), ("Jobs", [None, wa.jobs["adddep"]]),
                           ("Dependencies", [None, wa.jobs["adddep"]])):
        menu = menus.get(title)
        if menu is None:
            continue
        for action in actions:
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
    from qtpy.QtWidgets import QMenu
    w.layers_menu = QMenu("L&ayers", w)
    w.layers_menu.setToolTipsVisible(True)
    w.menuBar().insertMenu(menus["Dependencies"].menuAction(), w.layers_menu)
    for action in wa.layers.menu(["properties", None, "stagger", "done"]):
        if action is None:
            w.layers_menu.addSeparator()
        else:
            w.layers_menu.addAction(action)
