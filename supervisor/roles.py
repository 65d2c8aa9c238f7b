"""Roles: who is an artist, a wrangler or an admin on this supervisor, from its configuration.

The OS user running the supervisor is always an admin; with neither `admins` nor `wranglers`
set, the farm is *open* and everyone is an admin (the one-laptop `cuefarm up` case).
"""

from __future__ import annotations

import getpass
import ipaddress
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

log = logging.getLogger(__name__)

ARTIST, WRANGLER, ADMIN = "artist", "wrangler", "admin"
RANK = {ARTIST: 0, WRANGLER: 1, ADMIN: 2}


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"


@dataclass(frozen=True)
class Policy:
    """Who is what on this supervisor, from its configuration."""

    admins: frozenset[str]
    wranglers: frozenset[str]
    owner: str                      # the OS user running the supervisor: always admin
    # With keys: the role each user's keys were issued with (the highest, if several).  A
    # farm with keys is never open: whoever has no role has the one their key gives.
    granted: Mapping[str, str] = field(default_factory=dict)
    keyed: bool = False

    @property
    def open(self) -> bool:
        """No roles configured (and no keys): everyone is an admin."""
        return not self.admins and not self.wranglers and not self.keyed

    def role(self, user: str) -> str:
        if self.open or user == self.owner or user in self.admins:
            return ADMIN
        configured = WRANGLER if user in self.wranglers else ARTIST
        key_role = self.granted.get(user, ARTIST)
        return key_role if RANK.get(key_role, 0) > RANK[configured] else configured


def policy_from_config(cfg: Any, owner: str | None = None) -> Policy:
    """The policy of a SupervisorConfig; warns when an open farm listens beyond this machine."""
    pol = Policy(frozenset(cfg.admins), frozenset(cfg.wranglers), owner or _os_user())
    if pol.open and not loopback(cfg.bind):
        log.warning("no admins or wranglers configured and listening on %s: everyone who can "
                    "reach this supervisor is an admin (set [supervisor] admins = [...])",
                    cfg.bind)
    return pol


def loopback(bind: str) -> bool:
    if bind in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(bind.strip("[]")).is_loopback
    except ValueError:
        return False   # "*", an interface or host name: reachable from elsewhere
