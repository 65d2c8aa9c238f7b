"""The client API and events as the GUI's worker thread uses them: large replies decoded in
slices.

Decoding 100,000 frame rows is one C call of a fifth of a second, and it holds the GIL the whole
time, so the UI thread would freeze for as long.  Here a reply's rows are first split into raw
pieces (cheap), then decoded a few thousand at a time; between slices the interpreter may hand
the GIL to the UI thread.  Everything else is `cuefarm.Client` and `cuefarm.Events` as they are.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Callable

import msgspec

from cuefarm import Client, CueFarmError, Events, Unreachable
from cuefarm import protocol as p

SLICE = 4000          # rows decoded per slice
LAZY_FROM = 8000      # replies with fewer rows are decoded at once

_envelope = msgspec.msgpack.Decoder(p.Envelope)
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


class GuiClient(Client):
    """`cuefarm.Client` whose `rows` replies are decoded in slices."""

    def request(self, body: p.Body, timeout: float | None = None,
                type_name: str | None = None) -> p.Body:
        sock = self._socket()
        rid = next(self._ids)
        sock.send(p.encode(body, rid, self.user, type_name=type_name))
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not sock.poll(int(left * 1000) + 1):
                self.close()      # a late reply must not be read as the next one's
                raise Unreachable(f"no reply from the supervisor at {self.address} "
                                  f"within {limit:g} s")
            data = sock.recv()
            try:
                env = _envelope.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise CueFarmError(f"unreadable reply from {self.address}: {exc}",
                                   "malformed") from None
            if env.id != rid:
                continue
            if env.type == "rows" and env.v == p.PROTOCOL_VERSION:
                try:
                    lazy = _lazy_rows.decode(env.body)
                except (msgspec.DecodeError, msgspec.ValidationError):
                    lazy = None
                if lazy is not None and len(lazy.rows) >= LAZY_FROM:
                    return p.Rows(decode_rows(lazy.rows))
            try:
                _, reply = p.decode(data)
            except p.ProtocolError as exc:
                raise CueFarmError(f"unreadable reply from {self.address}: {exc.message}",
                                   exc.code) from None
            if isinstance(reply, p.Error):
                raise CueFarmError(reply.message, reply.code, reply.field)
            return reply


class GuiEvents(Events):
    """`cuefarm.Events` whose large batches are decoded in slices."""

    def receive(self, timeout: float, on_gap: Callable[[], None] | None = None
                ) -> p.EventBatch | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        data = self.sock.recv()
        try:
            env = _envelope.decode(data)
            if env.type != "events" or env.v != p.PROTOCOL_VERSION:
                return None
            lazy = _lazy_batch.decode(env.body)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        try:
            batch = p.EventBatch(
                seq=lazy.seq, supervisor_id=lazy.supervisor_id,
                jobs=decode_rows(lazy.jobs), layers=decode_rows(lazy.layers),
                frames=decode_rows(lazy.frames), hosts=decode_rows(lazy.hosts),
                deleted_jobs=lazy.deleted_jobs)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        gap = (self.last_seq is None or batch.supervisor_id != self.supervisor_id
               or batch.seq != self.last_seq + 1)
        self.last_seq, self.supervisor_id = batch.seq, batch.supervisor_id
        if gap and on_gap is not None:
            on_gap()
        return batch
