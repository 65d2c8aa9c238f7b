"""Desktop notices when one of your jobs finishes or gets dead frames (not when killed).

Worked out from the change events the window already receives (no polling): a job of the
window's user that becomes FINISHED, or whose dead frames go from none to some, gives one
notice, through the system tray when the desktop has one, else in the status bar.  The View
menu turns them off (remembered between runs).
"""

from __future__ import annotations

from typing import Any, Iterable

from qtpy.QtWidgets import QSystemTrayIcon

from cuegui import theme

SETTING = "notices/jobs"
MAX_KEPT = 100


def _dead(job: dict[str, Any]) -> int:
    return int(job.get("dead") or 0)


def notices_for(old: dict[str, Any] | None, new: dict[str, Any], user: str) -> list[str]:
    """What to tell `user` about job `new` that was `old` (None: a job new since the window
    loaded, which may come already finished; jobs loaded with the window are never told)."""
    old = old or {}
    if new.get("user", old.get("user")) != user:
        return []
    merged = {**old, **new}
    name = f"{merged.get('name')} ({merged.get('id')})"
    out = []
    if merged.get("killed"):
        return out              # someone killed it: they know (and said so in the log)
    if merged.get("state") == "FINISHED" and old.get("state") != "FINISHED":
        done, dead = int(merged.get("succeeded") or 0), _dead(merged)
        out.append(f"Job {name} finished: {done} frame(s) succeeded"
                   + (f", {dead} dead" if dead else ""))
    elif _dead(merged) and not _dead(old):
        out.append(f"Job {name} has dead frames ({_dead(merged)})")
    return out


class JobNotices:
    """Owned by the window: call `changes(old rows, new rows)` with each batch of job rows."""

    def __init__(self, window: Any, settings: Any = None):
        self.window = window
        self.settings = settings
        self.enabled = True
        if settings is not None:
            value = settings.value(SETTING, True)
            self.enabled = value not in (False, "false", "0", 0)
        self.shown: list[str] = []          # the latest notices, newest last
        self.tray: QSystemTrayIcon | None = None

    def set_enabled(self, on: bool) -> None:
        self.enabled = on
        if self.settings is not None:
            self.settings.setValue(SETTING, on)

    def changes(self, before: dict[Any, dict], rows: Iterable[dict]) -> None:
        if not self.enabled:
            return
        for row in rows:
            for text in notices_for(before.get(row.get("id")), row, self.window.user):
                self.show(text)

    def show(self, text: str) -> None:
        self.shown = (self.shown + [text])[-MAX_KEPT:]
        if QSystemTrayIcon.isSystemTrayAvailable() and QSystemTrayIcon.supportsMessages():
            if self.tray is None:
                self.tray = QSystemTrayIcon(theme.icon("cuegui"), self.window)
                self.tray.setToolTip("CueFarm")
                self.tray.show()
            self.tray.showMessage("CueFarm", text, QSystemTrayIcon.MessageIcon.Information,
                                  8000)
        self.window.show_message(text)
