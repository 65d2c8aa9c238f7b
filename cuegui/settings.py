"""What the GUI remembers between runs (QSettings): layout, columns, sort, filters, theme, mode.

Everything is written when the window closes and read when it opens; a value that cannot be
read is ignored, so a settings file from another version never stops the GUI from starting.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from qtpy.QtCore import QSettings

log = logging.getLogger(__name__)

VERSION = 1     # bump when the dock layout changes shape: old layouts are then ignored


def default_settings() -> QSettings:
    """The user's settings file (per user, per machine)."""
    return QSettings("CueFarm", "cuegui")


def _json(settings: QSettings, key: str) -> Any:
    raw = settings.value(key)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        log.info("ignoring unreadable setting %s", key)
        return None


def theme_name(settings: QSettings) -> str:
    return str(settings.value("theme", "dark"))


def mode(settings: QSettings) -> str | None:
    value = settings.value("mode")
    return str(value) if value else None


def save(window) -> None:
    """Remember the window's layout, tables, filters, theme and mode."""
    s = window.settings
    s.setValue("version", VERSION)
    s.setValue("geometry", window.saveGeometry())
    s.setValue("state", window.saveState(VERSION))
    s.setValue("theme", window.theme_name)
    s.setValue("mode", window.mode)
    for name, view in window.tables().items():
        s.setValue(f"tables/{name}", view.save_state())
    for name, splitter in window.splitters().items():
        s.setValue(f"splitters/{name}", splitter.saveState())
    s.setValue("filters/jobs", json.dumps(window.jobs_panel.filter_state()))
    s.setValue("filters/frames", json.dumps(sorted(window.frames_panel.checked_states())))
    s.setValue("filters/hosts", window.hosts_panel.filter.text())
    s.setValue("log/follow", window.log_panel.follow.isChecked())
    s.sync()


def restore(window) -> bool:
    """Undo save(); False when there was nothing (or nothing usable) to restore."""
    s = window.settings
    try:
        version = int(s.value("version", 0))
    except (TypeError, ValueError):
        version = 0
    if version != VERSION:
        return False
    geometry = s.value("geometry")
    if geometry is not None:
        window.restoreGeometry(geometry)
    state = s.value("state")
    if state is not None:
        window.restoreState(state, VERSION)
    for name, view in window.tables().items():
        view.restore_state(s.value(f"tables/{name}"))
    for name, splitter in window.splitters().items():
        value = s.value(f"splitters/{name}")
        if value is not None:
            splitter.restoreState(value)
    jobs = _json(s, "filters/jobs")
    if isinstance(jobs, dict):
        window.jobs_panel.set_filter_state(jobs)
    frames = _json(s, "filters/frames")
    if isinstance(frames, list):
        window.frames_panel.set_checked_states(frames)
    hosts = s.value("filters/hosts")
    if isinstance(hosts, str):
        window.hosts_panel.filter.setText(hosts)
    follow = s.value("log/follow")
    if follow is not None:
        window.log_panel.follow.setChecked(str(follow).lower() in ("true", "1"))
    return True
