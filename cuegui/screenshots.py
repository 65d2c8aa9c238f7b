"""`--screenshots DIR`: open each view against live data, save one PNG per view, exit.

The tour is driven by the connection's signals (snapshot, job loaded, log piece, answers), not
by sleeps: it shows every user's jobs (Mine off), selects an unfinished job with frames running
or dead, opens the log of one of its frames, asks Why about a job that is waiting, selects the
busiest host, lets the charts gather their points, opens the submit dialog, then grabs each
dock and the whole window.  `tour.json` beside the pictures says what they show (the job, the
jobs listed, the log's length, the charts' points), so a test can check the pictures' content.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from qtpy.QtCore import QObject, QTimer
from qtpy.QtWidgets import QApplication

from cuegui.connection import JobData, Snapshot
from cuegui.logfollow import LogPiece

log = logging.getLogger(__name__)

SETTLE_MS = 400        # let the views lay out and paint before grabbing
CHART_SECONDS = 8.0    # live samples the charts gather before they are grabbed
VIEWS = ("jobs", "job", "log", "hosts", "charts", "charts_supervisor", "why", "comments",
         "layer_stats", "host_history", "host_comments", "submit", "window", "layer_properties",
         "add_dependency", "dependencies")
VIEWS += ("submit_layers", "preview", "viewer", "saved_views", "status_menu", "audit",
          "host_audit")


def unfinished(job: dict) -> bool:
    return job.get("state") != "FINISHED" and job.get("status") not in ("finished", "killed")


def pick_job(jobs: list[dict]) -> dict | None:
    """The job that shows the most: unfinished, with frames running or dead, then with
    frames both running and done, then the most frames done, then the most frames."""
    if not jobs:
        return None

    def score(j: dict) -> tuple:
        done = (j.get("succeeded") or 0) + (j.get("dead") or 0)
        live = unfinished(j) and bool(j.get("running") or j.get("dead"))
        return (live, unfinished(j), bool(j.get("running")) and done > 0, done,
                j.get("frames_total") or 0, j["id"])
    return max(jobs, key=score)


def pick_waiting(jobs: list[dict], shown: dict | None = None) -> dict | None:
    """A job worth asking Why about: unfinished with frames waiting and none running (paused,
    held by a dependency, or out of slots), else any unfinished one with frames waiting, else
    `shown`."""
    def score(j: dict) -> tuple:
        return (not j.get("running"), j.get("waiting") or 0, j["id"])
    waiting = [j for j in jobs if unfinished(j) and (j.get("waiting") or j.get("depend"))]
    return max(waiting, key=score) if waiting else shown


def pick_frame(frames: list[dict]) -> dict | None:
    """A frame whose log has something in it: dead (its error is worth a look), else running,
    else succeeded, else any that ran."""
    for state in ("DEAD", "RUNNING", "SUCCEEDED"):
        for frame in frames:
            if frame.get("state") == state and frame.get("attempt"):
                return frame
    return next((f for f in frames if f.get("attempt")), None)


class ScreenshotTour(QObject):
    """Walks the window through its views and saves one PNG per view into `directory`; exits
    the app with 0, or 1 on timeout (saving what is shown)."""

    def __init__(self, window, directory: Path, timeout: float = 60.0):
        super().__init__(window)
        self.window = window
        self.directory = Path(directory)
        self.job_id = None
        self.why_id = None
        self.frame_id = None
        self.saved: list[Path] = []
        self._done = False
        self._log_seen = False
        self._started = time.monotonic()
        conn = window.connection
        conn.snapshot.connect(self._on_snapshot)
        conn.job_loaded.connect(self._on_job_loaded)
        conn.log_piece.connect(self._on_log_piece)
        self._poll = QTimer(self, interval=250)
        self._poll.timeout.connect(self._maybe_finish)
        self._poll.start()
        QTimer.singleShot(int(timeout * 1000), self._timed_out)

    def _on_snapshot(self, snap: Snapshot) -> None:
        if self.job_id is not None or self._done:
            return
        w = self.window
        # The tour shows the farm: every user's jobs, so the job it picks is in the list.
        w.jobs_panel.mine.setChecked(False)
        busiest = max(snap.hosts, key=lambda h: (h.get("running") or 0, h.get("name") or ""),
                      default=None)
        if busiest is not None:
            w.hosts_view.select_id(busiest["id"])
        listed = {r["id"] for r in w.jobs_model.rows()}
        job = pick_job([j for j in snap.jobs if j["id"] in listed] or snap.jobs)
        if job is None:
            self._log_seen = True
            return
        self.job_id = job["id"]
        why = pick_waiting(snap.jobs, job)
        self.why_id = why["id"] if why else None
        # Selecting the row makes the window ask for the job's layers and frames.
        if not w.jobs_view.select_id(job["id"]):
            w.select_job(job["id"])

    def _on_job_loaded(self, data: JobData) -> None:
        if data.job_id != self.job_id or self.frame_id is not None or self._done:
            return
        w = self.window
        w.show_why(self.why_id if self.why_id is not None else data.job_id)
        frame = pick_frame(data.frames)
        if frame is None:
            self._log_seen = True
            return
        self.frame_id = frame["id"]
        w.frames_view.select_id(frame["id"])
        w.open_log(frame)

    def _on_log_piece(self, piece: LogPiece) -> None:
        if piece.frame_id != self.frame_id or self._log_seen:
            return
        self._log_seen = True
        frame = self.window.frames_model.get(self.frame_id) or {}
        if frame.get("state") == "DEAD":
            QTimer.singleShot(0, self.window.log_panel.first_error)

    def _maybe_finish(self) -> None:
        self._ticks = getattr(self, "_ticks", 0) + 1
        charts = self.window.charts_panel
        if self._ticks % 4 == 0:
            charts.sample()      # a sample a second for the picture
            charts.refresh_metrics()
        points = charts.points()
        charts_ready = (time.monotonic() - self._started >= CHART_SECONDS
                        and (points["cpu"] > 0 or charts.supervisor.errors))
        notes_ready = not self.window.notes.pending
        if self._log_seen and charts_ready and notes_ready and not self.window.log_panel.busy:
            self._poll.stop()
            QTimer.singleShot(SETTLE_MS, lambda: self._finish(0))

    def _timed_out(self) -> None:
        if not self._done:
            log.warning("screenshots: timed out waiting for live data; saving what is shown")
            self._finish(1)

    def _finish(self, code: int) -> None:
        if self._done:
            return
        self._done = True
        self.save_all()
        QApplication.instance().exit(code)

    def save_all(self) -> list[Path]:
        """Grab each dock (raising tabbed ones first), the submit dialog and the window."""
        w = self.window
        self.directory.mkdir(parents=True, exist_ok=True)
        w.charts_panel.sample()
        shots = [("jobs", w.jobs_dock), ("job", w.job_dock), ("log", w.log_dock),
                 ("hosts", w.hosts_dock), ("charts", w.charts_dock), ("why", w.why_dock)]
        for name, dock in shots:
            dock.show()
            dock.raise_()
            QApplication.processEvents()
            if name == "charts":
                # The charts share the top of the window with the jobs; give them a window
                # of their own for the picture, as someone studying them would.
                dock.setFloating(True)
                dock.resize(w.width(), w.height() * 2 // 3)
                QApplication.processEvents()
                w.charts_panel.redraw()
                QApplication.processEvents()
                self._save(dock.grab(), name)
                tabs = w.charts_panel.tabs
                tabs.setCurrentWidget(w.charts_panel.supervisor)
                QApplication.processEvents()
                self._save(dock.grab(), "charts_supervisor")
                tabs.setCurrentIndex(0)
                dock.setFloating(False)
                continue
            self._save(dock.grab(), name)
        self._save_preview()
        self._save_saved_views()
        self._save_notes()
        dialog = w.open_submit()
        dialog.set_values(name="shot010_lighting_v3", command="render -s #FRAME# scene.ma",
                          range="1-100", chunk=5, slots="2", memory=4096, tags="linux")
        QApplication.processEvents()
        self._save(dialog.grab(), "submit")
        # A job of three layers, one waiting for the others, one with a mistake to show.
        dialog.set_values(layer_name="sim", env="SIM_QUALITY=high")
        dialog.add_layer("render", command="render -s #FRAME# fx.ma", after="sim")
        dialog.add_layer("comp", command="nuke -x comp.nk #FRAME#", range="1-100x",
                         after="sim, render")
        dialog.select_layer(1)
        dialog.adjustSize()
        QApplication.processEvents()
        self._save(dialog.grab(), "submit_layers")
        dialog.close()
        self._save_wrangling()
        w.jobs_dock.raise_()
        w.log_dock.raise_()
        QApplication.processEvents()
        self._save(w.grab(), "window")
        self._write_manifest()
        return self.saved

    def _save_wrangling(self) -> None:
        """The shown job's first layer in the layer properties dialog, and the dependency
        wizard making it wait for the job Why was asked about, layer by layer."""
        w = self.window
        job = w.jobs_model.get(self.job_id)
        layers = list(w.layers_model.all_rows()) if w.layers_model.job_id == self.job_id else []
        if job is None or not layers:
            return
        # The dependency picture at the size of a window of its own, as someone studying
        # it would give it.
        from cuegui.views.depgraph import DependencyGraph
        shown = w.job_panel.graph
        graph = DependencyGraph()
        graph.jobs = shown.jobs
        graph.resize(w.width(), max(260, w.height() // 3))
        graph.show()
        graph.show_job(shown.job_id, shown.layers, shown.deps)
        QApplication.processEvents()
        graph.fit()
        QApplication.processEvents()
        self._save(graph.grab(), "dependencies")
        graph.close()
        # The layer with the most set: its properties say the most.
        richest = max(layers, key=lambda l: (len(l.get("tags") or []), l.get("memory") or 0,
                                             -(l.get("id") or 0)))
        dialog = w.wrangle_actions.open_layer_properties(self.job_id, richest)
        QApplication.processEvents()
        self._save(dialog.grab(), "layer_properties")
        dialog.close()
        wizard = w.wrangle_actions.open_dependency_wizard(job)
        wizard.set_kind("layer")
        wizard.layer_box.setCurrentIndex(1)
        target = self.why_id if self.why_id not in (None, self.job_id) else next(
            (j["id"] for j in w.jobs_model.all_rows() if j["id"] != self.job_id), None)
        if target is not None:
            wizard.select_target(target)
            deadline = time.monotonic() + 5.0
            while not wizard.target_layer_box.count() and time.monotonic() < deadline:
                QApplication.processEvents()
                time.sleep(0.02)
        QApplication.processEvents()
        self._save(wizard.grab(), "add_dependency")
        wizard.close()

    def _save_preview(self) -> None:
        """The selected frame's image (or what stands in its way), and the viewer when there
        is an image to view."""
        w = self.window
        self._wait_preview()
        if w.preview_panel.image is None:
            # The frame picked for the log writes no image: show a finished one that does.
            for frame in w.frames_model.rows():
                layer = w.layers_model.get(frame.get("layer_id"))
                if frame.get("state") == "SUCCEEDED" and layer and layer.get("outputs"):
                    w.frames_view.select_id(frame["id"])
                    self._wait_preview()
                    break
        w.preview_dock.show()
        w.preview_dock.raise_()
        QApplication.processEvents()
        self._save(w.preview_dock.grab(), "preview")
        viewer = w.preview_panel.open_viewer()
        if viewer is not None:
            QApplication.processEvents()
            self._save(viewer.grab(), "viewer")
            viewer.close()

    def _wait_preview(self, seconds: float = 5.0) -> None:
        """Let the preview's read of its file (on a helper thread) come in."""
        deadline = time.monotonic() + seconds
        while self.window.preview_panel.pending and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.01)

    def _save_saved_views(self) -> None:
        """The jobs list under a saved view (kept for this run only), and the status menu
        open with a state unticked."""
        w = self.window
        views = w.saved_views
        views.blockSignals(True)        # no "saved" message in the window's picture
        views.save_as("Everything running")
        views.blockSignals(False)
        w.jobs_dock.raise_()
        for _ in range(4):              # the filter row grows to the view's name
            QApplication.processEvents()
        self._save(w.jobs_dock.grab(), "saved_views")
        panel = w.jobs_panel
        menu = panel.status_menu
        finished = panel.status_actions["finished"]
        finished.setChecked(False)
        menu.popup(panel.status_button.mapToGlobal(panel.status_button.rect().bottomLeft()))
        QApplication.processEvents()
        self._save(menu.grab(), "status_menu")
        menu.close()
        finished.setChecked(True)

    def _save_notes(self) -> None:
        """The job's comments and layer statistics, and the host's history and comments."""
        w, notes = self.window, self.window.notes
        for name, dock in (("comments", notes.comments_dock), ("layer_stats", notes.stats_dock),
                           ("audit", notes.audit_dock)):
            dock.show()
            dock.raise_()
            QApplication.processEvents()
            self._save(dock.grab(), name)
        tabs = w.hosts_panel.tabs
        w.hosts_dock.show()
        w.hosts_dock.raise_()
        for name, widget in (("host_history", notes.host_history),
                             ("host_comments", notes.host_comments),
                             ("host_audit", notes.host_audit)):
            tabs.setCurrentWidget(widget)
            QApplication.processEvents()
            self._save(w.hosts_dock.grab(), name)
        tabs.setCurrentIndex(0)

    def _write_manifest(self) -> None:
        w = self.window
        manifest = {
            "job": self.job_id, "why_job": self.why_id,
            "jobs_listed": [r["id"] for r in w.jobs_model.rows()],
            "job_caption": w.job_panel.caption.text() if hasattr(w.job_panel, "caption")
            else "", "frames": w.frames_model.rowCount(), "layers": w.layers_model.rowCount(),
            "log_frame": self.frame_id, "log_chars": len(w.log_panel.contents()),
            "why": w.why_panel.text(), "why_caption": w.why_panel.caption.text(),
            "hosts": w.hosts_model.rowCount(), "charts": w.charts_panel.points(),
            "preview": w.preview_panel.text(),
            "comments": w.notes.job_comments.list.count(),
            "host_comments": w.notes.host_comments.list.count(),
            "audit": w.notes.job_audit.table.rowCount(),
            "layer_stats": w.notes.layer_stats.model.rowCount(),
            "host_history": {"host": w.notes.host_history.host,
                             "points": len(w.notes.host_history.points)},
            "files": [p.name for p in self.saved]}
        (self.directory / "tour.json").write_text(json.dumps(manifest, indent=1, default=str))

    def _save(self, pixmap, name: str) -> None:
        path = self.directory / f"{name}.png"
        if pixmap.save(str(path)):
            self.saved.append(path)
            log.info("saved %s", path)
        else:
            log.error("could not save %s", path)
