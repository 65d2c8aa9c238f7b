"""Running a frame as the job's user when rqd runs as root.

rqd never creates accounts: the user must exist on this host (local files, LDAP, ... whatever
the name service knows) with a uid of at least `min_uid`, so that system accounts (root, daemon,
...) can never be borrowed by a job.  When rqd is not root, frames run as rqd's own user.
"""

from __future__ import annotations

import fnmatch
import os
import time
from dataclasses import dataclass, field


class RunAsError(Exception):
    """The job's user cannot be used on this host; the message is the refusal reason."""


@dataclass(frozen=True)
class RunAs:
    """Who a frame runs as."""

    name: str
    uid: int
    gid: int
    home: str
    groups: list[int] = field(default_factory=list)

    def popen_kwargs(self) -> dict:
        """What `subprocess.Popen` needs to drop to this user."""
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def is_current(self) -> bool:
        """True when rqd already is this user, with exactly these groups: a child started
        without switching has this identity (and the start is much cheaper: Python can only
        vfork when it does not switch users, and fork has the daemon pay for copying itself)."""
        getresuid = getattr(os, "getresuid", None)
        if getresuid is None:
            return False
        if set(getresuid()) != {self.uid} or set(os.getresgid()) != {self.gid}:
            return False
        return set(os.getgroups()) | {self.gid} == set(self.groups) | {self.gid}

    def env(self) -> dict[str, str]:
        """The variables a login as this user would have."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


def can_switch_user() -> bool:
    """True when rqd may run frames as other users: it runs as root on a POSIX system."""
    geteuid = getattr(os, "geteuid", None)
    return geteuid is not None and geteuid() == 0


_resolved: dict[tuple, tuple[float, "RunAs"]] = {}
RESOLVE_TTL = 30.0      # seconds an account looked up is trusted (accounts change rarely)


def resolve(name: str, min_uid: int, deny: tuple[str, ...] | list[str] = ()) -> RunAs:
    """The account `name` on this host; raise RunAsError when it is missing, too privileged
    or on the `deny` list (names or patterns).  A found account is remembered for RESOLVE_TTL
    seconds: every frame of a job runs as the same user, and the lookup (passwd, group list)
    costs more than starting the frame."""
    now = time.monotonic()
    key = (name, min_uid, tuple(deny))      # the deny list is part of the answer
    hit = _resolved.get(key)
    if hit is not None and now - hit[0] < RESOLVE_TTL:
        return hit[1]
    denied = next((pat for pat in deny if fnmatch.fnmatchcase(name, pat)), None)
    if denied is not None:
        raise RunAsError(f"user {name!r} is a service account frames never run as on this "
                         f"host (rqd's deny_users: {denied!r})")
    run_as = _lookup(name, min_uid)
    if len(_resolved) > 1000:
        _resolved.clear()
    _resolved[key] = (now, run_as)
    return run_as


def _lookup(name: str, min_uid: int) -> RunAs:
    try:
        import pwd
    except ImportError:             # Windows: no switching users here
        raise RunAsError("running as another user is not supported on this host") from None
    if not name or len(name) > 256:
        raise RunAsError(f"user {name[:40]!r} is not a valid user name")
    try:
        pw = pwd.getpwnam(name)
    except (KeyError, ValueError):
        raise RunAsError(f"user {name!r} does not exist on this host") from None
    if pw.pw_uid < min_uid:
        raise RunAsError(f"user {name!r} has uid {pw.pw_uid}, below the minimum uid {min_uid} "
                         f"for running frames (submit as a normal user, or start rqd with "
                         f"--min-uid {pw.pw_uid} on a farm that may run frames as {name!r})")
    try:
        groups = os.getgrouplist(name, pw.pw_gid)
    except OSError:
        groups = [pw.pw_gid]
    return RunAs(name=name, uid=pw.pw_uid, gid=pw.pw_gid, home=pw.pw_dir or "/",
                 groups=sorted(set(groups) | {pw.pw_gid}))


def starter_refused(min_uid: int) -> str:
    """When rqd runs as root: why jobs from the user who started it would be refused here
    ("" when they would run, or rqd does not switch users)."""
    if not can_switch_user():
        return ""
    name = os.environ.get("SUDO_USER") or ""
    if not name:
        try:
            import pwd
            name = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError):
            return ""
    try:
        resolve(name, min_uid)
    except RunAsError as exc:
        return str(exc)
    return ""
