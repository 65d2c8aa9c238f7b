"""The worker link: one DEALER socket to a supervisor, with liveness, backoff and failover.

Paranoid-Pirate shape (zguide `ppworker.py`): any message from the supervisor proves it alive; after
`timeout` seconds of silence the socket is thrown away (dropping whatever it still queued) and a
new one is connected to the next configured supervisor after a backoff that doubles from 1 s to
30 s.  All times are monotonic.
"""

from __future__ import annotations

import logging

import zmq
import zmq.utils.monitor

from cuefarm import keys
from cuefarm import protocol as p

log = logging.getLogger(__name__)

REFUSED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
BACKOFF_START = 1.0
BACKOFF_MAX = 30.0


def worker_endpoint(host: str, port: int) -> str:
    """The worker-link endpoint of a supervisor whose client API listens on `port`."""
    host = f"[{host}]" if ":" in host else host
    return f"tcp://{host}:{port + 1}"


class Link:
    """The connection to the current supervisor."""

    def __init__(self, ctx: zmq.Context, poller: zmq.Poller,
                 supervisors: list[tuple[str, int]], timeout: float,
                 key: "keys.Key | None" = None, supervisor_key: str = ""):
        """With `key` and `supervisor_key` the link is CURVE (see rqd.keys)."""
        self.ctx = ctx
        self.key, self.supervisor_key = key, supervisor_key
        self.poller = poller
        self.endpoints = [worker_endpoint(h, port) for h, port in supervisors]
        self.timeout = timeout
        self.index = 0
        self.sock: zmq.Socket | None = None
        self.monitor: zmq.Socket | None = None
        self.backoff = BACKOFF_START
        self.connect_due = 0.0          # connect at once the first time
        self.heard_at = 0.0
        self._send_failures = 0

    @property
    def endpoint(self) -> str:
        return self.endpoints[self.index]

    def connect(self, now: float) -> None:
        """Open a fresh socket to the current endpoint."""
        self.close()
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, p.MAX_WORKER_MESSAGE)
        keys.secure_client(sock, self.key, self.supervisor_key)
        # Read when the link is dropped: a supervisor that will not take us says why there.
        self.monitor = sock.get_monitor_socket(REFUSED)
        sock.connect(self.endpoint)
        self.poller.register(sock, zmq.POLLIN)
        self.sock = sock
        self.heard_at = now
        self._send_failures = 0
        log.info("connecting to the supervisor at %s", self.endpoint)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.poller.unregister(self.sock)
            except KeyError:
                pass
            if self.monitor is not None:
                self.sock.disable_monitor()
                self.monitor.close(0)
                self.monitor = None
            self.sock.close(0)
            self.sock = None

    def refusal(self) -> str:
        """Why the supervisor would not shake hands with us, if it would not ("" if not)."""
        if self.monitor is None:
            return ""
        events = []
        while True:
            try:
                events.append(zmq.utils.monitor.recv_monitor_message(self.monitor, zmq.NOBLOCK))
            except zmq.Again:
                break
        if not events:
            return ""
        if any(e["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH for e in events):
            return ("the supervisor refused this worker's key (unknown or revoked; an admin "
                    "issues one with cuefarm keys add-worker)")
        return ("the supervisor and this worker do not agree on keys: give rqd the "
                "supervisor's public key (--supervisor-key, or supervisor_key in [rqd])"
                if not self.supervisor_key else
                "the supervisor does not use this supervisor key (or no keys at all)")

    def drop(self, now: float, why: str) -> None:
        """Give up on this connection; reconnect to the next supervisor after the backoff."""
        refused = self.refusal()
        if refused:
            log.error("cannot connect to the supervisor at %s: %s", self.endpoint, refused)
        log.warning("lost the supervisor at %s: %s; reconnecting in %g s",
                    self.endpoint, why, self.backoff)
        self.close()
        self.connect_due = now + self.backoff
        self.backoff = min(self.backoff * 2, BACKOFF_MAX)
        self.index = (self.index + 1) % len(self.endpoints)

    def connected(self) -> None:
        """The supervisor accepted us: the next loss starts the backoff afresh."""
        self.backoff = BACKOFF_START

    def heard(self, now: float) -> None:
        self.heard_at = now

    def expiry(self) -> float:
        return self.heard_at + self.timeout

    def send(self, body: p.Body, request_id: int = 0) -> bool:
        """Queue one message; False when there is no socket or it cannot take more now."""
        if self.sock is None:
            return False
        try:
            self.sock.send(p.encode(body, request_id), zmq.NOBLOCK)
            self._send_failures = 0
            return True
        except zmq.ZMQError as exc:
            # EAGAIN: no connection to queue on, or the queue is full.  The silence that
            # follows makes us reconnect; until then say so once, not on every heartbeat.
            self._send_failures += 1
            log.log(logging.WARNING if self._send_failures == 1 else logging.DEBUG,
                    "cannot send a %s to %s: %s", p.TYPE_NAMES.get(type(body), "message"),
                    self.endpoint, "not connected" if isinstance(exc, zmq.Again) else exc)
            return False

    def receive(self, limit: int = 1000) -> list[bytes]:
        """Take up to `limit` waiting messages (each the last frame of a multipart message)."""
        out: list[bytes] = []
        while self.sock is not None and len(out) < limit:
            try:
                parts = self.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            except zmq.ZMQError as exc:
                log.warning("receive from %s failed: %s", self.endpoint, exc)
                break
            out.append(parts[-1])
        return out
