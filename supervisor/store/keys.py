"""The farm's keys in the database: users' and workers' CURVE public keys, issued, listed,
bound and revoked.  Bad input raises ControlError and changes nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update

from cuefarm import keys as keyfiles
from supervisor.roles import RANK
from supervisor.store.errors import ControlError
from supervisor.store.models import FarmKey

NAME_RE = re.compile(r"[A-Za-z0-9_.@\-]{1,256}", re.ASCII)


@dataclass(frozen=True)
class KeyTable:
    """Who each live key is: read by the authenticator's thread and the loop, replaced
    whole (never changed in place) when keys change."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)   # public -> (user, role)
    workers: dict[str, str] = field(default_factory=dict)             # public -> host name
    worker_keys: dict[str, str] = field(default_factory=dict)         # host name -> public
    revoked: frozenset[str] = frozenset()


def load(conn: Connection) -> KeyTable:
    users: dict[str, tuple[str, str]] = {}
    workers: dict[str, str] = {}
    revoked: set[str] = set()
    for r in conn.execute(select(FarmKey.public, FarmKey.kind, FarmKey.name, FarmKey.role,
                                 FarmKey.revoked_at)):
        if r.revoked_at is not None:
            revoked.add(r.public)
        elif r.kind == "user":
            users[r.public] = (r.name, r.role or "artist")
        elif r.kind == "worker":
            workers[r.public] = r.name
    return KeyTable(users, workers, {h: k for k, h in workers.items()}, frozenset(revoked))


def _check(kind: str, public: str, name: str, role: str) -> None:
    if kind not in ("user", "worker"):
        raise ControlError(f"a key is for a user or a worker, not {kind!r}", "kind")
    if not keyfiles.valid_z85(public):
        raise ControlError("not a CURVE public key (40 Z85 characters)", "public")
    if not NAME_RE.fullmatch(name or ""):
        raise ControlError(f"{name!r} is not a {'user' if kind == 'user' else 'host'} name "
                           f"(letters, digits, . _ - @)", "name")
    if kind == "user" and role not in RANK:
        raise ControlError(f"role {role!r} is not one of {', '.join(RANK)}", "role")


def add(conn: Connection, kind: str, public: str, name: str, role: str, by: str,
        now: float) -> dict[str, Any]:
    """Record a new key.  A worker's host name has one live key: issuing another for it
    needs the old one revoked first."""
    role = role if kind == "user" else ""
    _check(kind, public, name, role)
    old = conn.execute(select(FarmKey.kind, FarmKey.name, FarmKey.revoked_at)
                       .where(FarmKey.public == public)).first()
    if old is not None:
        state = "revoked" if old.revoked_at is not None else "in use"
        raise ControlError(f"this key is already known ({state}, {old.kind} {old.name}); "
                           f"make a new one", "public")
    if kind == "worker":
        bound = worker_key(conn, name)
        if bound is not None:
            raise ControlError(f"host {name} already has a key ({keyfiles.fingerprint(bound)}); "
                               f"revoke it first: cuefarm keys revoke "
                               f"{keyfiles.fingerprint(bound)}", "name")
    conn.execute(insert(FarmKey).values(public=public, kind=kind, name=name, role=role,
                                        created_at=now, created_by=by))
    return {"kind": kind, "name": name, "role": role,
            "fingerprint": keyfiles.fingerprint(public)}


def worker_key(conn: Connection, host: str) -> str | None:
    """The live key a host name is bound to, if any."""
    return conn.execute(select(FarmKey.public).where(
        FarmKey.kind == "worker", FarmKey.name == host,
        FarmKey.revoked_at.is_(None))).scalar()


def bind_worker(conn: Connection, host: str, public: str, now: float, by: str) -> None:
    """Bind `host` to `public` when it has no live key yet (its first admitted connection)."""
    if worker_key(conn, host) is None and conn.execute(
            select(FarmKey.public).where(FarmKey.public == public)).first() is None:
        conn.execute(insert(FarmKey).values(public=public, kind="worker", name=host, role="",
                                            created_at=now, created_by=by))


def ensure_owner(conn: Connection, public: str, name: str, now: float) -> bool:
    """Record the owner's key (an admin) unless it is known already (revoked included: a
    revoked owner key stays revoked).  True when added."""
    if conn.execute(select(FarmKey.public).where(FarmKey.public == public)).first():
        return False
    _check("user", public, name, "admin")
    conn.execute(insert(FarmKey).values(public=public, kind="user", name=name, role="admin",
                                        created_at=now, created_by="(owner key file)"))
    return True


def rows(conn: Connection, include_revoked: bool = False) -> list[dict[str, Any]]:
    q = select(FarmKey.__table__).order_by(FarmKey.kind, FarmKey.name, FarmKey.created_at)
    if not include_revoked:
        q = q.where(FarmKey.revoked_at.is_(None))
    return [{"fingerprint": keyfiles.fingerprint(k.public), "kind": k.kind, "name": k.name,
             "role": k.role, "created_at": k.created_at, "created_by": k.created_by,
             "revoked_at": k.revoked_at, "revoked_by": k.revoked_by}
            for k in conn.execute(q)]


def revoke(conn: Connection, which: str, by: str, now: float) -> list[dict[str, Any]]:
    """Revoke the live keys `which` names: a fingerprint (or its first 8+ characters), a user
    name or a host name.  Returns what was revoked; ControlError when nothing matched, or
    when a short fingerprint matches keys of different owners."""
    which = (which or "").strip()
    if not which:
        raise ControlError("name a key: its fingerprint, a user name or a host name", "key")
    live = list(conn.execute(select(FarmKey.__table__).where(FarmKey.revoked_at.is_(None))))
    hits = [k for k in live if len(which) >= 8
            and keyfiles.fingerprint(k.public).startswith(which.lower())]
    if not hits:
        hits = [k for k in live if k.name == which]
    if not hits:
        raise ControlError(f"no live key matches {which!r} (see cuefarm keys list)", "key",
                           "not_found")
    if len({(k.kind, k.name) for k in hits}) > 1:
        raise ControlError(f"{which!r} matches keys of "
                           f"{', '.join(sorted({f'{k.kind} {k.name}' for k in hits}))}; "
                           f"name one by its fingerprint", "key")
    conn.execute(update(FarmKey).where(FarmKey.public.in_([k.public for k in hits]))
                 .values(revoked_at=now, revoked_by=by))
    return [{"fingerprint": keyfiles.fingerprint(k.public), "kind": k.kind, "name": k.name}
            for k in hits]
