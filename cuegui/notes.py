"""What wranglers and admins reach for beside the tables: comments on jobs and hosts, layer
statistics, a host's history, hosts grouped by tag, and one-click jumps between a frame, its
host and its job.

The window owns the panels this builds; everything they show is read through the connection
(`run_query`) and refreshed when change events say so: a comment count that moved in a job or
host row, layers that changed, a host's new figures.  Nothing here polls on a timer.
"""

from __future__ import annotations

import logging
from typing import Any

from qtpy.QtCore import QObject, QTimer
from qtpy.QtGui import QAction
from qtpy.QtWidgets import QComboBox, QDockWidget

from cuegui import theme
from cuegui.messages import Changes
from cuegui.views.audit import AuditPanel
from cuegui.views.comments import CommentMarkDelegate, CommentsPanel
from cuegui.views.farmstats import HostHistoryPanel, LayerStatsPanel

log = logging.getLogger(__name__)

PREFIX = "notes:"
STATS_REFRESH_MS = 2000         # at most this often while a job's layers keep changing
HISTORY_REFRESH_MS = 30_000     # the host's new figures: its history is read again this often
HISTORY_HOURS = 24.0
AUDIT_REFRESH_MS = 2000         # at most this often while the job or host shown keeps changing
AUDIT_ROWS = 200
ALL_TAGS = "All hosts"


