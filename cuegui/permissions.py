"""Who may do what, as the GUI shows it: an action a user may not take is disabled and says why.

The supervisor is the one that enforces; these rules only keep people from trying what it
would refuse, and explain.  The GUI runs in one of three modes (View > Mode):

- artist: acts on their own jobs and frames;
- wrangler: acts on every job, and also reprioritises, sets slots, moves jobs between
  projects and satisfies or drops dependencies;
- admin: all of that, plus host management.

The supervisor gives each user a role (`whoami`); the GUI may be put in that mode or a lower
one, never a higher one (`clamp`, `mode_ceiling`).

Every rule is a function returning None (allowed) or the reason, so tests read as a table.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from cuefarm import Client, CueFarmError

ARTIST, WRANGLER, ADMIN = "artist", "wrangler", "admin"
MODES = (ARTIST, WRANGLER, ADMIN)
RANK = {ARTIST: 0, WRANGLER: 1, ADMIN: 2}


def needs(mode: str, least: str, what: str) -> str | None:
    """None when `mode` is at least `least`; else why not."""
    if RANK.get(mode, 0) >= RANK[least]:
        return None
    return f"{what} is for {least}s (you are in {mode} mode; see View > Mode)"


def mode_ceiling(role: str | None) -> str:
    """The highest mode the GUI may be put in for the role the supervisor gives this user
    (Client.whoami()["role"]).  None, from a supervisor that does not say (one older than
    roles), keeps every mode open, as it enforces nothing; a role this GUI does not know
    allows only artist mode."""
    if role is None:
        return ADMIN
    return role if role in RANK else ARTIST


def clamp(mode: str, role: str | None) -> str:
    """`mode` if the role allows it, else the highest mode it does allow: the GUI may be put in
    a lower mode than the user's role, never a higher one."""
    ceiling = mode_ceiling(role)
    if mode not in RANK:
        return ARTIST
    return mode if RANK[mode] <= RANK[ceiling] else ceiling


def mode_allowed(mode: str, role: str | None) -> str | None:
    """None when the GUI may switch to `mode`; else why not (for the View > Mode menu)."""
    if clamp(mode, role) == mode:
        return None
    return (f"{mode.title()} mode needs the {mode} role on the supervisor; it says you are "
            f"{'an' if role in (ADMIN, ARTIST) else 'a'} {role}")


def supervisor_role(client: Client) -> str | None:
    """The role the supervisor gives this client's user, or None when it does not say (a
    supervisor older than roles answers whoami as an unknown request).  Other errors, such as
    an unreachable supervisor, are raised."""
    try:
        return client.whoami()["role"]
    except CueFarmError as exc:
        if exc.code == "unknown_type":
            return None
        raise


def own_jobs(mode: str, user: str, jobs: Iterable[dict]) -> str | None:
    """Artists act on their own jobs only."""
    if RANK.get(mode, 0) >= RANK[WRANGLER]:
        return None
    others = sorted({j.get("user") for j in jobs if j.get("user") != user}, key=str)
    if not others:
        return None
    return (f"artists act on their own jobs; {', '.join(map(str, others[:3]))}"
            f"{' and others' if len(others) > 3 else ''} own some of these (you are {user})")


def supported(method: str, what: str) -> str | None:
    """None when the client library offers `method`; else why the action is unavailable."""
    if callable(getattr(Client, method, None)):
        return None
    return f"{what} needs a newer cuefarm client library (Client.{method} is missing)"


def selection(rows: list[Any], kind: str) -> str | None:
    return None if rows else f"select one or more {kind}s first"


def one(rows: list[Any], kind: str) -> str | None:
    if not rows:
        return f"select a {kind} first"
    return None if len(rows) == 1 else f"select a single {kind}"


def having(rows: list[dict], test: Callable[[dict], bool], message: str) -> str | None:
    """None when some row passes `test`; else `message`."""
    return None if any(test(r) for r in rows) else message


def first(*reasons: str | None) -> str | None:
    """The first reason given, or None: rules checked in order of what to fix first."""
    for reason in reasons:
        if reason:
            return reason
    return None
