"""The submit dialog: one job of one or more layers, validated as it is typed.

Validation is `cuefarm.spec.validate_job`, the very function the supervisor applies, so what
the dialog accepts the supervisor accepts; an error is shown under the field it names.  Errors
only the supervisor can find (a job to wait for that does not exist) come back the same way.

A field is checked once it has been edited (a fresh form shows no errors), every field on
Submit; every wrong field shows its own error, not only the first one found.  Placement
(GPUs, OS, hosts, requirements, limits) and timeouts are in a collapsible Advanced section.

Layers are tabs over one set of layer fields (cuegui.views.submitlayers keeps the others); a
layer with an error elsewhere shows it on its tab and in the status line.  "Save as job file"
writes what Submit would send, for `cuefarm submit FILE`.  "Submit paused" stores the job
paused (the job file's `paused` key): nothing of it starts until it is resumed.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from qtpy.QtCore import Qt, QTimer, Signal
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox,
                            QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                            QPushButton, QSpinBox, QTabBar, QToolButton, QVBoxLayout, QWidget)

from cuefarm import CueFarmError, Unreachable
from cuefarm.spec import OS_NAMES, SpecError, validate_job
from cuegui import theme
from cuegui.views.dialogs import field_with_error
# parse_depends and words live with the layers now; callers import them from here too.
from cuegui.views.submitlayers import (ADVANCED, LayerTabs, cross_layer_errors,  # noqa: F401
                                       layer_names, parse_depends, parse_env, set_field, words)

# Which field a spec error names -> the key of the widget that shows it.
FIELD_KEYS = [("job.layers[0].name", "layer_name"), ("job.layers[0].env", "env"),
              ("job.layers[0].outputs", "outputs"),
              ("job.name", "name"), ("job.project", "project"), ("job.priority", "priority"),
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
# What stands in for a wrong field while looking for the next error: a value validate_job
# accepts (None: leave the key out).
STAND_INS: dict[str, Any] = {"name": "x", "project": "default", "priority": 0,
                             "min_slots": None, "max_slots": None, "command": "true",
                             "range": "1", "chunk": 1, "slots": 1, "memory": 0, "tags": None,
                             "max_retries": 1, "depends_on": None, "layer_name": "main",
                             "env": None, "outputs": None, **{k: None for k in ADVANCED}}
JOB_LEVEL = {"name", "project", "priority", "min_slots", "max_slots"}
# The form field -> the layer key it fills, where the two differ.
SPEC_KEY = {"layer_name": "name"}


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
            spec_key = SPEC_KEY.get(key, key)
            if STAND_INS.get(key) is None:
                target.pop(spec_key, None)
            else:
                target[spec_key] = STAND_INS[key]
    return found


def widget_key(field_path: str | None) -> str:
    """The form field an error belongs to (the name field when nothing fits better)."""
    if field_path:
        path = re.sub(r"\.layers\[\d+\]", ".layers[0]", field_path.replace("jobs[0].", "job."))
        for prefix, key in FIELD_KEYS:
            if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
                return key
    return "name"


class SubmitDialog(LayerTabs, QDialog):
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
        self._loading = False
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
        self._row(form, "min_slots", "Min slots", self._spin(0, 1 << 30, 0))
        self._row(form, "max_slots", "Max slots", self._spin(0, 1 << 30, 0))
        self.fields["max_slots"].setSpecialValueText("no limit")
        self.paused = QCheckBox("Submit paused")
        self.paused.setObjectName("field_paused")
        self.paused.setToolTip("Store the job paused: nothing of it runs until you resume it "
                               "from the jobs list")
        form.addRow("", self.paused)
        # The layers: a tab each over one set of layer fields.
        self.layer_tabs = QTabBar()
        self.layer_tabs.setObjectName("layerTabs")
        self.layer_tabs.setExpanding(False)
        self.layer_tabs.setDrawBase(False)
        self.layer_tabs.setTabsClosable(False)
        self.layer_tabs.setMovable(False)
        self.add_layer_button = QToolButton()
        self.add_layer_button.setText("Add layer")
        self.add_layer_button.setToolTip("A new layer, with the current layer's settings")
        self.add_layer_button.clicked.connect(lambda: self.add_layer())
        self.remove_layer_button = QToolButton()
        self.remove_layer_button.setText("Remove layer")
        self.remove_layer_button.setToolTip("Remove the layer shown")
        self.remove_layer_button.clicked.connect(lambda: self.remove_layer())
        tabs_line = QHBoxLayout()
        tabs_line.setContentsMargins(0, theme.scaled(6, self), 0, 0)
        tabs_line.addWidget(QLabel("Layers:"))
        tabs_line.addWidget(self.layer_tabs, 1)
        tabs_line.addWidget(self.add_layer_button)
        tabs_line.addWidget(self.remove_layer_button)
        tabs_row = QWidget()
        tabs_row.setLayout(tabs_line)
        form.addRow(tabs_row)
        layer_form = form       # one form, so the job's and the layers' labels line up
        self._row(layer_form, "layer_name", "Layer name", QLineEdit("main"), "render, comp")
        self._row(layer_form, "command", "Command", QLineEdit(), "render -s #FRAME# scene.ma  "
                  "(run by the shell; #FRAME#, #FRAME_START#, #FRAME_END#, #ZFRAME#)")
        self._row(layer_form, "range", "Frames", QLineEdit(), "1-100, 1-100x5, 1,3,7")
        self._row(layer_form, "chunk", "Chunk", self._spin(1, 1_000_000, 1))
        self._row(layer_form, "slots", "Slots", QLineEdit("1"), "4, 4+ (at least four) or all")
        self._row(layer_form, "memory", "Memory (MB)", self._spin(0, 1 << 30, 0))
        self._row(layer_form, "tags", "Tags", QLineEdit(), "gpu, maya2024")
        self._row(layer_form, "max_retries", "Retries", self._spin(0, 100, 1))
        self._row(layer_form, "after", "After layers", QLineEdit(),
                  "render (layers of this job this one waits for)")
        deps = QLineEdit()
        pick = QPushButton("Selected jobs")
        pick.setToolTip("Wait for the jobs selected in the jobs list")
        pick.clicked.connect(self._pick_jobs)
        self._row(layer_form, "depends_on", "Wait for jobs", deps,
                  "12, 14/comp (job, or job/layer)", extra=pick)
        env = QPlainTextEdit()
        env.setTabChangesFocus(True)
        env.setFixedHeight(theme.line_height(self) * 3 + theme.scaled(14, self))
        self._row(layer_form, "env", "Environment", env, "NAME=value, one per line")
        self._row(layer_form, "outputs", "Outputs", QLineEdit(),
                  "/shots/sh010/out.####.png (images each frame writes: previewed)")
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
        self.save_button = self.buttons.addButton("Save as job file...",
                                                  QDialogButtonBox.ButtonRole.ActionRole)
        self.save_button.setToolTip("Write this job as a file `cuefarm submit FILE` reads")
        self.save_button.clicked.connect(lambda: self.save_job_file())
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
        # Each layer's form values; the one shown is read from the fields.
        self.forms: list[dict[str, Any]] = [self._form()]
        self.current = 0
        self.layer_tabs.addTab("main")
        self.layer_tabs.currentChanged.connect(self._layer_switched)
        self.fields["layer_name"].textEdited.connect(
            lambda text: self.layer_tabs.setTabText(self.current, text or "(no name)"))
        self.elsewhere: dict[int, dict[str, str]] = {}     # errors of layers not shown
        self._update_layer_buttons()
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
        elif isinstance(widget, QPlainTextEdit):
            widget.setPlaceholderText(placeholder)
            widget.textChanged.connect(changed)
        widget.setObjectName(f"field_{key}")
        box, error = field_with_error(widget, extra)
        form.addRow(label, box)
        self.fields[key], self.errors[key] = widget, error

    # -- values ---------------------------------------------------------------------------------

    def _text(self, key: str) -> str:
        return str(self._raw(key)).strip()

    def _raw(self, key: str) -> Any:
        """A field's value as the widget holds it."""
        w = self.fields[key]
        if isinstance(w, QComboBox):
            return w.currentText()
        if isinstance(w, QSpinBox):
            return w.value()
        if isinstance(w, QPlainTextEdit):
            return w.toPlainText()
        return w.text()

    def job(self) -> dict[str, Any]:
        """The job dict the form describes (validated or not)."""
        f = self.fields
        job: dict[str, Any] = {"name": self._text("name"), "project": self._text("project"),
                               "priority": f["priority"].value(),
                               "layers": [self.layer_from(form) for form in self._forms()]}
        if f["min_slots"].value():
            job["min_slots"] = f["min_slots"].value()
        if f["max_slots"].value():
            job["max_slots"] = f["max_slots"].value()
        if self.paused.isChecked():
            job["paused"] = True
        return job

    def submit_paused(self) -> bool:
        return self.paused.isChecked()

    def set_values(self, **values: Any) -> None:
        """Fill fields by key (for tests and for submitting again with changes)."""
        for key, value in values.items():
            set_field(self.fields[key], value)
            if key == "layer_name":
                self.layer_tabs.setTabText(self.current, str(value) or "(no name)")
        self.touched.update(values)
        self.validate()

    # -- validation -------------------------------------------------------------------------------

    def _changed(self, key: str) -> None:
        if self._loading:
            return
        self.touched.add(key)
        self._timer.start()

    def validate(self, every_field: bool = False) -> bool:
        """Check the form with the supervisor's own rules and show each error at its field:
        the fields edited so far, or `every_field` (on Submit).  Errors of layers not shown
        are named on their tabs and in the status line.  True when the whole job is valid."""
        self._timer.stop()
        if every_field:
            self.touched.update(self.fields)
        job, forms = self.job(), self._forms()
        names = [str(f["layer_name"]).strip() for f in forms]
        per_layer: list[dict[str, str]] = []
        errors: dict[str, str] = {}
        for i, (layer, form) in enumerate(zip(job["layers"], forms)):
            local = set(layer_names(str(form["after"])))
            alone = {**layer, "depends_on": [d for d in layer.get("depends_on", [])
                                            if not (isinstance(d, str) and d in local)]}
            if not alone["depends_on"]:
                del alone["depends_on"]
            found = all_errors({**job, "layers": [alone]})
            _, env_error = parse_env(str(form["env"]))
            if env_error:
                found["env"] = env_error
            for key in [k for k in found if k in JOB_LEVEL]:
                errors[key] = found.pop(key)
            per_layer.append(found)
        for i, found in cross_layer_errors(names, [layer_names(str(f["after"]))
                                                   for f in forms]).items():
            for key, message in found.items():
                per_layer[i].setdefault(key, message)
        if "name" in errors and not self._text("name"):
            errors["name"] = "the job needs a name (letters, digits, _ . -)"
        errors.update(per_layer[self.current])
        self.elsewhere = {i: found for i, found in enumerate(per_layer)
                          if found and i != self.current}
        self.show_errors({k: m for k, m in errors.items() if k in self.touched})
        self._show_elsewhere(names)
        valid = not errors and not self.elsewhere
        self.submit_button.setEnabled(valid or not (set(errors) & self.touched)
                                      and not self.elsewhere)
        return valid

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
            self._show_first_error()
            return
        self.submit_button.setEnabled(False)
        self.status.setText("Submitting...")
        self.submit_wanted.emit(self.job())

    # -- answers --------------------------------------------------------------------------------

    def submitted(self, ids: list[int]) -> None:
        self.status.setText(f"Submitted as job {', '.join(map(str, ids))}")
        self.accept()

    def failed(self, message: str, field_path: str | None) -> None:
        index = re.search(r"\.layers\[(\d+)\]", field_path or "")
        if index and int(index.group(1)) < len(self.forms):
            self.select_layer(int(index.group(1)))
        self.show_error(message, field_path)
        if not field_path:
            self.status.setText(message)


def submit_call(job: dict, paused: bool = False) -> Callable:
    """A worker call that submits `job` (stored paused, when `paused`: nothing of it starts)
    and answers ("ok", ids) or ("error", message, field); an unreachable supervisor still
    raises, so the connection notices."""
    if paused:
        job = {**job, "paused": True}

    def call(client) -> tuple:
        try:
            ids = client.submit([job])
            return ("ok", ids)
        except Unreachable:
            raise
        except CueFarmError as exc:
            return ("error", str(exc), exc.field)
    return call