class Notes(QObject):
    def __init__(self, window):
        super().__init__(window)
        self.w = w = window
        self.job_comments = CommentsPanel("job")
        self.host_comments = CommentsPanel("host")
        self.layer_stats = LayerStatsPanel()
        self.host_history = HostHistoryPanel()
        self.job_audit = AuditPanel("job")
        self.host_audit = AuditPanel("host")
        self.comments_dock = w._dock("Comments", self.job_comments)
        self.stats_dock = w._dock("Layer stats", self.layer_stats)
        self.audit_dock = w._dock("Audit", self.job_audit)
        self.place_docks()
        w.hosts_panel.tabs.addTab(self.host_history, "History")
        w.hosts_panel.tabs.addTab(self.host_comments, "Comments")
        w.hosts_panel.tabs.addTab(self.host_audit, "Audit")
        self._marks = []
        for view in (w.jobs_view, w.hosts_view):
            mark = CommentMarkDelegate(view)
            self._marks.append(mark)
            view.setItemDelegateForColumn(view.table_model().column_index("comments"), mark)
        self._counts: dict[str, int] = {}        # "job:ID" / "host:NAME" -> count last read
        self._host_seen: tuple = ()              # the shown host's lock, state, slots
        self.pending = 0                         # queries asked, not yet answered
        self._stats_timer = QTimer(self, singleShot=True, interval=STATS_REFRESH_MS)
        self._stats_timer.timeout.connect(self.fetch_layer_stats)
        self._history_timer = QTimer(self, singleShot=True, interval=HISTORY_REFRESH_MS)
        self._history_timer.timeout.connect(self.fetch_host_history)
        self._audit_timer = QTimer(self, singleShot=True, interval=AUDIT_REFRESH_MS)
        self._audit_timer.timeout.connect(self.fetch_audits)
        self._build_tag_groups()
        self._build_jumps()
        self._wire()

    # -- building -------------------------------------------------------------------------------

    def docks(self) -> list[QDockWidget]:
        return [self.comments_dock, self.stats_dock, self.audit_dock]

    def place_docks(self) -> None:
        """Comments, layer statistics and the audit trail share the place of the log and Why."""
        w = self.w
        w.tabifyDockWidget(w.why_dock, self.comments_dock)
        w.tabifyDockWidget(self.comments_dock, self.stats_dock)
        w.tabifyDockWidget(self.stats_dock, self.audit_dock)
        w.log_dock.raise_()

    def _build_tag_groups(self) -> None:
        """A choice of tag (allocation, pool) above the hosts: only its hosts are shown, and
        each tag says how many hosts and slots it has."""
        self.tag_box = QComboBox()
        self.tag_box.setObjectName("hostTagGroup")
        self.tag_box.setToolTip("Group hosts by tag (allocation, pool): show one tag's hosts")
        self.tag_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.tag_box.addItem(ALL_TAGS, None)
        self.tag_box.currentIndexChanged.connect(self._tag_chosen)
        self.w.hosts_panel.filters.addWidget(self.tag_box)
        self._tags_timer = QTimer(self, singleShot=True, interval=500)
        self._tags_timer.timeout.connect(self.update_tag_groups)

    def _build_jumps(self) -> None:
        w = self.w
        self.go_to_host = QAction(theme.icon("host"), "Go to host", w)
        self.go_to_host.setToolTip("Select the host that runs (or last ran) this frame")
        self.go_to_host.triggered.connect(self._frame_to_host)
        w.frames_view.context_actions = list(w.frames_view.context_actions) + [
            None, self.go_to_host]
        self.go_to_job = QAction(theme.icon("job"), "Go to job", w)
        self.go_to_job.setToolTip("Select this frame's job and show its frames")
        self.go_to_job.triggered.connect(self._host_frame_to_job)
        w.host_frames_view.context_actions = [self.go_to_job]
        self.go_to_running_job = QAction(theme.icon("job"), "Go to job", w)
        self.go_to_running_job.setToolTip("Select the job of the frame running longest here")
        self.go_to_running_job.triggered.connect(self._host_to_job)
        w.hosts_view.context_actions = list(w.hosts_view.context_actions) + [
            None, self.go_to_running_job]

    def _wire(self) -> None:
        w, conn = self.w, self.w.connection
        conn.query_done.connect(self._done)
        conn.query_failed.connect(self._failed)
        conn.changes.connect(self._changes)
        conn.snapshot.connect(lambda *_: self._snapshot())
        w.jobs_view.selectionModel().currentRowChanged.connect(
            lambda *_: QTimer.singleShot(0, self._job_selected))
        w.hosts_view.selectionModel().currentRowChanged.connect(
            lambda *_: QTimer.singleShot(0, self._host_selected))
        self.job_comments.add_wanted.connect(lambda text: self._add("job", text))
        self.host_comments.add_wanted.connect(lambda text: self._add("host", text))
        self.job_comments.delete_wanted.connect(lambda cid: self._delete("job", cid))
        self.host_comments.delete_wanted.connect(lambda cid: self._delete("host", cid))
        for s in (w.hosts_model.rowsInserted, w.hosts_model.rowsRemoved,
                  w.hosts_model.modelReset, w.hosts_model.dataChanged):
            s.connect(lambda *_: self._tags_timer.isActive() or self._tags_timer.start())
        w.frames_view.selectionModel().selectionChanged.connect(lambda *_: self.update_jumps())
        w.host_frames_view.selectionModel().selectionChanged.connect(
            lambda *_: self.update_jumps())
        w.hosts_view.selectionModel().selectionChanged.connect(lambda *_: self.update_jumps())
        self.update_jumps()

    # -- selection and events -------------------------------------------------------------------

    def _snapshot(self) -> None:
        admin = self.w.role == "admin" or self.w.role is None and self.w.mode == "admin"
        for panel in (self.job_comments, self.host_comments):
            panel.set_user(self.w.user, admin)
        # After a resync anything may have changed: read what is shown again.
        self._job_selected(force=True)
        self._host_selected(force=True)

    def _job_selected(self, force: bool = False) -> None:
        job_id = self.w.selected_job
        if job_id == self.job_comments.subject and not force:
            return
        job = self.w.jobs_model.get(job_id) if job_id is not None else None
        title = f"job {job_id}" + (f" ({job.get('name')})" if job else "")
        self.job_comments.show_subject(job_id, title)
        self.job_audit.show_subject(job_id, title)
        if job_id is None:
            self.layer_stats.show_stats(None, [])
            return
        self.fetch_comments("job", job_id)
        self.fetch_layer_stats()
        self.fetch_audit("job", job_id)

    def _host_selected(self, force: bool = False) -> None:
        host = self.w.selected_host
        if host == self.host_comments.subject and not force:
            return
        self.host_comments.show_subject(host, f"host {host}")
        self.host_audit.show_subject(host, f"host {host}")
        self.update_jumps()
        if host is None:
            self.host_history.show_history(None, [])
            return
        self.fetch_comments("host", host)
        self.fetch_host_history()
        self.fetch_audit("host", host)

    def _changes(self, changes: Changes) -> None:
        job_id, host = self.w.selected_job, self.w.selected_host
        row = changes.jobs.get(job_id) if job_id is not None else None
        if row is not None and row.get("comments", 0) != self._counts.get(f"job:{job_id}"):
            self.fetch_comments("job", job_id)
        if row is not None and not self._audit_timer.isActive():
            self._audit_timer.start()
        if host is not None:
            for h in changes.hosts.values():
                if h.get("name") != host:
                    continue
                if h.get("comments", 0) != self._counts.get(f"host:{host}"):
                    self.fetch_comments("host", host)
                if (h.get("lock"), h.get("state"), h.get("slots_total")) != self._host_seen \
                        and not self._audit_timer.isActive():
                    self._host_seen = (h.get("lock"), h.get("state"), h.get("slots_total"))
                    self._audit_timer.start()
                if not self._history_timer.isActive():
                    self._history_timer.start()
        if job_id is not None and changes.layers and not self._stats_timer.isActive():
            self._stats_timer.start()

    # -- reading --------------------------------------------------------------------------------

    def _ask(self, key: str, call) -> None:
        self.pending += 1
        self.w.connection.run_query(PREFIX + key, call)

    def fetch_comments(self, kind: str, subject: Any) -> None:
        if kind == "job":
            call = (lambda c, s=subject: c.comments(job_id=s))
        else:
            call = (lambda c, s=subject: c.comments(host=s))
        self._ask(f"comments:{kind}:{subject}", call)

    def fetch_audit(self, kind: str, subject: Any) -> None:
        if kind == "job":
            call = (lambda c, s=subject: c.audit(job_id=s, limit=AUDIT_ROWS))
        else:
            call = (lambda c, s=subject: c.audit(host=s, limit=AUDIT_ROWS))
        self._ask(f"audit:{kind}:{subject}", call)

    def fetch_audits(self) -> None:
        """The audit trail of the job and the host shown, read again (they changed)."""
        if self.w.selected_job is not None:
            self.fetch_audit("job", self.w.selected_job)
        if self.w.selected_host is not None:
            self.fetch_audit("host", self.w.selected_host)

    def fetch_layer_stats(self) -> None:
        job_id = self.w.selected_job
        if job_id is not None:
            self._ask(f"stats:{job_id}", lambda c: c.layer_stats(job_id, runtimes=True))

    def fetch_host_history(self) -> None:
        host = self.w.selected_host
        if host is not None:
            self._ask(f"history:{host}", lambda c: c.host_history(host, HISTORY_HOURS))

    # -- acting ---------------------------------------------------------------------------------

    def _panel(self, kind: str) -> CommentsPanel:
        return self.job_comments if kind == "job" else self.host_comments

    def _add(self, kind: str, text: str) -> None:
        subject = self._panel(kind).subject
        if subject is None:
            return
        where = {"job_id": subject} if kind == "job" else {"host": subject}

        def call(c):
            c.add_comment(text, **where)
            return c.comments(**where)
        self._ask(f"add:{kind}:{subject}", call)

    def _delete(self, kind: str, comment_id: int) -> None:
        subject = self._panel(kind).subject
        where = {"job_id": subject} if kind == "job" else {"host": subject}

        def call(c):
            c.delete_comment(comment_id)
            return c.comments(**where)
        self._ask(f"delete:{kind}:{subject}", call)

    # -- answers --------------------------------------------------------------------------------

    def _done(self, key: str, result: Any) -> None:
        if not key.startswith(PREFIX):
            return
        self.pending = max(0, self.pending - 1)
        what, _, rest = key[len(PREFIX):].partition(":")
        if what in ("comments", "add", "delete"):
            kind, _, subject = rest.partition(":")
            panel = self._panel(kind)
            if str(panel.subject) != subject:
                return      # the user moved on
            self._counts[f"{kind}:{subject}"] = len(result)
            panel.show_comments(panel.subject, result)
            if what == "add":
                panel.added()
                self.w.show_message(f"Comment added to {kind} {subject}")
        elif what == "audit":
            kind, _, subject = rest.partition(":")
            panel = self.job_audit if kind == "job" else self.host_audit
            if str(panel.subject) == subject:
                panel.show_rows(panel.subject, result)
        elif what == "stats":
            if str(self.w.selected_job) == rest:
                self.layer_stats.show_stats(self.w.selected_job, result)
        elif what == "history":
            if self.w.selected_host == rest:
                self.host_history.show_history(rest, result)

    def _failed(self, key: str, message: str) -> None:
        if not key.startswith(PREFIX):
            return
        self.pending = max(0, self.pending - 1)
        what, _, rest = key[len(PREFIX):].partition(":")
        if what in ("add", "delete", "comments"):
            kind, _, subject = rest.partition(":")
            panel = self._panel(kind)
            if str(panel.subject) == subject:
                panel.failed(message)
            if what != "comments":
                self.w.show_message(f"Comment not {'added' if what == 'add' else 'deleted'}: "
                                    f"{message}", error=True)
        elif what == "audit":
            kind, _, subject = rest.partition(":")
            panel = self.job_audit if kind == "job" else self.host_audit
            if str(panel.subject) == subject:
                panel.failed(message)
        else:
            log.info("%s failed: %s", key, message)

    # -- tags -----------------------------------------------------------------------------------

    def update_tag_groups(self) -> None:
        """The tags of the hosts known, each with its hosts and slots in use / offered."""
        groups: dict[str, list[int]] = {}
        for h in self.w.hosts_model.all_rows():
            for tag in h.get("tags") or []:
                g = groups.setdefault(tag, [0, 0, 0])
                g[0] += 1
                g[1] += h.get("slots_used") or 0
                g[2] += h.get("slots_total") or 0
        chosen = self.tag_box.currentData()
        box = self.tag_box
        box.blockSignals(True)
        box.clear()
        box.addItem(ALL_TAGS, None)
        for tag in sorted(groups):
            n, used, total = groups[tag]
            box.addItem(f"{tag}: {n} host{'' if n == 1 else 's'}, {used}/{total} slots", tag)
        index = box.findData(chosen) if chosen is not None else 0
        box.setCurrentIndex(max(0, index))
        box.blockSignals(False)
        if chosen is not None and index < 0:
            self._tag_chosen()      # the tag is gone: every host again

    def _tag_chosen(self, *_args: Any) -> None:
        tag = self.tag_box.currentData()
        model = self.w.hosts_model
        model.set_predicate(None if tag is None else (lambda r: tag in (r.get("tags") or [])))

    def group_by_tag(self, tag: str | None) -> bool:
        """Show only the hosts with `tag` (None: all); False when no host has it."""
        self.update_tag_groups()
        index = self.tag_box.findData(tag) if tag is not None else 0
        if index < 0:
            return False
        self.tag_box.setCurrentIndex(index)
        self._tag_chosen()
        return True

    # -- jumps ----------------------------------------------------------------------------------

    def update_jumps(self) -> None:
        frame = self.w.frames_view.current_row()
        self.go_to_host.setEnabled(bool(frame and frame.get("host")))
        self.go_to_host.setToolTip("" if frame and frame.get("host")
                                   else "This frame has not run on any host yet")
        hf = self.w.host_frames_view.current_row()
        self.go_to_job.setEnabled(hf is not None)
        running = self.w.host_frames_model.rowCount() > 0 and self.w.selected_host is not None
        self.go_to_running_job.setEnabled(running)
        self.go_to_running_job.setToolTip("" if running else "Nothing runs on this host now")

    def go_to_host_named(self, name: str) -> bool:
        """Select host `name` in the hosts list and show it; False when it is not listed."""
        w = self.w
        if w.hosts_view.table_model().position(self._host_id(name)) is None:
            self.group_by_tag(None)          # a tag group may hide it
            w.hosts_panel.filter.clear()
            w.hosts_model.set_filter("")
        host_id = self._host_id(name)
        if host_id is None or not w.hosts_view.select_id(host_id):
            w.show_message(f"Host {name} is not in the hosts list", error=True)
            return False
        w.hosts_dock.show()
        w.hosts_dock.raise_()
        w.hosts_view.setFocus()
        return True

    def go_to_job_id(self, job_id: Any, frame_id: Any = None) -> bool:
        """Select job `job_id` in the jobs list (its frames in the job panel), and the frame
        `frame_id` once the frames are shown; False when the job is not listed."""
        w = self.w
        if w.jobs_model.position(job_id) is None:
            w.jobs_panel.filter.clear()
            w.jobs_model.set_filter("")
            if w.jobs_panel.mine.isChecked():
                w.jobs_panel.mine.setChecked(False)
        if not w.jobs_view.select_id(job_id):
            w.show_message(f"Job {job_id} is not in the jobs list", error=True)
            return False
        w.jobs_dock.show()
        w.jobs_dock.raise_()
        w.job_dock.show()
        if frame_id is not None:
            self._want_frame = frame_id
            self._select_frame_when_shown(20)
        return True

    def _select_frame_when_shown(self, tries: int) -> None:
        frame_id = getattr(self, "_want_frame", None)
        if frame_id is None:
            return
        if self.w.frames_view.select_id(frame_id):
            self._want_frame = None
        elif tries > 0:
            QTimer.singleShot(100, lambda: self._select_frame_when_shown(tries - 1))

    def _host_id(self, name: str) -> Any:
        for h in self.w.hosts_model.all_rows():
            if h.get("name") == name:
                return h["id"]
        return None

    def _frame_to_host(self) -> None:
        frame = self.w.frames_view.current_row()
        if frame and frame.get("host"):
            self.go_to_host_named(frame["host"])

    def _host_frame_to_job(self) -> None:
        frame = self.w.host_frames_view.current_row()
        if frame:
            self.go_to_job_id(frame.get("job_id"), frame.get("id"))

    def _host_to_job(self) -> None:
        rows = self.w.host_frames_model.all_rows()
        if rows:
            first = min(rows, key=lambda r: r.get("started_at") or 0)
            self.go_to_job_id(first.get("job_id"), first.get("id"))

    # -- theme ----------------------------------------------------------------------------------

    def apply_theme(self) -> None:
        self.layer_stats.apply_theme()
        self.host_history.apply_theme()
        self.go_to_host.setIcon(theme.icon("host"))
        for a in (self.go_to_job, self.go_to_running_job):
            a.setIcon(theme.icon("job"))
