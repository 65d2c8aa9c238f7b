"""Applying what the connection worker sends to the window's models and panels, and the
read-only queries the panels ask for (dependencies, Why, metric history, submit)."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

from qtpy.QtCore import QObject, Qt

from cuegui.messages import Changes, FramesPage, HostData, JobData, Snapshot
from cuegui.models.metrics import fetch_metrics, history_names
from cuegui.views.depgraph import fetch_dependencies
from cuegui.views.submit import SubmitDialog, submit_call

log = logging.getLogger(__name__)


class Updates(QObject):
    """The window's side of the connection's data signals."""

    def __init__(self, window):
        super().__init__(window)
        self.w = window
        self._ids = itertools.count(1)
        self._submits: dict[str, SubmitDialog] = {}
        self.pending_select: Any = None       # a job just submitted, selected when it shows

    # -- data ---------------------------------------------------------------------------------

    def on_snapshot(self, snap: Snapshot) -> None:
        w = self.w
        w.jobs_model.replace_all(snap.jobs)
        w.hosts_model.replace_all(snap.hosts)
        if snap.job_id == w.selected_job:
            w.frames_model.show_job(snap.job_id, snap.frames, snap.frames_complete)
            self._load_job(snap.job_id, snap.layers, snap.dependencies)
        w.update_job_caption()
        w.update_counts()
        w.charts_panel.want_history()
        self._select_pending()

    def on_changes(self, changes: Changes) -> None:
        w = self.w
        before = {jid: row for jid in changes.jobs if (row := w.jobs_model.get(jid))}
        w.jobs_model.apply(changes.jobs.values(), changes.deleted_jobs)
        w.job_notices.changes(before, changes.jobs.values())
        if changes.hosts:
            w.hosts_model.apply(changes.hosts.values())
        if w.frames_model.job_id in changes.deleted_jobs:
            w.frames_model.show_job(None, [])
            self._load_job(None, [], [])
        else:
            if changes.frames:
                w.frames_model.apply_job(changes.job_id, list(changes.frames.values()))
            if changes.layers and changes.job_id == w.layers_model.job_id:
                w.layers_model.apply_job(changes.job_id, list(changes.layers.values()))
                w.job_panel.layers_changed()
        if changes.host_frames:
            w.host_frames_model.apply_host(changes.host,
                                           self._named(list(changes.host_frames.values())))
        if changes.jobs or changes.deleted_jobs:
            w.update_job_caption()
            for job_id in changes.jobs:
                w.why_panel.subject_changed(job_id)
            self._select_pending()
        w.update_counts()

    def on_job_loaded(self, data: JobData) -> None:
        w = self.w
        if data.job_id != w.selected_job:
            return   # the user moved on before this arrived
        w.frames_model.show_job(data.job_id, data.frames, data.complete)
        self._load_job(data.job_id, data.layers, data.dependencies)
        w.update_job_caption()

    def on_frames_page(self, page: FramesPage) -> None:
        w = self.w
        if page.job_id != w.selected_job:
            return
        w.frames_model.add_page(page.job_id, page.frames, page.done)
        w.update_job_caption()

    def on_host_loaded(self, data: HostData) -> None:
        w = self.w
        if data.host != w.selected_host:
            return
        w.host_frames_model.show_host(data.host, self._named(data.frames))

    def _load_job(self, job_id: Any, layers: list[dict], deps: list[dict]) -> None:
        w = self.w
        w.job_panel.graph.jobs = {j["id"]: j for j in w.jobs_model.all_rows()
                                  if any(d.get("target_job_id") == j["id"] for d in deps)}
        w.job_panel.load(job_id, layers, deps)

    def _named(self, frames: list[dict]) -> list[dict]:
        """Frames with their job's name, for the host's running frames (rows from events have
        none; a job the jobs list does not know yet keeps the name the supervisor sent)."""
        jobs = self.w.jobs_model
        out = []
        for f in frames:
            name = (jobs.get(f.get("job_id")) or {}).get("name")
            out.append({**f, "job_name": name} if name else f)
        return out

    def _select_pending(self) -> None:
        if self.pending_select is not None and self.w.jobs_view.select_id(self.pending_select):
            self.pending_select = None

    # -- queries --------------------------------------------------------------------------------

    def fetch_dependencies(self, job_id: Any) -> None:
        self.w.connection.run_query(f"deps:{job_id}", lambda c: fetch_dependencies(c, job_id))

    def fetch_why(self, job_id: Any, layer: str | None, frame: int | None) -> None:
        key = f"why:{next(self._ids)}"
        self._why = (key, (job_id, layer, frame))
        self.w.connection.run_query(key, lambda c: c.why(job_id, layer, frame))

    def fetch_history(self, series: dict[str, str]) -> None:
        """Metric history for the charts, where the supervisor keeps it."""
        def call(client) -> dict:
            if not callable(getattr(client, "metric_history", None)):
                return {"errors": ["this supervisor keeps no metric history"]}
            end = time.time()
            start = end - 6 * 3600
            have, errors = history_names(client, series)
            out: dict = {"errors": errors}
            for key, name in have.items():
                try:
                    out[key] = client.metric_history(name, start, end, 0.0)
                except Exception as exc:  # noqa: BLE001 - shown in the chart's note
                    if type(exc).__name__ == "Unreachable":
                        raise
                    log.warning("charts: no history for %s: %s", name, exc)
                    errors.append(f"{name}: {exc}")
            return out
        self.w.connection.run_query("history", call)

    def fetch_metrics(self, since: dict, usage: bool) -> None:
        """The supervisor's health, licence and usage figures for the charts."""
        self.w.connection.run_query("metrics", lambda c: fetch_metrics(c, since, usage))

    def open_submit(self) -> SubmitDialog:
        w = self.w
        projects = sorted({j.get("project") for j in w.jobs_model.all_rows()} - {None})
        current = w.jobs_view.current_row()
        dialog = SubmitDialog(projects, w.jobs_view.selected_rows, w,
                              project=current.get("project") if current else None)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.last_dialog = dialog
        dialog.submit_wanted.connect(lambda job, d=dialog: self._submit(d, job))
        dialog.show()
        return dialog

    def _submit(self, dialog: SubmitDialog, job: dict) -> None:
        key = f"submit:{next(self._ids)}"
        self._submits[key] = dialog
        self.w.connection.run_query(key, submit_call(job, dialog.submit_paused()))

    def on_query_done(self, key: str, result: Any) -> None:
        w = self.w
        if key.startswith("deps:"):
            job_id = key[5:]
            if str(w.layers_model.job_id) == job_id:
                w.job_panel.graph.set_dependencies(result)
        elif key.startswith("why:"):
            if getattr(self, "_why", (None,))[0] == key:
                w.why_panel.show_answer(self._why[1], result)
        elif key == "history":
            w.charts_panel.set_history(result or {})
        elif key == "metrics":
            w.charts_panel.set_metrics(result)
        elif key.startswith("submit:"):
            dialog = self._submits.pop(key, None)
            if result[0] == "ok":
                w.show_message(f"Submitted job {', '.join(map(str, result[1]))}")
                self.pending_select = result[1][0]
                self._select_pending()
            try:
                if dialog is not None and result[0] == "ok":
                    dialog.submitted(result[1])
                elif dialog is not None:
                    dialog.failed(result[1], result[2])
            except RuntimeError:
                pass        # the user closed the dialog meanwhile

    def on_query_failed(self, key: str, message: str) -> None:
        w = self.w
        if key.startswith("why:") and getattr(self, "_why", (None,))[0] == key:
            w.why_panel.show_error(self._why[1], message)
        elif key.startswith("submit:"):
            dialog = self._submits.pop(key, None)
            try:
                if dialog is not None:
                    dialog.failed(message, None)
            except RuntimeError:
                pass
        elif key == "history":
            log.warning("charts: metric history failed: %s", message)
            w.charts_panel.history_failed(message)
        elif key == "metrics":
            log.warning("charts: supervisor figures failed: %s", message)
            w.charts_panel.metrics_failed(message)
        else:
            log.info("query %s failed: %s", key, message)
