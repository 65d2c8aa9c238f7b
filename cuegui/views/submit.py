"""The submit dialog: one job of one layer, validated as it is typed.

Validation is `cuefarm.spec.validate_job`, the very function the supervisor applies, so what
the dialog accepts the supervisor accepts; an error is shown under the field it names.  Errors
only the supervisor can find (a job to wait for that does not exist) come back the same way.

A field is checked once it has been edited (a fresh form shows no errors), every field on
Submit; every wrong field shows its own error, not only the first one found.  Placement
(GPUs, OS, hosts, requirements, limits) and timeouts are in a collapsible Advanced section.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout,
                            QLabel, QLineEdit, QPushButton, QSpinBox, QToolButton, QVBoxLayout,
                            QWidget)

from cuefarm import CueFarmError, Unreachable
from cuefarm.spec import OS_NAMES, SpecError, validate_job
from cuegui import theme

# Which field a spec error names -> the key of the widget that shows it.
FIELD_KEYS = [("job.name", "name"), ("job.project", "project"), ("job.priority", "priority"),
              ("job.min_slots", "min_slots"), ("job.max_slots", "max_slots"),
              ("job.layers[0].command", "command"), ("job.layers[0].range", "range"),
              ("job.layers[0].chunk", "chunk"), ("job.layers[0].slots", "slots"),
              ("job.layers[0].memory", "memory"), ("job.layers[0].tags", "tags"),
              ("job.layers[0].max_retries", "max_retries"),
              ("job.layers[0].depends_on", "depends_on"), ("job.layers[0].gpus", "gpus"),
              ("job.layers[0].os", "os"), ("job.layers[0].hosts", "hosts"),
              ("job.layers[0].omit_hosts", "omit_hosts"),
              ("job.layers[0].requirements", "requirements"),
              ("job.layers[0].limits", "limits"), ("job.layers[0].timeout_no_output",
                                                   "timeout_no_output"),
              ("job.layers[0].timeout", "timeout"), ("job.layers", "range"),
              ("jobs[0]", "name")]
ADVANCED = ("gpus", "os", "hosts", "omit_hosts", "requirements", "limits", "timeout",
            "timeout_no_output")
# What stands in for a wrong field while looking for the next error: a value validate_job
# accepts (None: leave the key out).
STAND_INS: dict[str, Any] = {"name": "x", "project": "default", "priority": 0,
                             "min_slots": None, "max_slots": None, "command": "true",
                             "range": "1", "chunk": 1, "slots": 1, "memory": 0, "tags": None,
                             "max_retries": 1, "depends_on": None,
                             **{k: None for k in ADVANCED}}
JOB_LEVEL = {"name", "project", "priority", "min_slots", "max_slots"}


def words(text: str) -> list[str]:
    """"a, b c" -> ["a", "b", "c"]."""
    return [w for w in re.split(r"[,\s]+", text) if w]


def all_errors(job: dict[str, Any], limit: int = 40) -> dict[str, str]:
    """Every form field `job` is wrong in, with its message: validate, put a good value in
    the field named, validate again, until the job passes."""
    job = {**job, "layers": [dict(job["layers"][0])]}
    found: dict[str, str] = {}
    for _ in range(limit):
        try:
            validate_job(job)
            break
        except SpecError as exc:
            key = widget_key(exc.field)
            if key in found:           # no stand-in helped: stop rather than loop
                break
            found[key] = exc.message
            target = job if key in JOB_LEVEL else job["layers"][0]
            if STAND_INS.get(key) is None:
                target.pop(key, None)
            else:
                target[key] = STAND_INS[key]
    return found


def widget_key(field_path: str | None) -> str:
    """The form field an error belongs to (the name field when nothing fits better)."""
    if field_path:
        path = field_path.replace("jobs[0].", "job.")
        for prefix, key in FIELD_KEYS:
            if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
                return key
    return "name"


def parse_depends(text: str) -> list[Any]:
    """"12, 14/comp" -> [{"job": 12}, {"job": 14, "layer": "comp"}]; other words are kept as
    they are, for validation to name."""
    out: list[Any] = []
    for word in (w.strip() for w in re.split(r"[,\s]+", text) if w.strip()):
        job, _, layer = word.partition("/")
        if job.isdigit():
            out.append({"job": int(job), **({"layer": layer} if layer else {})})
        else:
            out.append(word)
    return out


class SubmitDialog(QDialog):
    """Builds a job dict from the form; `submit_wanted(job)` when the user submits a valid one.
    The window answers with `submitted(ids)` or `failed(message, field)`."""

    submit_wanted = Signal(dict)

    def __init__(self, projects: list[str] = (), selected_jobs: Callable[[], list] = list,
                 parent: QWidget | None = None, project: str | None = None):
        super().__init__(parent)
        self.setWindowTitle("Submit job")
        self.setObjectName("submitDialog")
        self.setMinimumWidth(theme.scaled(620, self))
        self.selected_jobs = selected_jobs
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.project = QComboBox()
        self.project.setEditable(True)
        self.project.addItems(sorted(set(projects) | {"default"}))
        # The project of the job in view, else the only one there is, else "default".
        first = project or (projects[0] if len(projects) == 1 else "default")
        self.project.setCurrentText(first)
        self._row(form, "name", "Name", QLineEdit(), "shot010_lighting_v3")
        self._row(form, "project", "Project", self.project)
        self._row(form, "priority", "Priority", self._spin(-1_000_000, 1_000_000, 50))
        self._row(form, "command", "Command", QLineEdit(), "render -s #FRAME# scene.ma  "
                  "(run by the shell; #FRAME#, #FRAME_START#, #FRAME_END#, #ZFRAME#)")
        self._row(form, "range", "Frames", QLineEdit(), "1-100, 1-100x5, 1,3,7")
        self._row(form, "chunk", "Chunk", self._spin(1, 1_000_000, 1))
        self._row(form, "slots", "Slots", QLineEdit("1"), "4, 4+ (at least four) or all")
        self._row(form, "memory", "Memory (MB)", self._spin(0, 1 << 30, 0))
        self._row(form, "tags", "Tags", QLineEdit(), "gpu, maya2024")
        self._row(form, "max_retries", "Retries", self._spin(0, 100, 1))
        deps = QLineEdit()
        pick = QPushButton("Selected jobs")
        pick.setToolTip("Wait for the jobs selected in the jobs list")
        pick.clicked.connect(self._pick_jobs)
        self._row(form, "depends_on", "Wait for jobs", deps, "12, 14/comp (job, or job/layer)",
                  extra=pick)
        self._row(form, "min_slots", "Min slots", self._spin(0, 1 << 30, 0))
        self._row(form, "max_slots", "Max slots", self._spin(0, 1 << 30, 0))
        self.fields["max_slots"].setSpecialValueText("no limit")
        self.advanced_button = QToolButton()
        self.advanced_button.setObjectName("advancedToggle")
        self.advanced_button.setText("Advanced: placement and timeouts")
        self.advanced_button.setCheckable(True)
        self.advanced_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_button.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_button.setAutoRaise(True)
        self.advanced = QWidget()
        self.advanced.setObjectName("advancedSection")
        adv = QFormLayout(self.advanced)
        adv.setContentsMargins(0, 0, 0, 0)
        adv.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self._row(adv, "gpus", "GPUs", self._spin(0, 64, 0))
        os_box = QComboBox()
        os_box.setEditable(True)
        os_box.addItems(["", *OS_NAMES])
        os_box.lineEdit().setPlaceholderText("any")
        self._row(adv, "os", "OS", os_box)
        self._row(adv, "hosts", "Only hosts", QLineEdit(), "render-*, ws-0[1-4] (name patterns)")
        self._row(adv, "omit_hosts", "Never hosts", QLineEdit(), "render-07, old-*")
        self._row(adv, "requirements", "Requirements", QLineEdit(),
                  "host.memory >= 32000 and \"gpu\" in host.tags")
        self._row(adv, "limits", "Limits", QLineEdit(), "nuke_licence, arnold")
        self._row(adv, "timeout", "Timeout (s)", self._spin(0, 365 * 86400, 0))
        self.fields["timeout"].setSpecialValueText("none")
        self.fields["timeout"].setToolTip("Kill a frame that runs longer than this")
        self._row(adv, "timeout_no_output", "Silent for (s)", self._spin(0, 365 * 86400, 0))
        self.fields["timeout_no_output"].setSpecialValueText("none")
        self.fields["timeout_no_output"].setToolTip(
            "Kill a frame whose log shows nothing new for this long")
        self.advanced.hide()
        self.advanced_button.toggled.connect(self.show_advanced)
        self.status = QLabel()
        self.status.setObjectName("fieldError")
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.submit_button = self.buttons.addButton("Submit",
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self._submit)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.advanced_button)
        layout.addWidget(self.advanced)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self.touched: set[str] = set()      # fields edited since the form opened
        self._timer = QTimer(self, singleShot=True, interval=150)
        self._timer.timeout.connect(self.validate)

    # -- building -------------------------------------------------------------------------------

    @staticmethod
    def _spin(lo: int, hi: int, value: int) -> QSpinBox:
        box = QSpinBox()
        box.setRange(lo, hi)
        box.setValue(value)
        return box

    def _row(self, form: QFormLayout, key: str, label: str, widget: QWidget,
             placeholder: str = "", extra: QWidget | None = None) -> None:
        changed = lambda *_a, k=key: self._changed(k)      # noqa: E731
        if isinstance(widget, QLineEdit):
            widget.setPlaceholderText(placeholder)
            widget.textEdited.connect(changed)
        elif isinstance(widget, QSpinBox):
            widget.valueChanged.connect(changed)
        elif isinstance(widget, QComboBox):
            widget.currentTextChanged.connect(changed)
        widget.setObjectName(f"field_{key}")
        error = QLabel()
        error.setObjectName("fieldError")
        error.setWordWrap(True)
        error.hide()
        box = QWidget()
        lay = QVBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(1)
        if extra is not None:
            line = QHBoxLayout()
            line.addWidget(widget, 1)
            line.addWidget(extra)
            lay.addLayout(line)
        else:
            lay.addWidget(widget)
        lay.addWidget(error)
        form.addRow(label, box)
        self.fields[key], self.errors[key] = widget, error

    # -- values ---------------------------------------------------------------------------------

    def _text(self, key: str) -> str:
        w = self.fields[key]
        return w.currentText().strip() if isinstance(w, QComboBox) else w.text().strip()

    def job(self) -> dict[str, Any]:
        """The job dict the form describes (validated or not)."""
        f = self.fields
        slots: Any = self._text("slots")
        if slots.isdigit():
            slots = int(slots)
        layer: dict[str, Any] = {"name": "main", "command": self._text("command"),
                                 "range": self._text("range"), "chunk": f["chunk"].value(),
                                 "slots": slots, "memory": f["memory"].value(),
                                 "max_retries": f["max_retries"].value()}
        tags = [t.strip() for t in self._text("tags").split(",") if t.strip()]
        if tags:
            layer["tags"] = tags
        deps = parse_depends(self._text("depends_on"))
        if deps:
            layer["depends_on"] = deps
        for key in ("gpus", "timeout", "timeout_no_output"):
            if f[key].value():
                layer[key] = f[key].value()
        for key in ("os", "requirements"):
            if self._text(key):
                layer[key] = self._text(key)
        for key in ("hosts", "omit_hosts", "limits"):
            if words(self._text(key)):
                layer[key] = words(self._text(key))
        job: dict[str, Any] = {"name": self._text("name"), "project": self._text("project"),
                               "priority": f["priority"].value(), "layers": [layer]}
        if f["min_slots"].value():
            job["min_slots"] = f["min_slots"].value()
        if f["max_slots"].value():
            job["max_slots"] = f["max_slots"].value()
        return job

    def set_values(self, **values: Any) -> None:
        """Fill fields by key (for tests and for submitting again with changes)."""
        for key, value in values.items():
            w = self.fields[key]
            if isinstance(w, QSpinBox):
                w.setValue(int(value))
            elif isinstance(w, QComboBox):
                w.setEditText(str(value))
            else:
                w.setText(str(value))
        self.touched.update(values)
        self.validate()

    # -- validation -------------------------------------------------------------------------------

    def _changed(self, key: str) -> None:
        self.touched.add(key)
        self._timer.start()

    def validate(self, every_field: bool = False) -> bool:
        """Check the form with the supervisor's own rules and show each error at its field:
        the fields edited so far, or `every_field` (on Submit).  True when the whole form is
        valid."""
        self._timer.stop()
        if every_field:
            self.touched.update(self.fields)
        errors = all_errors(self.job())
        if "name" in errors and not self._text("name"):
            errors["name"] = "the job needs a name (letters, digits, _ . -)"
        self.show_errors({k: m for k, m in errors.items() if k in self.touched})
        return not errors

    def show_errors(self, errors: dict[str, str]) -> None:
        """Show each message at its field ({} clears every field)."""
        for k, label in self.errors.items():
            message = errors.get(k, "")
            on = bool(message)
            label.setText(message)
            label.setVisible(on)
            w = self.fields[k]
            # A wrapped label's height-for-width does not reach the dialog's minimum size:
            # give it the height its lines need at the field's width.
            width = max(w.width(), theme.scaled(300, self))
            label.setMinimumHeight(label.heightForWidth(width) if on else 0)
            if w.property("invalid") != on:
                w.setProperty("invalid", on)
                w.style().unpolish(w)
                w.style().polish(w)
        if any(k in ADVANCED for k in errors):
            self.advanced_button.setChecked(True)
        self.submit_button.setEnabled(not errors)
        self.status.setText("")

    def show_error(self, message: str, field_path: str | None) -> None:
        """Show `message` at the field `field_path` names ("" clears every field)."""
        self.show_errors({widget_key(field_path): message} if message else {})

    def show_advanced(self, on: bool) -> None:
        self.advanced_button.setChecked(on)
        self.advanced_button.setArrowType(Qt.ArrowType.DownArrow if on
                                          else Qt.ArrowType.RightArrow)
        self.advanced.setVisible(on)

    def error_at(self, key: str) -> str:
        """The error shown at a field ("" for none)."""
        label = self.errors[key]
        return label.text() if label.isVisible() or label.text() else ""

    def _pick_jobs(self) -> None:
        ids = [str(j["id"]) for j in self.selected_jobs()]
        if ids:
            self.fields["depends_on"].setText(", ".join(ids))
            self._changed("depends_on")

    def _submit(self) -> None:
        if not self.validate(every_field=True):
            return
        self.submit_button.setEnabled(False)
        self.status.setText("Submitting...")
        self.submit_wanted.emit(self.job())

    # -- answers --------------------------------------------------------------------------------

    def submitted(self, ids: list[int]) -> None:
        self.status.setText(f"Submitted as job {', '.join(map(str, ids))}")
        self.accept()

    def failed(self, message: str, field_path: str | None) -> None:
        self.show_error(message, field_path)
        if not field_path:
            self.status.setText(message)


def submit_call(job: dict) -> Callable:
    """A worker call that submits `job` and answers ("ok", ids) or ("error", message, field);
    an unreachable supervisor still raises, so the connection notices."""
    def call(client) -> tuple:
        try:
            return ("ok", client.submit([job]))
        except Unreachable:
            raise
        except CueFarmError as exc:
            return ("error", str(exc), exc.field)
    return call
