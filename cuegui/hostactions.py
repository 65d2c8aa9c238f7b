"""Actions on hosts (admins): lock, partial lock, lock and purge, unlock, slots, tags, drain
(then stay, exit or reboot) and cancel drain, and the farm-wide host lists: admission,
lock schedules, path maps."""

from __future__ import annotations

from dataclasses import dataclass

from qtpy.QtCore import Qt

from cuegui import permissions as perm
from cuegui.actions import ActionGroup, Spec, describe
from cuegui.jobactions import each


@dataclass
class HostCtx:
    rows: list[dict]
    mode: str
    shown: bool = True      # the Hosts panel is on screen (not behind another tab)


HIDDEN = "the Hosts tab is not showing: raise it to see which hosts are selected"


def _admin(what: str, method: str | None = None, single: bool = False, test=None,
           message: str = ""):
    def rule(c: HostCtx) -> str | None:
        return perm.first(
            perm.one(c.rows, "host") if single else perm.selection(c.rows, "host"),
            perm.supported(method, what) if method else None,
            perm.needs(c.mode, perm.ADMIN, what),
            perm.having(c.rows, test, message) if test else None,
            # A shortcut never acts on a selection the user cannot see.
            None if c.shown else HIDDEN)
    return rule


def _open(r: dict) -> bool:
    return r.get("lock") != "LOCKED"


def _not_draining(r: dict) -> bool:
    return not r.get("draining") and not r.get("drain")


def _farm(what: str):
    """An admin action on the farm's host settings, whatever is selected."""
    return lambda c: perm.needs(c.mode, perm.ADMIN, what)


def _drain(then: str, text: str, tip: str, question: str) -> Spec:
    return Spec("drain" if then == "stay" else f"drain_{then}", text, "drain", tip,
                confirm=question,
                rule=_admin("Draining hosts", "drain", test=_not_draining,
                            message="the selected hosts are draining already"))


HOST_ACTIONS = [
    Spec("lock", "Lock", "lock", "Stop new frames from starting on the selected hosts; running "
         "frames finish", shortcut="Ctrl+Shift+L",
         confirm="Lock {what}? They take no new frames until unlocked; running frames "
                 "finish.",
         rule=_admin("Locking hosts", test=_open,
                     message="the selected hosts are locked already")),
    Spec("purge", "Lock and purge", "purge", "Lock the selected hosts and kill their frames",
         confirm="Lock {what} and kill every frame running there? The frames go back to "
                 "waiting.", rule=_admin("Purging hosts")),
    Spec("unlock", "Unlock", "unlock", "Let the selected hosts take frames again",
         shortcut="Ctrl+Shift+U", confirm="Unlock {what}? They take frames again.",
         rule=_admin("Unlocking hosts", test=lambda r: r.get("lock") == "LOCKED",
                     message="none of the selected hosts is locked")),
    Spec("slots", "Set slots...", "slots", "Change how many slots the selected host offers",
         rule=_admin("Setting host slots", "set_host_slots", single=True)),
    Spec("tags", "Set tags...", "tags", "Add or remove tags of the selected host",
         rule=_admin("Setting host tags", "host_tags", single=True)),
    Spec("partial", "Lock to slots...", "lock", "Leave only some slots of the selected hosts "
         "open; running frames finish", rule=_admin("Locking hosts")),
    _drain("stay", "Drain", "Let the selected hosts finish their frames and take no more",
           "Drain {what}? They finish what runs and take nothing new until the drain is "
           "cancelled."),
    _drain("exit", "Drain, then stop worker", "Let the selected hosts finish their frames, "
           "then their rqd exits",
           "Drain {what}? They finish what runs, take nothing new, then their worker "
           "(rqd) exits and must be started again."),
    _drain("reboot", "Drain, then reboot", "Let the selected hosts finish their frames, then "
           "reboot (where the worker allows it)",
           "Drain {what} and reboot them? They finish what runs, take nothing new, then the "
           "machines reboot (only where rqd is configured to allow it)."),
    Spec("undrain", "Cancel drain", "unlock", "Let the selected draining hosts take frames "
         "again", rule=_admin("Cancelling a drain", "drain",
                              test=lambda r: not _not_draining(r),
                              message="none of the selected hosts is draining")),
    Spec("checkpath", "Check path...", "why", "How a path reads on the selected host after "
         "its path maps", rule=_admin("Checking paths", "check_path", single=True)),
    Spec("admission", "Host admission...", "host", "Hosts waiting to join the farm: admit "
         "or ban them", rule=_farm("Host admission")),
    Spec("schedules", "Lock schedules...", "lock", "Weekly windows in which hosts are locked",
         rule=_farm("Lock schedules")),
    Spec("pathmaps", "Path maps...", "copy", "Path translation rules for workers of each OS",
         rule=_farm("Path maps")),
]


