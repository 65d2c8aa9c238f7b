"""Admin dialogs of the host view: admission (pending hosts), lock schedules, path maps, and
checking how a path reads on a host.

Each list asks the supervisor through the connection's worker (`run_query`), so the UI thread
never waits on the network; a change goes through `run_action` and the list asks again once
the supervisor has answered.  Questions (confirmations, the fields of a new schedule or path
rule) go through the window's `confirm` and `prompts`, so tests answer them as a user would.
"""

from __future__ import annotations

from typing import Any, Callable

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (QAbstractItemView, QComboBox, QDialog, QFormLayout, QHBoxLayout,
                            QHeaderView, QLabel, QLineEdit, QPushButton, QTableWidget,
                            QTableWidgetItem, QVBoxLayout, QWidget)

from cuegui import format as fmt

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def days_text(days: list[int]) -> str:
    """'Mon–Fri' for a run of days, else 'Mon, Wed'."""
    days = sorted(set(days or []))
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        return f"{DAYS[days[0]]}–{DAYS[days[-1]]}"
    return ", ".join(DAYS[d] for d in days if 0 <= d < 7)


Column = tuple[str, str, Callable[[dict], str]]


class ListDialog(QDialog):
    """A table of what `load(client)` returns, with buttons acting on the selected rows."""

    def __init__(self, window, title: str, columns: list[Column],
                 load: Callable[[Any], list[dict]], parent: QWidget | None = None):
        super().__init__(parent or window)
        self.window = window
        self.setWindowTitle(title)
        self.setObjectName(title.replace(" ", "") + "Dialog")
        self.columns = columns
        self.load = load
        self.key = f"list:{title}"
        self.rows: list[dict] = []
        self._asked: set[str] = set()
        self.table = QTableWidget(0, len(columns))
        self.table.setHorizontalHeaderLabels([c[1] for c in columns])
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        self.status = QLabel("Asking the supervisor...")
        self.status.setObjectName("dialogStatus")
        self.status.setWordWrap(True)
        self.buttons = QHBoxLayout()
        self.selection_buttons: list[QPushButton] = []
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.status)
        layout.addLayout(self.buttons)
        conn = window.connection
        conn.query_done.connect(self._loaded)
        conn.query_failed.connect(self._load_failed)
        conn.action_done.connect(self._acted)
        conn.action_failed.connect(self._act_failed)
        self.resize(640, 320)

    def add_button(self, text: str, handler: Callable[[], None], needs_selection: bool = True,
                   tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(text.rstrip(".").lower().replace(" ", "_"))
        button.setToolTip(tip)
        button.clicked.connect(handler)
        if needs_selection:
            button.setEnabled(False)
            self.selection_buttons.append(button)
        self.buttons.addWidget(button)
        return button

    def finish_buttons(self) -> None:
        self.buttons.addStretch(1)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        self.buttons.addWidget(close)

    def refresh(self) -> None:
        self.window.connection.run_query(self.key, self.load)

    def selected(self) -> list[dict]:
        picked = sorted({i.row() for i in self.table.selectionModel().selectedRows()})
        return [self.rows[i] for i in picked if i < len(self.rows)]

    def act(self, label: str, call: Callable[[Any], Any]) -> None:
        """Run `call(client)` on the worker, then list again."""
        self._asked.add(label)
        self.status.setText(f"{label}...")
        self.window.connection.run_action(label, call)

    def text_at(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""

    # answers

    def _loaded(self, key: str, rows: Any) -> None:
        if key != self.key:
            return
        self.rows = list(rows or [])
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, (_key, _header, text) in enumerate(self.columns):
                self.table.setItem(r, c, QTableWidgetItem(text(row)))
        self.status.setText(f"{len(self.rows)} entr{'y' if len(self.rows) == 1 else 'ies'}")
        self._selection_changed()

    def _load_failed(self, key: str, message: str) -> None:
        if key == self.key:
            self.status.setText(f"Could not list: {message}")

    def _acted(self, label: str, _result: Any) -> None:
        if label in self._asked:
            self._asked.discard(label)
            self.refresh()

    def _act_failed(self, label: str, message: str) -> None:
        if label in self._asked:
            self._asked.discard(label)
            self.status.setText(f"{label} failed: {message}")

    def _selection_changed(self) -> None:
        some = bool(self.table.selectionModel().selectedRows())
        for button in self.selection_buttons:
            button.setEnabled(some)


def _names(rows: list[dict]) -> str:
    names = [r.get("name") or r.get("target") or str(r.get("id")) for r in rows]
    return ", ".join(names) if len(names) <= 3 else f"{len(names)} entries"


class AdmissionDialog(ListDialog):
    """Hosts waiting for admission (and those admitted or banned): admit or ban them."""

    def __init__(self, window, parent=None):
        order = {"pending": 0, "banned": 1, "admitted": 2}
        super().__init__(window, "Host admission", [
            ("name", "Host", lambda r: r.get("name") or ""),
            ("state", "State", lambda r: r.get("state") or ""),
            ("address", "Address", lambda r: r.get("address") or ""),
            ("reason", "Reason", lambda r: r.get("reason") or ""),
            ("last_seen", "Last seen", lambda r: fmt.full_time(r.get("last_seen"))),
        ], lambda c: sorted(c.admission(), key=lambda r: (order.get(r.get("state"), 3),
                                                          r.get("name") or "")), parent)
        self.add_button("Admit", self.admit, tip="Let the selected hosts join the farm")
        self.add_button("Ban...", self.ban, tip="Refuse the selected hosts from now on")
        self.finish_buttons()
        self.refresh()

    def admit(self) -> None:
        names = [r["name"] for r in self.selected()]
        if names:
            self.act(f"Admit {_names(self.selected())}", lambda c: c.admit(names))

    def ban(self) -> None:
        rows = self.selected()
        names = [r["name"] for r in rows]
        if not names:
            return
        reason = self.window.prompts.text("Ban hosts", f"Why are {_names(rows)} banned?", "")
        if reason is None:
            return
        if not self.window.confirm(self, f"Ban {_names(rows)}? They are refused until "
                                         "admitted again."):
            return
        self.act(f"Ban {_names(rows)}", lambda c: c.ban(names, reason))


class SchedulesDialog(ListDialog):
    """Weekly lock windows: list, add, delete."""

    def __init__(self, window, target: str = "", parent=None):
        super().__init__(window, "Lock schedules", [
            ("target", "Hosts", lambda r: r.get("target") or ""),
            ("days", "Days", lambda r: days_text(r.get("days") or [])),
            ("window", "Locked", lambda r: f"{r.get('start')}–{r.get('end')}"),
            ("purge", "Purge at lock", lambda r: "yes" if r.get("purge") else "no"),
        ], lambda c: c.schedules(), parent)
        self.target = target
        self.add_button("Add...", self.add, needs_selection=False,
                        tip="A weekly window in which matching hosts are locked")
        self.add_button("Delete", self.delete, tip="Remove the selected schedules")
        self.finish_buttons()
        self.refresh()

    def add(self) -> None:
        values = self.window.prompts.schedule(self.target)
        if values is None:
            return
        self.act(f"Add schedule for {values['target']}",
                 lambda c: c.add_schedule(values["target"], values["days"], values["start"],
                                          values["end"], values.get("purge", False)))

    def delete(self) -> None:
        rows = self.selected()
        if not rows or not self.window.confirm(
                self, f"Delete the lock schedule{'s' if len(rows) > 1 else ''} of "
                      f"{_names(rows)}? Hosts it locks now stay locked until unlocked or "
                      "the next schedule edge."):
            return
        ids = [r["id"] for r in rows]
        self.act(f"Delete schedule {_names(rows)}",
                 lambda c: [c.delete_schedule(i) for i in ids] and len(ids))


class PathMapsDialog(ListDialog):
    """Central path translation rules, in the order they apply: list, add, delete."""

    def __init__(self, window, parent=None):
        super().__init__(window, "Path maps", [
            ("position", "#", lambda r: str(r.get("position") or "")),
            ("os", "OS", lambda r: r.get("os") or ""),
            ("tag", "Tag", lambda r: r.get("tag") or "all hosts"),
            ("source", "From", lambda r: r.get("source") or ""),
            ("target", "To", lambda r: r.get("target") or ""),
        ], lambda c: sorted(c.path_maps(), key=lambda r: (r.get("os") or "",
                                                          r.get("position") or 0)), parent)
        self.add_button("Add...", self.add, needs_selection=False,
                        tip="A rule: paths starting with From read as To on workers of OS")
        self.add_button("Delete", self.delete, tip="Remove the selected rules")
        self.add_button("Check path...", self.check, needs_selection=False,
                        tip="How a path reads on a host after its rules")
        self.finish_buttons()
        self.refresh()

    def add(self) -> None:
        values = self.window.prompts.path_map()
        if values is None:
            return
        self.act(f"Add path map {values['source']}",
                 lambda c: c.add_path_map(values["os"], values["source"], values["target"],
                                          values.get("tag") or None))

    def delete(self) -> None:
        rows = self.selected()
        if not rows or not self.window.confirm(
                self, f"Delete {len(rows)} path rule{'s' if len(rows) > 1 else ''} "
                      f"({', '.join(r['source'] for r in rows)})? Frames launched from now "
                      "on see those paths untranslated."):
            return
        ids = [r["id"] for r in rows]
        self.act(f"Delete path map {ids}", lambda c: [c.delete_path_map(i) for i in ids]
                 and len(ids))

    def check(self) -> None:
        CheckPathDialog(self.window, None, self).show()


def rule_text(answer: dict) -> str:
    """Which rule turned the path into the result, in words."""
    rule = answer.get("rule")
    if not rule:
        text = "No rule matched: the path is used as it is."
    else:
        where = "the worker's own config" if rule.get("origin") == "worker" else "the supervisor"
        text = f"Rule {rule.get('source')} → {rule.get('target')} (from {where})."
    if not answer.get("worker_rules_known", True):
        text += " The worker is not connected: its own rules are not included."
    return text


class CheckPathDialog(QDialog):
    """Type a path; see how it reads on the chosen host and the rule that matched."""

    def __init__(self, window, host: str | None, parent=None):
        super().__init__(parent or window)
        self.window = window
        self.setWindowTitle("Check path")
        self.setObjectName("CheckPathDialog")
        self.key = f"checkpath:{id(self)}"
        self.host = QComboBox()
        self.host.setEditable(True)
        names = sorted(r.get("name") for r in window.hosts_model.all_rows() if r.get("name"))
        self.host.addItems(names)
        if host:
            self.host.setCurrentText(host)
        self.path = QLineEdit()
        self.path.setPlaceholderText("/mnt/proj/shot010/comp.exr")
        self.path.returnPressed.connect(self.check)
        self.button = QPushButton("Check")
        self.button.setDefault(True)
        self.button.clicked.connect(self.check)
        self.result = QLabel("")
        self.result.setObjectName("pathResult")
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.rule = QLabel("")
        self.rule.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Host", self.host)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.button)
        form.addRow("Path", row)
        form.addRow("On the host", self.result)
        form.addRow("Rule", self.rule)
        window.connection.query_done.connect(self._answered)
        window.connection.query_failed.connect(self._failed)
        self.resize(560, 160)

    def check(self) -> None:
        host, path = self.host.currentText().strip(), self.path.text().strip()
        if not host or not path:
            self.rule.setText("Give a host and a path.")
            return
        self.result.setText("...")
        self.rule.setText("Asking the supervisor...")
        self.window.connection.run_query(self.key, lambda c: c.check_path(host, path))

    def _answered(self, key: str, answer: Any) -> None:
        if key == self.key:
            self.result.setText(str(answer.get("result")))
            self.rule.setText(f"{answer.get('os')} host. " + rule_text(answer))

    def _failed(self, key: str, message: str) -> None:
        if key == self.key:
            self.result.setText("")
            self.rule.setText(message)


def banned_text(row: dict) -> str:
    """When a banned host may run the job again ('' for a host only counted so far)."""
    if not row.get("banned"):
        return "not banned"
    return fmt.full_time(row.get("banned_until"))


class BadHostsDialog(ListDialog):
    """The hosts that failed a job's frames: failures, banned until; wranglers clear them."""

    def __init__(self, window, job: dict, clear_reason: str | None = None, parent=None):
        job_id = job["id"]
        super().__init__(window, f"Bad hosts of {job.get('name') or job_id}", [
            ("host", "Host", lambda r: r.get("host") or ""),
            ("failures", "Failures", lambda r: str(r.get("failures") or 0)),
            ("banned_until", "Banned until", banned_text),
        ], lambda c: c.bad_hosts(job_id), parent)
        self.setObjectName("BadHostsDialog")
        self.job_id = job_id
        self.clear_button = self.add_button("Clear", self.clear,
                                            tip="Let the selected hosts run this job again")
        self.clear_all_button = self.add_button("Clear all", self.clear_all,
                                                needs_selection=False,
                                                tip="Forget every failure of this job")
        self.clear_reason = clear_reason
        if clear_reason:
            # Not for this user: shown, disabled, saying why.
            self.selection_buttons.remove(self.clear_button)
            for b in (self.clear_button, self.clear_all_button):
                b.setEnabled(False)
                b.setToolTip(f"{b.toolTip()}.\nNot now: {clear_reason}.")
        self.finish_buttons()
        self.refresh()

    def clear(self) -> None:
        hosts = [r["host"] for r in self.selected()]
        if hosts:
            job_id = self.job_id
            self.act(f"Clear bad hosts {', '.join(hosts)} of job {job_id}",
                     lambda c: sum(c.clear_bad_host(job_id, h) for h in hosts))

    def clear_all(self) -> None:
        if not self.rows or not self.window.confirm(
                self, f"Clear all {len(self.rows)} bad hosts of this job? Its frames may run "
                      "on them again."):
            return
        job_id = self.job_id
        self.act(f"Clear all bad hosts of job {job_id}", lambda c: c.clear_bad_host(job_id))
