"""The layers of one job (kept for the frame actions that need a layer's command)."""

from __future__ import annotations

import shlex
from typing import Any

from cuefarm.frames import expand_command

from cuegui.models.jobs import done_fraction, progress_text, progress_tip
from cuegui.models.table import CENTER, RIGHT, Column, RowTableModel, field


def command_text(layer: dict) -> str:
    """The layer's command as one shell line."""
    cmd = layer.get("command")
    if isinstance(cmd, list):
        return shlex.join(cmd)
    return str(cmd or "")


def frame_command(layer: dict, frame: dict) -> str:
    """The command line a frame runs: the layer's command with the frame tokens filled in."""
    cmd = layer.get("command") or ""
    start = frame.get("frame_start", frame.get("number"))
    end = frame.get("frame_end", start)
    if start is None:
        return command_text(layer)
    return command_text({"command": expand_command(cmd, int(start), int(end))})


def dependency_text(layer: dict) -> str:
    """What a layer waits for: layer names, `name (per frame)`, `job 12` or `job 12/comp`."""
    out = []
    for d in layer.get("depends_on") or []:
        if isinstance(d, str):
            out.append(d)
        elif isinstance(d, dict):
            if d.get("job") is not None:
                out.append(f"job {d['job']}" + (f"/{d['layer']}" if d.get("layer") else ""))
            else:
                out.append(f"{d.get('layer')}" + (" (per frame)" if d.get("per_frame") else ""))
    return ", ".join(out)


def _names(key: str):
    return lambda r: ", ".join(map(str, r.get(key) or []))


def _slots_sort(layer: dict) -> int:
    value = layer.get("slots")
    if isinstance(value, int):
        return value
    digits = "".join(ch for ch in str(value or "") if ch.isdigit())
    return int(digits) if digits else 10**6     # "all" sorts last


class LayersModel(RowTableModel):
    columns = [
        field("name", "Layer", width=140, filterable=True),
        Column("progress", "Progress", done_fraction, width=130, align=CENTER,
               text=progress_text, tooltip=progress_tip),
        field("range", "Range", width=90),
        field("chunk", "Chunk", width=50, align=RIGHT),
        Column("slots", "Slots", _slots_sort, text=lambda r: str(r.get("slots") or ""),
               width=50, align=RIGHT),
        field("memory", "Memory", width=70, align=RIGHT,
              text=lambda r: f"{r['memory']:,} MB" if r.get("memory") else "",
              header_tip="Memory reserved per frame"),
        field("frames_total", "Frames", width=60, align=RIGHT),
        field("succeeded", "Done", width=56, align=RIGHT),
        field("running", "Run", width=48, align=RIGHT),
        field("dead", "Dead", width=50, align=RIGHT),
        Column("tags", "Tags", _names("tags"), width=100, filterable=True,
               header_tip="Hosts need these tags"),
        Column("limits", "Limits", _names("limits"), width=90,
               header_tip="Limits (e.g. licences) each frame holds"),
        Column("depends_on", "Depends on", dependency_text, width=140,
               tooltip=dependency_text),
        field("command", "Command", width=300, text=command_text, tooltip=command_text),
    ]

    def __init__(self, parent=None):
        super().__init__(parent)
        self.job_id: Any = None

    def show_job(self, job_id: Any, layers: list[dict]) -> None:
        if job_id == self.job_id:
            self.replace_all(layers)
        else:
            self.job_id = job_id
            self.reset(layers)

    def apply_job(self, job_id: Any, layers: list[dict]) -> None:
        if job_id == self.job_id and job_id is not None:
            self.apply([r for r in layers if r.get("job_id", job_id) == job_id])

    def by_name(self, name: str) -> dict | None:
        for row in self._all.values():
            if row.get("name") == name:
                return row
        return None
