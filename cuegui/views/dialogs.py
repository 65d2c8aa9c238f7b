"""Small questions the actions ask: a priority, job slots, a project, host slots, host tags.

`Prompts` is the one place that opens these dialogs, so a test (or a script) can answer them
by giving the window another object with the same methods.
"""

from __future__ import annotations

from qtpy.QtCore import QTime
from qtpy.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout,
                            QHBoxLayout, QInputDialog, QLabel, QLineEdit, QSpinBox, QTimeEdit,
                            QVBoxLayout, QWidget)

DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
TARGET_OS = ("linux", "windows", "darwin")

BIG = 1 << 30


def _dialog(parent: QWidget | None, title: str) -> tuple[QDialog, QFormLayout]:
    d = QDialog(parent)
    d.setWindowTitle(title)
    form = QFormLayout(d)
    return d, form


def _buttons(d: QDialog, form: QFormLayout) -> None:
    box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                           | QDialogButtonBox.StandardButton.Cancel)
    box.accepted.connect(d.accept)
    box.rejected.connect(d.reject)
    form.addRow(box)


class Prompts:
    """Modal dialogs over `parent`; each returns None (or False where None is an answer) when
    cancelled."""

    def __init__(self, parent: QWidget | None = None):
        self.parent = parent

    def integer(self, title: str, label: str, value: int, lo: int, hi: int) -> int | None:
        number, ok = QInputDialog.getInt(self.parent, title, label, value, lo, hi)
        return number if ok else None

    def slots(self, job: dict) -> tuple[int, int | None] | None:
        """(min_slots, max_slots or None for no limit) for a job."""
        d, form = _dialog(self.parent, f"Slots of {job.get('name')}")
        lo, hi = QSpinBox(), QSpinBox()
        lo.setRange(0, BIG)
        hi.setRange(0, BIG)
        hi.setSpecialValueText("no limit")
        lo.setValue(int(job.get("min_slots") or 0))
        hi.setValue(int(job.get("max_slots") or 0))
        lo.setToolTip("Slots the job is guaranteed when it has work (fair share)")
        hi.setToolTip("The most slots the job may use at once")
        form.addRow("Minimum", lo)
        form.addRow("Maximum", hi)
        _buttons(d, form)
        if d.exec() != QDialog.DialogCode.Accepted:
            return None
        return lo.value(), (hi.value() or None)

    def project(self, current: str | None, choices: list[str]) -> str | None:
        items = sorted(set(choices) | ({current} if current else set()))
        index = items.index(current) if current in items else 0
        name, ok = QInputDialog.getItem(self.parent, "Move to project", "Project:", items,
                                        index, True)
        return name.strip() if ok and name.strip() else None

    def host_slots(self, host: dict) -> int | None | bool:
        """Slots for a host: a number, None (back to what its worker offers), False: cancel."""
        d, form = _dialog(self.parent, f"Slots of {host.get('name')}")
        spin = QSpinBox()
        spin.setRange(0, 4096)
        spin.setValue(int(host.get("slots") or host.get("slots_configured") or 0))
        reset = QCheckBox("What the worker offers")
        reset.toggled.connect(lambda on: spin.setEnabled(not on))
        form.addRow("Slots", spin)
        form.addRow("", reset)
        _buttons(d, form)
        if d.exec() != QDialog.DialogCode.Accepted:
            return False
        return None if reset.isChecked() else spin.value()

    def tags(self, host: dict) -> tuple[list[str], list[str]] | None:
        """(tags to add, tags to remove) for a host, from an edited list."""
        current = list(host.get("tags") or [])
        d, form = _dialog(self.parent, f"Tags of {host.get('name')}")
        edit = QLineEdit(", ".join(current))
        edit.setToolTip("Comma-separated tags; remove one to take it away")
        form.addRow("Tags", edit)
        _buttons(d, form)
        if d.exec() != QDialog.DialogCode.Accepted:
            return None
        return tag_changes(current, edit.text())

    def text(self, title: str, label: str, value: str = "") -> str | None:
        """A line of text (may be empty); None when cancelled."""
        answer, ok = QInputDialog.getText(self.parent, title, label, QLineEdit.EchoMode.Normal,
                                          value)
        return answer.strip() if ok else None

    def schedule(self, target: str = "") -> dict | None:
        """A weekly lock window: {'target', 'days', 'start', 'end', 'purge'}."""
        d, form = _dialog(self.parent, "Add lock schedule")
        edit = QLineEdit(target)
        edit.setPlaceholderText("ws-*, a host name, or tag:desktop")
        days = []
        row = QHBoxLayout()
        for i, name in enumerate(DAY_NAMES):
            box = QCheckBox(name)
            box.setChecked(i < 5)
            days.append(box)
            row.addWidget(box)
        start, end = QTimeEdit(QTime(9, 0)), QTimeEdit(QTime(19, 0))
        for t in (start, end):
            t.setDisplayFormat("HH:mm")
        purge = QCheckBox("Kill running frames at lock time")
        form.addRow("Hosts", edit)
        form.addRow("Days", row)
        form.addRow("Locked from", start)
        form.addRow("until", end)
        form.addRow("", purge)
        _buttons(d, form)
        if d.exec() != QDialog.DialogCode.Accepted:
            return None
        return {"target": edit.text().strip(), "days": [i for i, b in enumerate(days)
                                                         if b.isChecked()],
                "start": start.time().toString("HH:mm"), "end": end.time().toString("HH:mm"),
                "purge": purge.isChecked()}

    def path_map(self) -> dict | None:
        """A path rule: {'os', 'source', 'target', 'tag'}."""
        d, form = _dialog(self.parent, "Add path map")
        d.setMinimumWidth(460)
        os_box = QComboBox()
        os_box.addItems(TARGET_OS)
        source, target, tag = QLineEdit(), QLineEdit(), QLineEdit()
        source.setPlaceholderText("/mnt/proj")
        target.setPlaceholderText("P:\\proj")
        tag.setPlaceholderText("every host of that OS")
        form.addRow("Workers of OS", os_box)
        form.addRow("Paths starting with", source)
        form.addRow("read as", target)
        form.addRow("Only hosts tagged", tag)
        _buttons(d, form)
        if d.exec() != QDialog.DialogCode.Accepted:
            return None
        return {"os": os_box.currentText(), "source": source.text().strip(),
                "target": target.text().strip(), "tag": tag.text().strip() or None}


def tag_changes(current: list[str], text: str) -> tuple[list[str], list[str]]:
    """What to add and remove to turn `current` into the tags listed in `text`."""
    wanted = [t.strip() for t in text.split(",") if t.strip()]
    return ([t for t in wanted if t not in current],
            [t for t in current if t not in wanted])


def field_with_error(widget: QWidget, extra: QWidget | None = None) -> tuple[QWidget, QLabel]:
    """A form field as dialogs that check their input show it: the widget (with `extra`
    beside it, such as a button), and under it an error label, hidden until an error is
    shown.  Returns (the box to put in the form, the error label)."""
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
    return box, error
