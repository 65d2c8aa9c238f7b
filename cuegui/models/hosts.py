"""The hosts (workers) table."""

from __future__ import annotations

from qtpy.QtGui import QColor

from cuegui import format as fmt
from cuegui import theme
from cuegui.models.table import CENTER, RIGHT, Column, RowTableModel, field


def slots_text(host: dict) -> str:
    """`used/total` as Qube shows it: a locked host finishing a 16-slot frame reads 16/0."""
    return f"{host.get('slots_used') or 0}/{host.get('slots_total') or 0}"


def memory_used_mb(host: dict) -> int | None:
    total, free = host.get("memory_mb"), host.get("memory_free_mb")
    if total is None:
        return None
    return max(0, total - (free or 0)) if free is not None else None


def memory_text(host: dict) -> str:
    total = host.get("memory_mb")
    if total is None:
        return ""
    used = memory_used_mb(host)
    if used is None:
        return f"{fmt.gigabytes(total)} GB"
    return f"{fmt.gigabytes(used)} / {fmt.gigabytes(total)} GB"


def _load(host: dict) -> str:
    load = host.get("load")
    return "" if load is None else f"{load:.2f}"


def _slots_tip(host: dict) -> str:
    return (f"{host.get('slots_used') or 0} slots in use of {host.get('slots_total') or 0} "
            f"offered ({host.get('slots_configured') or 0} configured, "
            f"{host.get('cores') or 0} cores)")


def lock_text(host: dict) -> str:
    """LOCKED with its kind (manual, schedule, nimby), PARTIAL with the slots left open,
    DRAINING, or OPEN."""
    if host.get("draining") or host.get("drain"):
        return "DRAINING"
    lock = host.get("lock") or ""
    kind = host.get("lock_kind") or ""
    if lock == "LOCKED" and host.get("lock_slots"):
        # A partial lock: some slots stay open, so it is not a locked host.
        return f"PARTIAL ({host['lock_slots']} open)"
    if lock == "LOCKED" and kind:
        return f"LOCKED ({kind})"
    if lock != "LOCKED" and kind == "nimby":
        return "NIMBY"
    return lock


def lock_tip(host: dict) -> str:
    parts = [lock_text(host)]
    if host.get("lock_slots"):
        parts.append(f"{host['lock_slots']} slots left open")
    if host.get("drain"):
        parts.append(f"then {host['drain']}")
    return ", ".join(parts)


# The supervisor's lock kinds, as people say them.
LOCK_KINDS = {"manual": "manual", "schedule": "scheduled", "nimby": "idle", "banned": "banned"}


def lock_kind(host: dict) -> str:
    """Why the host takes no (or fewer) frames: manual, scheduled, idle (NIMBY: a local user
    is active), drain, or '' for an open host."""
    if host.get("draining") or host.get("drain"):
        return "drain"
    kind = host.get("lock_kind") or ""
    if host.get("lock") == "LOCKED" or kind == "nimby":
        return LOCK_KINDS.get(kind, kind or "manual")
    return ""


def drain_text(host: dict) -> str:
    then = host.get("drain")
    if not then and not host.get("draining"):
        return ""
    return "draining" if then in (None, "", "stay") else f"draining, then {then}"


def gpu_count(host: dict) -> int | None:
    gpus = host.get("gpus")
    if gpus is None:
        return None
    return len(gpus) if isinstance(gpus, (list, tuple)) else int(gpus)


def _cpu(host: dict) -> str:
    cpu = host.get("cpu_percent")
    return "" if cpu is None else f"{cpu:.0f}%"


def _disk(host: dict) -> str:
    free = host.get("disk_free_mb")
    return "" if free is None else f"{fmt.gigabytes(free)} GB"


class HostsModel(RowTableModel):
    """Hosts by id; a DOWN host's figures are its last report, so the row is dimmed."""

    def row_foreground(self, row: dict) -> QColor | None:
        return theme.dim_text() if row.get("state") == "DOWN" else None

    columns = [
        field("name", "Name", width=150, filterable=True,
              tooltip=lambda r: r.get("hostname") or ""),
        Column("comments", "Notes", lambda r: r.get("comments") or 0, width=48,
               text=lambda r: str(r.get("comments") or "") if r.get("comments") else "",
               tooltip=lambda r: (f"{r['comments']} comment{'' if r['comments'] == 1 else 's'}"
                                  if r.get("comments") else ""),
               header_tip="Comments people left (read and write them in the Comments tab)"),
        field("state", "State", width=70, filterable=True),
        Column("lock", "Lock", lambda r: r.get("lock"), text=lock_text, width=124,
               filterable=True, tooltip=lock_tip),
        Column("slots", "Slots", lambda r: (r.get("slots_used") or 0, r.get("slots_total") or 0),
               text=slots_text, width=64, align=CENTER, tooltip=_slots_tip,
               header_tip="Slots used / offered"),
        Column("memory", "Memory", memory_used_mb, text=memory_text, width=120, align=RIGHT,
               header_tip="Memory used / installed"),
        field("load", "Load", width=56, align=RIGHT, text=_load),
        Column("lock_kind", "Lock kind", lock_kind, width=76, filterable=True,
               header_tip="manual, scheduled, idle (a local user is active) or drain"),
        Column("drain", "Drain", drain_text, width=170, filterable=True,
               header_tip="Draining: finishing its frames, taking none; then what"),
        field("cpu_percent", "CPU", width=52, align=RIGHT, text=_cpu,
              header_tip="CPU in use on the host, all processes"),
        field("disk_free_mb", "Disk free", width=76, align=RIGHT, text=_disk,
              header_tip="Free disk where the worker writes logs"),
        Column("gpus", "GPUs", gpu_count, width=48, align=RIGHT,
               text=lambda r: "" if gpu_count(r) is None else str(gpu_count(r))),
        field("os", "OS", width=80, filterable=True),
        Column("tags", "Tags", lambda r: ", ".join(r.get("tags") or []), width=120,
               filterable=True),
        field("running", "Running", width=62, align=RIGHT, header_tip="Frames running"),
        field("last_seen", "Last report", width=92, align=RIGHT,
              text=lambda r: fmt.clock(r.get("last_seen")),
              tooltip=lambda r: fmt.full_time(r.get("last_seen"))),
    ]
