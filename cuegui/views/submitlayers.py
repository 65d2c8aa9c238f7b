"""The layers of a job in the submit dialog: what only a job of several layers needs.

Each layer is edited in the dialog's one set of layer fields; the others are kept as the raw
texts and numbers of those fields (a "form"), so switching layers loses nothing, not even a
value that does not validate yet.  Checks across layers (a name used twice, waiting for a
layer that is not there, a cycle) use `cuefarm.spec.validate_job` like the rest of the form.

A job file written here is the job dict the dialog would submit, as YAML or JSON, which is
what `cuefarm submit FILE` reads.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from qtpy.QtGui import QColor
from qtpy.QtWidgets import QComboBox, QFileDialog, QPlainTextEdit, QSpinBox

from cuefarm.spec import SpecError, validate_job
from cuegui import theme

ADVANCED = ("gpus", "os", "hosts", "omit_hosts", "requirements", "limits", "timeout",
            "timeout_no_output")
# The fields each layer has its own values of; the others belong to the job.
LAYER_FORM = ("layer_name", "command", "range", "chunk", "slots", "memory", "tags",
              "max_retries", "after", "depends_on", "env", "outputs", *ADVANCED)
LABELS = {"layer_name": "Layer", "command": "Command", "range": "Frames", "chunk": "Chunk",
          "slots": "Slots", "memory": "Memory", "tags": "Tags", "max_retries": "Retries",
          "after": "After layers", "depends_on": "Wait for jobs", "env": "Environment",
          "gpus": "GPUs", "os": "OS", "hosts": "Only hosts", "omit_hosts": "Never hosts",
          "requirements": "Requirements", "limits": "Limits", "timeout": "Timeout",
          "timeout_no_output": "Silent for", "outputs": "Outputs"}


def words(text: str) -> list[str]:
    """"a, b c" -> ["a", "b", "c"]."""
    return [w for w in re.split(r"[,\s]+", text) if w]


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


ENV_LINE = re.compile(r"\s*([^=\s]*)\s*=(.*)")
LAYER_PATH = re.compile(r"job\.layers\[(\d+)\](?:\.(\w+))?")


def parse_env(text: str) -> tuple[dict[str, str], str]:
    """"A=1\\nB = two" -> ({"A": "1", "B": "two"}, ""); a line that is not NAME=value gives
    ({...}, what is wrong).  Names are checked by validate_job."""
    env: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = ENV_LINE.fullmatch(line)
        if not m or not m.group(1):
            return env, f"line {n}: write NAME=value, one per line"
        name = m.group(1)
        if name in env:
            return env, f"line {n}: {name} is set twice"
        env[name] = m.group(2).strip()
    return env, ""


def env_text(env: dict[str, str]) -> str:
    return "\n".join(f"{k}={v}" for k, v in env.items())


def layer_names(text: str) -> list[str]:
    """"render, comp" -> ["render", "comp"] (the layers of this job a layer waits for)."""
    return [w for w in re.split(r"[,\s]+", text) if w]


def unique_name(taken: list[str], stem: str = "layer") -> str:
    """A layer name not in `taken`: layer2, layer3, ..."""
    n = len(taken) + 1
    while f"{stem}{n}" in taken:
        n += 1
    return f"{stem}{n}"


def cross_layer_errors(names: list[str], after: list[list[str]]) -> dict[int, dict[str, str]]:
    """Errors that need every layer: a name used twice, waiting for a layer not in the job or
    for itself, a cycle.  {layer index: {"layer_name" or "after": message}}."""
    skeleton = {"name": "x", "layers": [
        {"name": name or f"unnamed{i}", "command": "true", "range": "1",
         **({"depends_on": deps} if deps else {})}
        for i, (name, deps) in enumerate(zip(names, after))]}
    found: dict[int, dict[str, str]] = {}
    for _ in range(4 * len(names) + 1):
        try:
            validate_job(skeleton, expand=False)
            break
        except SpecError as exc:
            m = LAYER_PATH.fullmatch(exc.field.split(".depends_on")[0]
                                     if ".depends_on" in exc.field else exc.field)
            if exc.message.startswith("dependency cycle"):
                # Every layer on the cycle says so; the cycle is broken to look further.
                cycle = exc.message.split(": ", 1)[1].split(" -> ")
                for name in set(cycle):
                    i = names.index(name) if name in names else 0
                    found.setdefault(i, {})["after"] = exc.message
                layer = skeleton["layers"][names.index(cycle[0])]
                layer.pop("depends_on", None)
                continue
            if m is None:
                break
            i = int(m.group(1))
            layer = skeleton["layers"][i]
            if ".depends_on" in exc.field:
                found.setdefault(i, {})["after"] = exc.message
                layer.pop("depends_on", None)
            elif m.group(2) == "name":
                found.setdefault(i, {})["layer_name"] = exc.message
                layer["name"] = f"unnamed{i}_{len(found)}"
            else:
                break
    return found


def write_job_file(job: dict[str, Any], path: str | Path) -> Path:
    """Write `job` as `cuefarm submit` reads it: JSON for a .json name, YAML otherwise."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(job, indent=2) + "\n"
    else:
        import yaml
        text = yaml.safe_dump(job, sort_keys=False, default_flow_style=False,
                              allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


class LayerTabs:
    """The submit dialog's layers: one form of raw field values per layer, the one shown
    read from the fields; adding, removing and switching layers; errors of the layers not
    shown; writing the job file.  Mixed into SubmitDialog, whose fields it reads."""

    def _form(self) -> dict[str, Any]:
        """The layer fields' values, as held (for switching layers)."""
        return {k: self._raw(k) for k in LAYER_FORM}

    def _load_form(self, form: dict[str, Any]) -> None:
        self._loading = True
        try:
            for key, value in form.items():
                w = self.fields[key]
                w.blockSignals(True)
                set_field(w, value)
                w.blockSignals(False)
        finally:
            self._loading = False

    def _forms(self) -> list[dict[str, Any]]:
        """Every layer's form, the one shown as it is now."""
        forms = list(self.forms)
        forms[self.current] = self._form()
        return forms

    @staticmethod
    def layer_from(form: dict[str, Any]) -> dict[str, Any]:
        """The layer dict a layer's form describes (validated or not)."""
        text = {k: str(v).strip() for k, v in form.items()}
        slots: Any = text["slots"]
        if slots.isdigit():
            slots = int(slots)
        layer: dict[str, Any] = {"name": text["layer_name"], "command": text["command"],
                                 "range": text["range"], "chunk": int(form["chunk"]),
                                 "slots": slots, "memory": int(form["memory"]),
                                 "max_retries": int(form["max_retries"])}
        tags = [t.strip() for t in text["tags"].split(",") if t.strip()]
        if tags:
            layer["tags"] = tags
        deps = layer_names(text["after"]) + parse_depends(text["depends_on"])
        if deps:
            layer["depends_on"] = deps
        env, _ = parse_env(str(form["env"]))
        if env:
            layer["env"] = env
        outputs = [p.strip() for p in str(form["outputs"]).split(",") if p.strip()]
        if outputs:
            layer["outputs"] = outputs
        for key in ("gpus", "timeout", "timeout_no_output"):
            if form[key]:
                layer[key] = int(form[key])
        for key in ("os", "requirements"):
            if text[key]:
                layer[key] = text[key]
        for key in ("hosts", "omit_hosts", "limits"):
            if words(text[key]):
                layer[key] = words(text[key])
        return layer

    def layer_count(self) -> int:
        return len(self.forms)

    def add_layer(self, name: str | None = None, **values: Any) -> int:
        """A new layer like the one shown, named `name` (else layer2, layer3...), with
        `values` in its fields; it is shown.  Returns its index."""
        forms = self._forms()
        taken = [str(f["layer_name"]).strip() for f in forms]
        form = dict(forms[self.current])
        # Its own name, waiting for nothing yet, writing no images of its own yet.
        form.update(layer_name=name or unique_name(taken), after="", outputs="")
        self.forms = forms + [form]
        index = len(self.forms) - 1
        self.layer_tabs.addTab(form["layer_name"])
        self.select_layer(index)
        if values:
            self.set_values(**values)
        else:
            self.validate()
        return index

    def remove_layer(self, index: int | None = None) -> bool:
        """Remove a layer (the one shown); the last one cannot go.  Other layers stop
        waiting for it."""
        index = self.current if index is None else index
        if len(self.forms) <= 1 or not 0 <= index < len(self.forms):
            self.status.setText("A job needs at least one layer")
            return False
        forms = self._forms()
        gone = str(forms.pop(index)["layer_name"]).strip()
        for form in forms:
            after = [n for n in layer_names(str(form["after"])) if n != gone]
            form["after"] = ", ".join(after)
        self.forms = forms
        self.current = min(self.current if index > self.current else max(self.current - 1, 0),
                           len(forms) - 1)
        self.layer_tabs.blockSignals(True)
        self.layer_tabs.removeTab(index)
        self.layer_tabs.setCurrentIndex(self.current)
        self.layer_tabs.blockSignals(False)
        self._load_form(self.forms[self.current])
        self._update_layer_buttons()
        self.validate()
        return True

    def select_layer(self, index: int) -> None:
        """Show the layer at `index` in the layer fields."""
        if self.layer_tabs.currentIndex() != index:
            self.layer_tabs.setCurrentIndex(index)
        else:
            self._layer_switched(index)

    def _layer_switched(self, index: int) -> None:
        if index < 0 or index >= len(self.forms):
            return
        if index != self.current:
            self.forms[self.current] = self._form()
            self.current = index
            self._load_form(self.forms[index])
        self._update_layer_buttons()
        self.validate()

    def _update_layer_buttons(self) -> None:
        self.remove_layer_button.setEnabled(len(self.forms) > 1)

    def _show_elsewhere(self, names: list[str]) -> None:
        """Mark the tabs of other layers with errors, and say what they are."""
        bad = QColor(theme.chrome("ERROR_FIELD"))
        lines = []
        for i in range(self.layer_tabs.count()):
            found = self.elsewhere.get(i)
            self.layer_tabs.setTabTextColor(i, bad if found else QColor())
            tip = "\n".join(f"{LABELS.get(k, k)}: {m}" for k, m in (found or {}).items())
            self.layer_tabs.setTabToolTip(i, tip)
            if found:
                key, message = next(iter(found.items()))
                lines.append(f"Layer {names[i] or i + 1}: {LABELS.get(key, key)}: {message}")
        if lines:
            self.status.setText("\n".join(lines))

    def _show_first_error(self) -> None:
        """Nothing wrong in the layer shown but in another: show that one."""
        if self.elsewhere and not any(self.error_at(k) for k in self.errors):
            self.select_layer(min(self.elsewhere))
            self.validate()

    def save_job_file(self, path: str | None = None) -> str | None:
        """Write the job as a file `cuefarm submit` reads (asks where when `path` is None);
        the path written, or None (invalid, cancelled, or not writable: the status says)."""
        if not self.validate(every_field=True):
            self._show_first_error()
            self.status.setText("Not saved: fix the errors shown first")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(
                self, "Save job file", f"{self._text('name') or 'job'}.yaml",
                "Job files (*.yaml *.yml *.json)")
            if not path:
                return None
        try:
            written = write_job_file(self.job(), path)
        except OSError as exc:
            self.status.setText(f"Not saved: {exc.strerror or exc}: {path}")
            return None
        self.status.setText(f"Saved {written}: submit it with cuefarm submit {written}")
        return str(written)


def set_field(w: Any, value: Any) -> None:
    """Show `value` in a form field, whatever kind of field it is."""
    if isinstance(w, QSpinBox):
        w.setValue(int(value))
    elif isinstance(w, QComboBox):
        w.setEditText(str(value))
    elif isinstance(w, QPlainTextEdit):
        w.setPlainText(str(value))
    else:
        w.setText(str(value))
