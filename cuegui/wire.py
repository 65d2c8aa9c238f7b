"""The client API and events as the GUI's worker thread uses them: large replies decoded in
slices.

Decoding 100,000 frame rows is one C call of a fifth of a second, and it holds the GIL the whole
time, so the UI thread would freeze for as long.  Here a reply's rows are first split into raw
pieces (cheap), then decoded a few thousand at a time; between slices the interpreter may hand
the GIL to the UI thread.  Sending, waiting and matching replies is `cuefarm.Client`'s
(`request_raw` hands over the undecoded reply); gap detection is `cuefarm.Events`'.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Callable

import msgspec
import zmq
from zmq.utils.monitor import recv_monitor_message

from cuefarm import Client, CueFarmError, Events, Unreachable
from cuefarm.client import handshake_failure, secure_socket
from cuefarm import protocol as p

SLICE = 4000          # rows decoded per slice
LAZY_FROM = 8000      # replies with fewer rows are decoded at once

_rows_decoder = msgspec.msgpack.Decoder(list[dict[str, Any]])


class _LazyRows(msgspec.Struct):
    rows: list[msgspec.Raw]


class _LazyBatch(msgspec.Struct):
    seq: int
    supervisor_id: str
    jobs: list[msgspec.Raw] = []
    layers: list[msgspec.Raw] = []
    frames: list[msgspec.Raw] = []
    hosts: list[msgspec.Raw] = []
    deleted_jobs: list[int] = []
    resync: bool = False
    resubscribe: bool = False


_lazy_rows = msgspec.msgpack.Decoder(_LazyRows)
_lazy_batch = msgspec.msgpack.Decoder(_LazyBatch)


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 65536:
        return b"\xdc" + struct.pack(">H", n)
    return b"\xdd" + struct.pack(">I", n)


def decode_rows(raws: list[msgspec.Raw], pause: Callable[[], None] = lambda: time.sleep(0)
                ) -> list[dict[str, Any]]:
    """Decode raw msgpack maps into dicts, SLICE at a time, pausing between slices."""
    out: list[dict[str, Any]] = []
    for start in range(0, len(raws), SLICE):
        part = raws[start:start + SLICE]
        out.extend(_rows_decoder.decode(_array_header(len(part)) + b"".join(part)))
        if start + SLICE < len(raws):
            pause()
    return out


# Socket events that mean the supervisor is gone: its end closed the connection, or a
# connection attempt was refused.
_GONE = zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
# ... and those that mean it will not take us: our key refused, or no agreement on keys.
_REFUSED = (zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)


class GuiClient(Client):
    """`cuefarm.Client` whose large `rows` replies are decoded in slices, and whose requests
    stop waiting as soon as the connection to the supervisor drops: a request in flight when
    the supervisor dies fails at once, not after its whole timeout.  Given several
    supervisors, the request after one that failed goes to the next."""

    # Watches the connection for its end (the base client's handshake watch is not used: the
    # GUI's own watchdog tells a supervisor that is not there).
    _gone: zmq.Socket | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            s = self._ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, p.MAX_CLIENT_MESSAGE)
            try:
                secure_socket(s, self.current, self._key_given, self._server_key_given)
            except CueFarmError:
                s.close(0)
                raise
            self._gone = s.get_monitor_socket(_GONE | _REFUSED)
            s.connect(f"tcp://{self.host}:{self.port}")
            self._sock = s
        return self._sock

    def close(self) -> None:
        if self._gone is not None:
            self._sock.disable_monitor()
            self._gone.close(0)
            self._gone = None
        super().close()

    def request_raw(self, body: p.Body, timeout: float | None = None,
                    type_name: str | None = None) -> p.Envelope:
        sock = self._socket()
        monitor = self._gone
        rid = next(self._ids)
        sock.send(p.encode(body, rid, self.user, type_name=type_name))
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        while True:
            left = deadline - time.monotonic()
            ready = dict(poller.poll(int(left * 1000) + 1)) if left > 0 else {}
            if monitor in ready:
                event = recv_monitor_message(monitor)
                if event["event"] & _REFUSED:
                    where = self.current
                    self.close()
                    raise CueFarmError(handshake_failure(where, event["event"]),
                                       "unauthenticated")
                if event["event"] & _GONE:
                    where = self.current
                    self._move_on()       # the next request goes to the next supervisor
                    raise Unreachable(f"the supervisor at {where} is not answering "
                                      "(connection closed or refused)")
                continue
            if sock not in ready:
                where = self.current
                self._move_on()   # a late reply must not be read as another's
                raise Unreachable(f"no reply from the supervisor at {where} "
                                  f"within {limit:g} s")
            env = self.read_reply(sock, rid)
            if env is not None:
                return env

    def request(self, body: p.Body, timeout: float | None = None,
                type_name: str | None = None) -> p.Body:
        env = self.request_raw(body, timeout, type_name)
        if env.type == "rows":
            try:
                lazy = _lazy_rows.decode(env.body)
            except (msgspec.DecodeError, msgspec.ValidationError):
                lazy = None       # decode_reply reports it
            if lazy is not None and len(lazy.rows) >= LAZY_FROM:
                try:
                    return p.Rows(decode_rows(lazy.rows))
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    raise CueFarmError(f"unreadable reply from {self.address}: {exc}",
                                       "malformed") from None
        return self.decode_reply(env)


class GuiEvents(Events):
    """`cuefarm.Events` whose large batches are decoded in slices."""

    def decode_batch(self, env: p.Envelope) -> p.EventBatch:
        if env.type != "events":
            raise p.ProtocolError("unknown_type", f"{env.type!r} is not an event batch")
        try:
            lazy = _lazy_batch.decode(env.body)
            return p.EventBatch(
                seq=lazy.seq, supervisor_id=lazy.supervisor_id,
                jobs=decode_rows(lazy.jobs), layers=decode_rows(lazy.layers),
                frames=decode_rows(lazy.frames), hosts=decode_rows(lazy.hosts),
                deleted_jobs=lazy.deleted_jobs, resync=lazy.resync,
                resubscribe=lazy.resubscribe)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise p.ProtocolError("malformed", f"bad event batch: {exc}") from None
