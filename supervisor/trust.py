"""Who is on the other end: the supervisor's keys, the CURVE authenticator (ZAP) of its three
sockets, and the table of keys it checks against.

With keys (a `supervisor.key` in the keys directory), every socket is a CURVE server and
every connection is authenticated by ZeroMQ's ZAP handler (pyzmq's ThreadAuthenticator)
before a message passes:
- the client API and the events take user keys;
- the worker link takes worker keys, and keys it does not know as *pending* (a bounded number,
  at a bounded rate): such a worker may ask to register, lands on the admission list with its
  key's fingerprint and gets nothing until an admin admits it;
- a revoked key is refused at the handshake, and the loop drops every message still arriving
  on a connection made with it (revocation takes effect on live connections).
Each message carries the key that authenticated its connection (the ZAP User-Id, its Z85
text): that key, never a field of the message, says who sent it.

Without keys the supervisor listens in the clear and takes the user a client claims, as a
farm on one machine does; on any other address it refuses to start that way unless told
`--insecure`, and says so loudly then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from pathlib import Path

import zmq
from zmq.auth.thread import ThreadAuthenticator

from cuefarm import keys as keyfiles
from supervisor.store.keys import KeyTable

log = logging.getLogger(__name__)

CLIENT, WORKER, EVENTS = "client", "worker", "events"
# Keys the worker link takes without knowing them (pending workers), at most, and how many
# new ones a second: a flood of made-up keys fills neither memory nor the admission list.
MAX_UNKNOWN = 1000
UNKNOWN_PER_SECOND = 20.0
UNKNOWN_FORGET = 3600.0        # seconds after which an unknown key seen once is forgotten


def keys_dir(cfg) -> Path:
    return keyfiles.supervisor_keys_dir(cfg.keys_dir)


def supervisor_key_path(cfg) -> Path:
    return keys_dir(cfg) / "supervisor.key"


def own_key(cfg) -> keyfiles.Key | None:
    """The supervisor's key pair, or None when it has none (it then runs without keys)."""
    path = supervisor_key_path(cfg)
    if not path.exists():
        return None
    key = keyfiles.read(path)
    if key.kind != "supervisor":
        raise keyfiles.KeyFileError(f"{path} is a {key.kind} key, not the supervisor's")
    return key


def owner_key(cfg) -> keyfiles.Key | None:
    """The public key of the supervisor's owner (always an admin), if one is set up."""
    path = keys_dir(cfg) / "owner.pub"
    if not path.exists():
        return None
    return keyfiles.read(path, need_secret=False)


class _Provider:
    """The ZAP callback of one domain (runs on the authenticator's thread)."""

    def __init__(self, gate: "Gate", domain: str):
        self.gate, self.domain = gate, domain

    def callback(self, domain: str, key: bytes) -> bool:
        return self.gate.allow(self.domain, key.decode("ascii", "replace"))


class Gate:
    """The authenticator of the supervisor's sockets and the key table it checks."""

    def __init__(self, ctx: zmq.Context, key: keyfiles.Key, table: KeyTable):
        self.key = key
        self.table = table
        self._lock = threading.Lock()           # the unknown keys, shared with the ZAP thread
        self.unknown: dict[str, float] = {}     # pending worker keys -> when first seen
        self._allowance = UNKNOWN_PER_SECOND
        self._filled = time.monotonic()
        self.refused: Counter[str] = Counter()  # per domain, since the loop last took them
        self.auth = ThreadAuthenticator(ctx, log=logging.getLogger("supervisor.zap"))
        self.auth.start()
        for domain in (CLIENT, WORKER, EVENTS):
            self.auth.configure_curve_callback(domain, _Provider(self, domain))

    def stop(self) -> None:
        self.auth.stop()

    def secure(self, sock: zmq.Socket, domain: str) -> None:
        keyfiles.secure_server(sock, self.key, domain)

    def replace(self, table: KeyTable) -> None:
        self.table = table

    def allow(self, domain: str, public: str) -> bool:
        t = self.table
        if public in t.revoked:
            ok = False
        elif domain in (CLIENT, EVENTS):
            ok = public in t.users
        elif public in t.workers:
            ok = True
        elif public in t.users:
            ok = False       # a person's key is not a worker's
        else:
            ok = self._pending(public)
        if not ok:
            with self._lock:
                self.refused[domain] += 1
        return ok

    def _pending(self, public: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if public in self.unknown:
                return True
            self._allowance = min(UNKNOWN_PER_SECOND,
                                  self._allowance + (now - self._filled) * UNKNOWN_PER_SECOND)
            self._filled = now
            if len(self.unknown) >= MAX_UNKNOWN:
                for k, seen in list(self.unknown.items()):
                    if now - seen > UNKNOWN_FORGET:
                        del self.unknown[k]
            if len(self.unknown) >= MAX_UNKNOWN or self._allowance < 1.0:
                return False
            self._allowance -= 1.0
            self.unknown[public] = now
            return True

    def take_refused(self) -> Counter[str]:
        with self._lock:
            out, self.refused = self.refused, Counter()
        return out

    # -- the loop's checks of each message ------------------------------------------------------

    def user(self, public: str) -> str | None:
        """The user a client's key is, or None (unknown or revoked since it connected)."""
        entry = self.table.users.get(public)
        return entry[0] if entry is not None else None

    def worker(self, public: str) -> str | None:
        """The host name a worker key is bound to; "" for a pending (unknown) key; None when
        the key may not talk (revoked, or a user's)."""
        t = self.table
        if public in t.revoked or public in t.users:
            return None
        host = t.workers.get(public)
        if host is not None:
            return host
        with self._lock:
            return "" if public in self.unknown else None


def user_id(frame: zmq.Frame) -> str:
    """The Z85 key that authenticated the connection a message came on ("" if none)."""
    try:
        return frame.get("User-Id") or ""
    except (zmq.ZMQError, UnicodeDecodeError):
        return ""
