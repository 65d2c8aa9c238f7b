"""Who may do what, as the GUI shows it: an action a user may not take is disabled and says why.

The supervisor is the one that enforces; these rules only keep people from trying what it
would refuse, and explain.  The GUI runs in one of three modes (View > Mode):

- artist: acts on their own jobs and frames;
- wrangler: acts on every job, and also reprioritises, sets slots, moves jobs between
  projects and satisfies or drops dependencies;
- admin: all of that, plus host management.

Every rule is a function returning None (allowed) or the reason, so tests read as a table.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from cuefarm import Client

ARTIST, WRANGLER, ADMIN = "artist", "wrangler", "admin"
MODES = (ARTIST, WRANGLER, ADMIN)
RANK = {ARTIST: 0, WRANGLER: 1, ADMIN: 2}


def needs(mode: str, least: str, what: str) -> str | None:
    """None when `mode` is at least `least`; else why not."""
    if RANK.get(mode, 0) >= RANK[least]:
        return None
    return f"{what} is for {least}s (you are in {mode} mode; see View > Mode)"


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
