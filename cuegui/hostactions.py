"""Actions on hosts (admins): lock, lock and purge, unlock, slots, tags, drain."""

from __future__ import annotations

from dataclasses import dataclass

from cuegui import permissions as perm
from cuegui.actions import ActionGroup, Spec, describe
from cuegui.jobactions import each


@dataclass
class HostCtx:
    rows: list[dict]
    mode: str


def _admin(what: str, method: str | None = None, single: bool = False, test=None,
           message: str = ""):
    def rule(c: HostCtx) -> str | None:
        return perm.first(
            perm.one(c.rows, "host") if single else perm.selection(c.rows, "host"),
            perm.supported(method, what) if method else None,
            perm.needs(c.mode, perm.ADMIN, what),
            perm.having(c.rows, test, message) if test else None)
    return rule


def _open(r: dict) -> bool:
    return r.get("lock") != "LOCKED"


HOST_ACTIONS = [
    Spec("lock", "Lock", "lock", "Stop new frames from starting on the selected hosts; running "
         "frames finish", rule=_admin("Locking hosts", test=_open,
                                      message="the selected hosts are locked already")),
    Spec("purge", "Lock and purge", "purge", "Lock the selected hosts and kill their frames",
         confirm="Lock {what} and kill every frame running there? The frames go back to "
                 "waiting.", rule=_admin("Purging hosts")),
    Spec("unlock", "Unlock", "unlock", "Let the selected hosts take frames again",
         rule=_admin("Unlocking hosts", test=lambda r: r.get("lock") == "LOCKED",
                     message="none of the selected hosts is locked")),
    Spec("slots", "Set slots...", "slots", "Change how many slots the selected host offers",
         rule=_admin("Setting host slots", "set_host_slots", single=True)),
    Spec("tags", "Set tags...", "tags", "Add or remove tags of the selected host",
         rule=_admin("Setting host tags", "host_tags", single=True)),
    Spec("drain", "Drain", "drain", "Let the selected hosts finish their frames and take no more",
         confirm="Drain {what}? They finish what runs and take nothing new until unlocked.",
         rule=_admin("Draining hosts", "drain",
                     test=lambda r: not r.get("draining") and not r.get("drain"),
                     message="the selected hosts are draining already")),
]


class HostActions:
    """The host action group of a window."""

    def __init__(self, window):
        self.window = window
        self.hosts = ActionGroup(window, HOST_ACTIONS, self._ctx, self._action)

    def _ctx(self) -> HostCtx:
        return HostCtx(self.window.hosts_view.selected_rows(), self.window.mode)

    def _action(self, key: str) -> None:
        w = self.window
        rows = w.hosts_view.selected_rows()
        if not rows:
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
        elif key == "drain":
            call = lambda c: c.drain(names)                      # noqa: E731
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