class HostActions:
    """The host action group of a window."""

    def __init__(self, window):
        self.window = window
        self.hosts = ActionGroup(window, HOST_ACTIONS, self._ctx, self._action)
        # Host shortcuts work only where the hosts are: with the focus in the Hosts panel.
        for action in self.hosts.values():
            if not action.shortcut().isEmpty():
                action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
                window.hosts_panel.addAction(action)
        self.dialogs: dict[str, object] = {}      # the farm-wide lists, one of each

    def open_dialog(self, key: str, make):
        """Show the farm-wide list `key` (made by `make()` the first time), asking again."""
        d = self.dialogs.get(key)
        if d is None:
            d = self.dialogs[key] = make()
        else:
            d.refresh()
        d.show()
        d.raise_()
        return d

    def _ctx(self) -> HostCtx:
        panel = self.window.hosts_panel
        shown = panel.isVisible() and not panel.visibleRegion().isEmpty()
        return HostCtx(self.window.hosts_view.selected_rows(), self.window.mode, shown)

    def _action(self, key: str) -> None:
        w = self.window
        if key in ("admission", "schedules", "pathmaps"):
            from cuegui.views import hostadmin
            make = {"admission": lambda: hostadmin.AdmissionDialog(w),
                    "schedules": lambda: hostadmin.SchedulesDialog(w),
                    "pathmaps": lambda: hostadmin.PathMapsDialog(w)}[key]
            self.open_dialog(key, make)
            return
        rows = w.hosts_view.selected_rows()
        if not rows:
            return
        if key == "checkpath":
            from cuegui.views.hostadmin import CheckPathDialog
            d = CheckPathDialog(w, rows[0]["name"])
            self.dialogs["checkpath"] = d
            d.show()
            return
        names = [r["name"] for r in rows]
        what = describe("host", rows)
        spec = self.hosts.specs[key]
        if spec.confirm and not w.confirm(w, spec.confirm.format(what=what)):
            return
        call = None
        if key == "lock":
            call = lambda c: c.lock(names)                       # noqa: E731
        elif key == "purge":
            call = lambda c: c.lock(names, purge=True)           # noqa: E731
        elif key == "unlock":
            call = lambda c: c.unlock(names)                     # noqa: E731
        elif key in ("drain", "drain_exit", "drain_reboot"):
            then = key.partition("_")[2] or "stay"
            call = lambda c: c.drain(names, then=then)           # noqa: E731
        elif key == "undrain":
            call = lambda c: c.drain(names, cancel=True)         # noqa: E731
        elif key == "partial":
            most = max(int(r.get("slots_configured") or r.get("slots") or 1) for r in rows)
            value = w.prompts.integer("Lock to slots", f"Slots left open on {what} (running "
                                      "frames finish):", max(1, most // 2), 1, 4096)
            if value is not None:
                call = lambda c: c.lock(names, slots=value)      # noqa: E731
        elif key == "slots":
            host = rows[0]
            value = w.prompts.host_slots(host)
            if value is not False:
                call = lambda c: c.set_host_slots(host["name"], value)   # noqa: E731
        elif key == "tags":
            host = rows[0]
            change = w.prompts.tags(host)
            if change is not None:
                add, remove = change
                call = each([host["name"]], lambda c, n: c.host_tags(n, add, remove))
        if call is not None:
            w.connection.run_action(f"{spec.text.rstrip('.')}: {what}", call)
