"""The requests that issue, list and revoke keys (admins), and keeping the authenticator's key
table in step with the database: at once after a change made here, every few seconds for
changes made through another supervisor sharing the database."""

from __future__ import annotations

import dataclasses
import logging
from typing import Callable

from cuefarm import protocol as p
from supervisor.context import Context
from supervisor.requests import Request, RequestError, request
from supervisor.roles import ADMIN, RANK
from supervisor.store import admin
from supervisor.store import keys as key_store
from supervisor.store.errors import ControlError

log = logging.getLogger(__name__)
RELOAD_EVERY = 3.0     # seconds between reads of the key table (changes through other supervisors)


def apply_table(cx: Context, table: key_store.KeyTable, members: dict | None = None) -> None:
    """Put a freshly read key table in force: the authenticator checks new connections and
    every message against it, roles follow the keys, and workers whose key was revoked are
    cut off (their messages are dropped from now on; liveness marks them DOWN)."""
    gate = cx.gate
    if gate is None:
        return
    old = gate.table
    gate.replace(table)
    if old.users != table.users or (members is not None and cx.live.members_seen is not None
                                    and members != cx.live.members_seen):
        cx.live.views_changed = True       # events subscribers get their views anew
    if members is not None:
        cx.live.members_seen = members
    granted: dict[str, str] = {}
    for name, role in table.users.values():
        if RANK.get(role, 0) >= RANK.get(granted.get(name, "artist"), 0):
            granted[name] = role
    cx.policy = dataclasses.replace(cx.policy, granted=granted, keyed=True)
    for identity, public in list(cx.live.worker_keys.items()):
        if public in table.revoked:
            del cx.live.worker_keys[identity]
            w = cx.live.registry.by_identity.get(identity)
            if w is not None:
                log.warning("the key of worker %s was revoked: it is cut off", w.name)
                w.last_seen = float("-inf")
                cx.out.wake()


def reload(cx: Context) -> Callable[[], Callable[[Context], None]] | None:
    """Background work (supervisor.loop add_background): read the key table, then apply it."""
    if cx.gate is None:
        return None
    engine = cx.engine

    def read():
        with engine.connect() as conn:
            table, members = key_store.load(conn), admin.members(conn)
        return lambda cx: apply_table(cx, table, members)
    return read


def reload_now(cx: Context) -> None:
    with cx.engine.connect() as conn:
        apply_table(cx, key_store.load(conn), admin.members(conn))


def _store(cx: Context, fn):
    try:
        with cx.begin() as (conn, _):
            result = fn(conn)
    except ControlError as exc:
        raise RequestError(exc.code, str(exc), exc.field) from None
    reload_now(cx)
    return result


@request("add_key", role=ADMIN, what="issuing keys")
def _add_key(cx: Context, req: Request) -> p.Body:
    body: p.AddKey = req.body
    if cx.gate is None:
        raise RequestError("invalid", "this supervisor runs without keys: give it keys first "
                                      "(cuefarm keys init on its machine)")
    row = _store(cx, lambda conn: key_store.add(conn, body.kind, body.public, body.name.strip(),
                                                body.role, req.user, cx.clock()))
    log.info("%s issued a %s key for %s (%s)", req.user, body.kind, body.name, row["fingerprint"])
    return p.Row({**row, "supervisor": cx.gate.key.public})


@request("list_keys", role=ADMIN, what="listing keys", read=True)
def _list_keys(cx: Context, req: Request) -> p.Body:
    body: p.ListKeys = req.body
    return p.Rows(cx.read(lambda c: key_store.rows(c, body.include_revoked)))


@request("revoke_key", role=ADMIN, what="revoking keys")
def _revoke_key(cx: Context, req: Request) -> p.Body:
    body: p.RevokeKey = req.body
    done = _store(cx, lambda conn: key_store.revoke(conn, body.key, req.user, cx.clock()))
    log.info("%s revoked %s", req.user, ", ".join(f"{r['kind']} {r['name']} ({r['fingerprint']})"
                                                  for r in done))
    return p.Rows(done)
