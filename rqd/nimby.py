"""Idle detection ("NIMBY"): lock a workstation while someone uses it, unlock once it idles.

A *probe* answers "how many seconds since the local user last touched this machine?" with a
number, or None when it cannot tell (no desktop session, nobody logged in).  `NimbyMonitor`
turns those answers into a lock: locked while the last activity seen is more recent than
`idle_after` seconds.  When a probe stops answering (the user logged out) the lock holds until
`idle_after` seconds after the last activity it saw, measured on an injected monotonic clock.

Probes, the first available one is used:

- `xprintidle` when it is installed and rqd has a `DISPLAY` (rqd runs in the desktop session);
- systemd-logind's `IdleHint`/`IdleSinceHint` of local sessions, through `loginctl`;
- otherwise "a local interactive user is logged in" from `psutil.users()` (idle 0 while one is,
  None otherwise): a login on a console or an X display counts, a remote (ssh) login does not.

Testing hook: when the environment variable `CUEFARM_TEST_IDLE_FILE` names a file, the probe
reads the idle seconds from that file instead (empty, "none" or a missing file: None).  It lets
tests drive idle detection without a desktop; do not set it in production.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

IdleProbe = Callable[[], "float | None"]
TEST_IDLE_FILE = "CUEFARM_TEST_IDLE_FILE"
PROBE_TIMEOUT = 2.0         # a probe runs on the heartbeat timer: it must never hang the loop


class NimbyMonitor:
    """The idle lock of one host, evaluated on demand (on the heartbeat timer)."""

    def __init__(self, probe: IdleProbe, idle_after: float,
                 clock: Callable[[], float] = time.monotonic):
        self.probe = probe
        self.idle_after = max(0.0, float(idle_after))
        self.clock = clock
        self.locked = False
        self.last_active: float | None = None       # on `clock`

    def update(self) -> bool:
        """Ask the probe, recompute the lock; return True when the lock changed."""
        now = self.clock()
        try:
            idle = self.probe()
        except Exception:  # noqa: BLE001 - a broken probe must not stop the worker
            log.exception("idle probe failed")
            idle = None
        if isinstance(idle, (int, float)) and math.isfinite(idle) and idle >= 0:
            # The probe is the authority when it answers: an idle time that grew by more than
            # the clock did (the user went away) moves the last activity back.
            self.last_active = now - float(idle)
        locked = self.last_active is not None and now - self.last_active < self.idle_after
        changed = locked != self.locked
        self.locked = locked
        return changed

    def idle_for(self) -> float | None:
        """Seconds since the last activity seen (None: never saw any)."""
        return None if self.last_active is None else self.clock() - self.last_active


# -- probes -----------------------------------------------------------------------------------

def file_probe(path: str | Path) -> IdleProbe:
    """A probe reading the idle seconds from a file (the testing hook)."""
    path = Path(path)

    def probe() -> float | None:
        try:
            text = path.read_text().strip()
        except OSError:
            return None
        if not text or text.lower() == "none":
            return None
        try:
            return float(text)
        except ValueError:
            log.warning("idle file %s holds %r, not a number of seconds", path, text[:40])
            return None
    return probe


def _run(args: list[str]) -> str | None:
    try:
        res = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT, errors="replace")
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("%s failed: %s", args[0], exc)
        return None
    return res.stdout if res.returncode == 0 else None


def xprintidle_probe() -> IdleProbe | None:
    """Idle time of the X session rqd runs in; None when there is no DISPLAY or no xprintidle."""
    exe = shutil.which("xprintidle")
    if exe is None or not os.environ.get("DISPLAY"):
        return None

    def probe() -> float | None:
        out = _run([exe])
        try:
            return int(out.strip()) / 1000.0 if out else None
        except ValueError:
            return None
    return probe


def loginctl_probe() -> IdleProbe | None:
    """Idle time of the most recently active local logind session; None without logind."""
    exe = shutil.which("loginctl")
    if exe is None or _run([exe, "list-sessions", "--no-legend"]) is None:
        return None

    def probe() -> float | None:
        listing = _run([exe, "list-sessions", "--no-legend"])
        if listing is None:
            return None
        idles = []
        for line in listing.splitlines():
            fields = line.split()
            if not fields:
                continue
            out = _run([exe, "show-session", fields[0], "-p", "Remote", "-p", "Class",
                        "-p", "IdleHint", "-p", "IdleSinceHint"])
            props = dict(l.split("=", 1) for l in (out or "").splitlines() if "=" in l)
            if props.get("Remote") != "no" or props.get("Class", "user") != "user":
                continue
            if props.get("IdleHint") != "yes":
                idles.append(0.0)
                continue
            try:
                since = int(props.get("IdleSinceHint", "0")) / 1e6     # realtime microseconds
            except ValueError:
                continue
            idles.append(max(0.0, time.time() - since) if since else 0.0)
        return min(idles) if idles else None
    return probe


def users_probe() -> IdleProbe:
    """0 while a local interactive user is logged in (console or X display), else None."""
    def probe() -> float | None:
        try:
            users = psutil.users()
        except (OSError, psutil.Error):
            return None
        local = [u for u in users if not u.host or u.host.startswith(":")
                 or u.host in ("localhost", "127.0.0.1", "::1")]
        return 0.0 if local else None
    return probe


def default_probe(environ: dict[str, str] | None = None) -> tuple[IdleProbe, str]:
    """The probe to use on this machine, and its name for the log."""
    environ = os.environ if environ is None else environ
    if environ.get(TEST_IDLE_FILE):
        return file_probe(environ[TEST_IDLE_FILE]), f"test file {environ[TEST_IDLE_FILE]}"
    for make, name in ((xprintidle_probe, "xprintidle"), (loginctl_probe, "logind")):
        probe = make()
        if probe is not None:
            return probe, name
    return users_probe(), "logged-in users"
