"""Dialogs for wrangling submitted work: a layer's properties, and dependencies added between
jobs already on the farm.

Each dialog checks what it can before sending (the spec's own validation), sends one request
through the connection's worker and shows a refusal at the field it names; it closes only
once the supervisor has accepted the change, so nothing typed is lost to an error.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

from qtpy.QtWidgets import (QButtonGroup, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                            QHBoxLayout, QLabel, QLineEdit, QRadioButton, QSpinBox,
                            QVBoxLayout, QWidget)

from cuefarm import CueFarmError
from cuefarm import frames as franges
from cuefarm.client import Unreachable
from cuefarm.spec import OS_NAMES, SpecError, validate_layer_changes
from cuegui import theme
from cuegui.views.dialogs import field_with_error

BIG = 1 << 30
# Checking a range typed here expands it; the supervisor applies the farm's real maximum.
RANGE_CHECK_MAX = 10_000_000
_keys = itertools.count(1)


def reply_call(fn: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    """A worker call answering ("ok", result) or ("error", message, field); an unreachable
    supervisor still raises, so the connection notices."""
    def call(client) -> tuple:
        try:
            return ("ok", fn(client))
        except Unreachable:
            raise
        except CueFarmError as exc:
            return ("error", str(exc), exc.field)
    return call


class RequestDialog(QDialog):
    """A form whose fields show their own errors, sending its request through `connection`
    (run_query, answered on query_done / query_failed under the dialog's own key)."""

    def __init__(self, connection, title: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.connection = connection
        self.fields: dict[str, QWidget] = {}
        self.errors: dict[str, QLabel] = {}
        self.form = QFormLayout()
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.status = QLabel()
        self.status.setObjectName("fieldError")
        self.status.setWordWrap(True)
        self.status.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(self.form)
        layout.addWidget(self.status)
        layout.addWidget(self.buttons)
        self._key: str | None = None
        connection.query_done.connect(self._done)
        connection.query_failed.connect(self._failed)

    def add_field(self, key: str, label: str, widget: QWidget, tip: str = "") -> QWidget:
        widget.setObjectName(f"field_{key}")
        if tip:
            widget.setToolTip(tip)
        box, error = field_with_error(widget)
        self.form.addRow(label, box)
        self.fields[key], self.errors[key] = widget, error
        return widget

    def show_error(self, message: str, field: str | None = None) -> None:
        """Show `message` at the field `field` names (a request field such as values.memory),
        or under the form; "" clears every error."""
        key = (field or "").rsplit(".", 1)[-1].split("[", 1)[0]
        at = key if key in self.errors else None
        for k, label in self.errors.items():
            on = bool(message) and k == at
            label.setText(message if on else "")
            label.setVisible(on)
            w = self.fields[k]
            label.setMinimumHeight(label.heightForWidth(max(w.width(), theme.scaled(300, self)))
                                   if on else 0)
            if w.property("invalid") != on:
                w.setProperty("invalid", on)
                w.style().unpolish(w)
                w.style().polish(w)
        self.status.setText(message if message and at is None else "")
        self.status.setVisible(bool(message) and at is None)
        self.adjustSize()

    def error_at(self, key: str) -> str:
        """The error shown at a field, or under the form for key "" ("" for none)."""
        return self.status.text() if not key else self.errors[key].text()

    def send(self, fn: Callable[[Any], Any]) -> None:
        self._key = f"dialog:{next(_keys)}"
        self.status.setText("Sending...")
        self.status.setVisible(True)
        self.connection.run_query(self._key, reply_call(fn))

    def _done(self, key: str, result: Any) -> None:
        if key != self._key:
            return
        self._key = None
        if result[0] == "ok":
            self.accepted_reply(result[1])
        else:
            self.show_error(result[1], result[2])

    def _failed(self, key: str, message: str) -> None:
        if key == self._key:
            self._key = None
            self.show_error(message)

    def accepted_reply(self, result: Any) -> None:
        self.show_error("")
        self.accept()

    def done(self, code: int) -> None:
        for signal, slot in ((self.connection.query_done, self._done),
                             (self.connection.query_failed, self._failed)):
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        super().done(code)


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.replace(",", " ").split() if t.strip()]


class LayerPropertiesDialog(RequestDialog):
    """What `cuefarm layer set` changes, prefilled from the layer; only what was changed is
    sent, through set_layer.  Range and chunk (`cuefarm layer range`) may change while no frame
    of the layer has run: the frames are made again."""

    def __init__(self, connection, job_id: Any, layer: dict, parent: QWidget | None = None):
        super().__init__(connection, f"Layer {layer.get('name')} of job {job_id}", parent)
        self.job_id, self.layer = job_id, dict(layer)
        heading = QLabel(f"Layer <b>{layer.get('name')}</b> of job #{job_id}: only what you "
                         "change is sent.")
        heading.setWordWrap(True)
        self.form.addRow(heading)
        self.started = sum(int(layer.get(k) or 0) for k in ("running", "succeeded", "dead",
                                                             "eaten"))
        frames_tip = ("The frame numbers (1-100, 1-100x2, 1,5,9) and how many one process runs; "
                      "the frames are made again from them")
        locked = ("Fixed: frames of this layer have run or are done (the range changes only "
                  "while none has)")
        rng = self.add_field("range", "Frame range", QLineEdit(str(layer.get("range") or "")),
                             locked if self.started else frames_tip)
        chunk = self.add_field("chunk", "Chunk", QSpinBox(), locked if self.started
                               else frames_tip)
        chunk.setRange(1, 1_000_000)
        chunk.setValue(int(layer.get("chunk") or 1))
        rng.setEnabled(not self.started)
        chunk.setEnabled(not self.started)
        self.add_field("slots", "Slots", QLineEdit(str(layer.get("slots") or 1)),
                       "A number, N+ (at least N, all free) or all (the whole idle host)")
        self.add_field("memory", "Memory (MB)", self._spin(layer.get("memory")),
                       "Memory each frame reserves on its host")
        self.add_field("gpus", "GPUs", self._spin(layer.get("gpus")))
        self.add_field("max_retries", "Retries", self._spin(layer.get("max_retries")),
                       "Failures a frame may have before it is dead")
        self.add_field("timeout", "Timeout (s)", self._spin(layer.get("timeout"), "none"),
                       "A frame running longer is killed")
        self.add_field("timeout_no_output", "Silent timeout (s)",
                       self._spin(layer.get("timeout_no_output"), "none"),
                       "A frame printing nothing for this long is killed")
        self.add_field("tags", "Tags", QLineEdit(", ".join(layer.get("tags") or [])),
                       "Only hosts with all these tags")
        self.add_field("limits", "Limits", QLineEdit(", ".join(layer.get("limits") or [])),
                       "Limits (licences) each frame needs")
        os_box = QComboBox()
        os_box.addItems(["any", *OS_NAMES])
        os_box.setCurrentText(layer.get("os") or "any")
        self.add_field("os", "Operating system", os_box)
        self.add_field("hosts", "Only hosts", QLineEdit(", ".join(layer.get("hosts") or [])),
                       "Host name patterns, e.g. render-*")
        self.add_field("omit_hosts", "Never hosts",
                       QLineEdit(", ".join(layer.get("omit_hosts") or [])))
        self.add_field("requirements", "Requirements",
                       QLineEdit(layer.get("requirements") or ""),
                       'An expression on the host, e.g. host.memory >= 32000 and "gpu" in '
                       'host.tags')
        self.apply_button = self.buttons.addButton("Apply", QDialogButtonBox.ButtonRole.AcceptRole)
        self.apply_button.setObjectName("apply")
        self.apply_button.clicked.connect(self.apply)
        self.setMinimumWidth(theme.scaled(460, self))

    @staticmethod
    def _spin(value: Any, zero: str = "") -> QSpinBox:
        box = QSpinBox()
        box.setRange(0, BIG)
        if zero:
            box.setSpecialValueText(zero)
        box.setValue(int(value or 0))
        return box

    def values(self) -> dict[str, Any]:
        """Every field as `layer set` takes it."""
        f = self.fields
        slots = f["slots"].text().strip()
        return {"slots": int(slots) if slots.isdigit() else slots,
                "memory": f["memory"].value(), "gpus": f["gpus"].value(),
                "max_retries": f["max_retries"].value(), "timeout": f["timeout"].value(),
                "timeout_no_output": f["timeout_no_output"].value(),
                "tags": _names(f["tags"].text()), "limits": _names(f["limits"].text()),
                "os": None if f["os"].currentText() == "any" else f["os"].currentText(),
                "hosts": _names(f["hosts"].text()), "omit_hosts": _names(f["omit_hosts"].text()),
                "requirements": f["requirements"].text().strip() or None}

    def changes(self) -> dict[str, Any]:
        """The fields that differ from the layer as it was read."""
        was = self.layer
        old = {"slots": was.get("slots"), "memory": was.get("memory") or 0,
               "gpus": was.get("gpus") or 0, "max_retries": was.get("max_retries") or 0,
               "timeout": was.get("timeout") or 0,
               "timeout_no_output": was.get("timeout_no_output") or 0,
               "tags": list(was.get("tags") or []), "limits": list(was.get("limits") or []),
               "os": was.get("os"), "hosts": list(was.get("hosts") or []),
               "omit_hosts": list(was.get("omit_hosts") or []),
               "requirements": was.get("requirements") or None}
        return {k: v for k, v in self.values().items() if str(v) != str(old[k])}

    def frames_change(self) -> tuple[str, int] | None:
        """(range, chunk) when either was changed, else None."""
        rng = self.fields["range"].text().strip()
        chunk = self.fields["chunk"].value()
        if rng == str(self.layer.get("range")) and chunk == int(self.layer.get("chunk") or 1):
            return None
        return rng, chunk

    def apply(self) -> None:
        changes = self.changes()
        reframe = self.frames_change()
        if not changes and reframe is None:
            self.show_error("nothing was changed")
            return
        try:
            if reframe is not None:
                franges.expand(reframe[0], RANGE_CHECK_MAX)
            if changes:
                validate_layer_changes(changes)
        except franges.RangeError as exc:
            self.show_error(str(exc), "range")
            return
        except SpecError as exc:
            self.show_error(exc.message, exc.field)
            return
        job_id, name = self.job_id, self.layer.get("name")

        def call(c):
            if reframe is not None:
                c.set_layer_range(job_id, name, reframe[0], reframe[1])
            if changes:
                c.set_layer(job_id, name, **changes)
        self.send(call)


KINDS = (("job", "Whole job", "Each waiting layer starts once the other job has finished"),
         ("layer", "Layer", "Each waiting layer starts once the other job's layer is done"),
         ("frame", "Frame by frame", "Each frame starts once the frame with its number in the "
                                     "other layer is done"))


class DependencyWizard(RequestDialog):
    """Make a job (or one of its layers) wait for another job, a layer of one, or that layer's
    frames one by one.  The other job's layers are read when it is picked."""

    ALL = "(every layer)"

    def __init__(self, connection, job: dict, layers: list[str], jobs: list[dict],
                 parent: QWidget | None = None):
        super().__init__(connection, f"Add a dependency to {job.get('name')}", parent)
        self.job = job
        self.intro = QLabel(f"Job <b>{job.get('name')}</b> (#{job.get('id')}) will wait for "
                            "another job. Frames already done on the other side count as done.")
        self.intro.setWordWrap(True)
        self.form.addRow(self.intro)
        kinds = QWidget()
        row = QHBoxLayout(kinds)
        row.setContentsMargins(0, 0, 0, 0)
        self.kind_group = QButtonGroup(self)
        self.kind_buttons: dict[str, QRadioButton] = {}
        for key, text, tip in KINDS:
            b = QRadioButton(text)
            b.setObjectName(f"kind_{key}")
            b.setToolTip(tip)
            self.kind_group.addButton(b)
            self.kind_buttons[key] = b
            row.addWidget(b)
        self.kind_buttons["job"].setChecked(True)
        self.add_field("kind", "Wait for", kinds)
        self.layer_box = QComboBox()
        self.layer_box.addItems([self.ALL, *layers])
        self.add_field("layer", "Waiting layer", self.layer_box,
                       "The layer of this job that waits")
        self.target_box = QComboBox()
        for j in jobs:
            if j.get("id") != job.get("id"):
                self.target_box.addItem(f"#{j.get('id')}  {j.get('name')}", j.get("id"))
        self.target_box.setCurrentIndex(-1)
        self.add_field("target_job_id", "Other job", self.target_box, "The job to wait for")
        self.target_layer_box = QComboBox()
        self.add_field("target_layer", "Its layer", self.target_layer_box,
                       "The layer of the other job to wait for")
        self.add_button = self.buttons.addButton("Add", QDialogButtonBox.ButtonRole.AcceptRole)
        self.add_button.setObjectName("add")
        self.add_button.clicked.connect(self.add)
        self.kind_group.buttonToggled.connect(lambda *_: self._kind_changed())
        self.target_box.currentIndexChanged.connect(self._target_changed)
        self._layers_key: str | None = None
        self._kind_changed()
        self.setMinimumWidth(theme.scaled(480, self))

    def kind(self) -> str:
        return next(k for k, b in self.kind_buttons.items() if b.isChecked())

    def set_kind(self, kind: str) -> None:
        self.kind_buttons[kind].setChecked(True)

    def _kind_changed(self) -> None:
        self.target_layer_box.setEnabled(self.kind() != "job")
        self.show_error("")

    def select_target(self, job_id: Any) -> None:
        self.target_box.setCurrentIndex(self.target_box.findData(job_id))

    def _target_changed(self, _index: int) -> None:
        self.target_layer_box.clear()
        target = self.target_box.currentData()
        if target is None:
            return
        self._layers_key = f"dialog:{next(_keys)}"
        self.connection.run_query(self._layers_key, reply_call(lambda c: c.layers(target)))

    def _done(self, key: str, result: Any) -> None:
        if key == self._layers_key:
            self._layers_key = None
            if result[0] == "ok":
                self.target_layer_box.addItems([lay["name"] for lay in result[1]])
            else:
                self.show_error(result[1], "target_job_id")
            return
        super()._done(key, result)

    def request(self) -> dict[str, Any] | None:
        """The add_dependency arguments, or None after showing what is missing."""
        kind = self.kind()
        target = self.target_box.currentData()
        if target is None:
            self.show_error("pick the job to wait for", "target_job_id")
            return None
        layer = self.layer_box.currentText()
        layer = None if layer == self.ALL else layer
        target_layer = self.target_layer_box.currentText() or None
        if kind != "job" and target_layer is None:
            self.show_error("pick the layer to wait for", "target_layer")
            return None
        if kind == "frame" and layer is None:
            self.show_error("frame by frame, one layer waits: pick it", "layer")
            return None
        return {"kind": kind, "job_id": self.job.get("id"), "target_job_id": target,
                "layer": layer, "target_layer": None if kind == "job" else target_layer}

    def add(self) -> None:
        r = self.request()
        if r is None:
            return
        self.send(lambda c: c.add_dependency(r["kind"], r["job_id"], r["target_job_id"],
                                             layer=r["layer"], target_layer=r["target_layer"]))

