"""A submitted job read back as a job file (the dict `cuefarm submit` takes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from cuefarm import spec
from supervisor.store import notifications
from supervisor.store.models import Job, Layer, Project

_LAYER_KEYS = ("command", "range", "chunk", "memory", "gpus", "max_retries", "env", "cwd",
               "depends_on", "tags", "os", "hosts", "omit_hosts", "requirements", "limits",
               "timeout", "timeout_no_output", "outputs")


def _given(key: spec.Key, value: Any) -> bool:
    """Whether a value is worth writing: not the key's default."""
    return value is not None and value != key.default and value not in ([], {})


def job_file(conn: Connection, job_id: int) -> dict[str, Any] | None:
    """Job `job_id` as a job file dict (its current settings; defaults left out), or None."""
    row = conn.execute(
        select(Job.name, Project.name.label("project"), Job.priority, Job.min_slots,
               Job.max_slots).join(Project, Project.id == Job.project_id)
        .where(Job.id == job_id)).mappings().first()
    if row is None:
        return None
    out: dict[str, Any] = {"name": row["name"]}
    for key in ("project", "priority", "min_slots", "max_slots"):
        if _given(spec.JOB_FIELDS[key], row[key]):
            out[key] = row[key]
    layers = []
    columns = [getattr(Layer, k) for k in ("name", "slots", "slots_mode", *_LAYER_KEYS)]
    for layer in conn.execute(select(*columns).where(Layer.job_id == job_id)
                              .order_by(Layer.idx)).mappings():
        d: dict[str, Any] = {"name": layer["name"]}
        for key in _LAYER_KEYS:
            value = layer[key]
            if key in ("range", "command") or _given(spec.LAYER_FIELDS[key], value):
                d[key] = value
        mode, n = layer["slots_mode"], layer["slots"]
        slots = {"fixed": n, "plus": f"{n}+", "all": "all"}[mode]
        if slots != 1:
            d["slots"] = slots
        layers.append(d)
    out["layers"] = layers
    rules = notifications.rules_of(conn, [job_id]).get(job_id)
    if rules:
        out["notify"] = rules
    return out
