"""Draining a worker: accept no new frames, let the running ones finish, then exit, reboot or stay.

`DrainState` is the state machine; the daemon asks it whether to refuse launches (`active`),
tells it about Drain messages (`handle`) and, whenever nothing runs, asks what to do next
(`settle`).  A reboot only happens when the host's configuration allows it; otherwise the drain
ends like "exit".
"""

from __future__ import annotations

import logging
import subprocess

from cuefarm import protocol as p

log = logging.getLogger(__name__)

ACTIONS = ("exit", "reboot", "stay")
REBOOT_TIMEOUT = 120.0


class DrainState:
    """Whether this worker drains, and what it does once drained."""

    def __init__(self, reboot_allowed: bool = False):
        self.reboot_allowed = reboot_allowed
        self.then: str | None = None        # "exit" | "reboot" | "stay" while draining
        self.drained = False                # draining, and nothing runs any more
        self.exit_action: str | None = None     # set once the drain ends the process

    @property
    def active(self) -> bool:
        """True while draining (launches are refused, heartbeats say draining)."""
        return self.then is not None

    def handle(self, msg: p.Drain, stopping: bool) -> None:
        """Apply a Drain message; `stopping` says the process already exits."""
        if msg.cancel:
            if self.then is None:
                log.info("drain cancelled: there was none")
            elif stopping:
                log.warning("drain cancelled too late: rqd is already exiting")
            else:
                log.info("drain cancelled: accepting frames again")
                self.then, self.drained = None, False
            return
        if msg.then not in ACTIONS:
            log.warning("drain with an unknown follow-up %r ignored (expected one of %s)",
                        msg.then[:40], ", ".join(ACTIONS))
            return
        if stopping:
            log.info("drain asked while already stopping: nothing to do")
            return
        self.then, self.drained = msg.then, False
        log.info("draining: no new frames, then %s", msg.then)

    def settle(self) -> str | None:
        """Call when nothing runs: "exit" or "reboot" when the process should end now, else None."""
        if self.then is None or self.exit_action is not None:
            return None
        if self.then == "stay":
            if not self.drained:
                log.info("drained: nothing runs; staying up and refusing frames")
            self.drained = True
            return None
        self.drained = True
        action = self.then
        if action == "reboot" and not self.reboot_allowed:
            log.warning("the drain asks for a reboot but reboot_allowed is off in the config: "
                        "exiting instead")
            action = "exit"
        self.exit_action = action
        return action


def reboot(command: list[str]) -> int:
    """Run the reboot command; the exit code rqd should end with (1 when it failed)."""
    command = [str(w) for w in command]
    log.warning("drained: rebooting with %s", command)
    try:
        res = subprocess.run(command, stdin=subprocess.DEVNULL, timeout=REBOOT_TIMEOUT)
    except (OSError, subprocess.SubprocessError) as exc:
        log.error("the reboot command %s failed: %s", command, exc)
        return 1
    if res.returncode != 0:
        log.error("the reboot command %s exited with %d", command, res.returncode)
        return 1
    return 0
