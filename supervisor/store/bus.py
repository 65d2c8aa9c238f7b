"""The farm bus: supervisors sharing one PostgreSQL database tell one another what changed.

A transaction that changed the farm sends one notice on the `cuefarm` channel
(`pg_notify`) before it commits; PostgreSQL delivers it to every listening supervisor when
(and only if) the transaction commits, in commit order.  Each supervisor listens on a
connection of its own, outside the pool, whose socket the loop polls with its ZeroMQ sockets:
a notice wakes the loop at once, and no server beside the database is needed.

A notice's payload is at most 8,000 bytes (PostgreSQL's limit); `supervisor.farmbus` says what
is in it.  SQLite has one supervisor per database: there is no bus.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Engine, text

log = logging.getLogger(__name__)
CHANNEL = "cuefarm"
MAX_PAYLOAD = 7900           # PostgreSQL refuses 8,000 bytes and more
_NOTIFY = text("SELECT pg_notify('cuefarm', :payload)")


def shared(engine: Engine) -> bool:
    """Whether supervisors may share this database (PostgreSQL)."""
    return engine.dialect.name == "postgresql"


def announce(conn: Connection, payload: str) -> None:
    """Send `payload` to every listening supervisor when this transaction commits."""
    conn.execute(_NOTIFY, {"payload": payload})


class Listener:
    """A connection that LISTENs on the channel.  `fileno()` becomes readable when notices
    arrive; `take()` returns their payloads.  A lost connection is opened again; the notices
    missed meanwhile are lost, which `take()` reports as a payload of None (the caller then
    re-reads what it must)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.conn: Any = None
        self.fd = -1
        self.held: set[str] = set()    # duties whose advisory lock this connection holds
        self._open()

    def _open(self) -> None:
        raw = self.engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()                 # ours for good: never handed back to the pool
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"LISTEN {CHANNEL}")
        self.conn = conn
        self.fd = conn.fileno()
        self.held = set()

    def hold(self, duty: str) -> bool:
        """Take, or keep, the farm-wide duty `duty`: True while this connection holds its
        advisory lock.  Whoever asks first takes it; it is let go when the connection ends
        (the supervisor stopped or died), and the next supervisor to ask takes it then."""
        if duty in self.held:
            return True
        with self.conn.cursor() as cur:
            cur.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"cuefarm duty {duty}",))
            got = bool(cur.fetchone()[0])
        if got:
            self.held.add(duty)
            log.info("this supervisor now does %s for the farm", duty)
        return got

    def pending(self) -> bool:
        """Notices already read off the socket (by a query on this connection) and not
        taken: the socket will not say so."""
        return bool(self.conn is not None and self.conn.notifies)

    def fileno(self) -> int:
        """The socket of the connection listening now (or last, once it is lost): what the
        loop polls."""
        return self.fd

    def lost(self) -> bool:
        """Whether the connection is gone (a query on it failed: the server went away), so
        that `take()` listens again whether or not its socket says anything."""
        return self.conn is None or bool(self.conn.closed)

    def take(self) -> list[str | None]:
        try:
            self.conn.poll()
        except Exception as exc:     # noqa: BLE001 - the server went away: listen again
            log.warning("farm bus connection lost (%s): listening again", exc)
            self.close()
            try:
                self._open()
            except Exception as again:  # noqa: BLE001
                log.error("cannot listen on the farm bus: %s", again)
                raise
            return [None]
        notes = [n.payload for n in self.conn.notifies]
        self.conn.notifies.clear()
        return notes

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:        # noqa: BLE001 - closing a broken connection
                pass
            self.conn = None
