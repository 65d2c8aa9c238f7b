"""Log requests relayed to workers: a client asks for an attempt's log, the worker that ran it
answers, the loop forwards the answer (or a time-out) to the client.

When the worker is connected to another supervisor sharing the database, the request goes
to that supervisor on the farm bus (`ask` here, `ask_for` there); its worker's answer comes
back in pieces that fit in a notice (`pieces` there, `piece` here)."""

from __future__ import annotations

import base64

from cuefarm import protocol as p

LOG_TIMEOUT = 10.0
RELAYED_MAX = 64 * 1024      # bytes of log one request relayed between supervisors returns
PIECE = 5400                 # bytes of log per notice (base64 and the rest fit in 7,900)


class LogRelay:
    def __init__(self) -> None:
        # token -> (client route, request id, deadline (monotonic), host name)
        self.pending: dict[int, tuple[list[bytes], int, float, str]] = {}
        self.ended: dict[int, str] = {}     # token -> why its attempt ended, when it says
        self.tokens = 0
        # token sent to our worker -> (asking supervisor, its token, deadline)
        self.peers: dict[int, tuple[str, int, float]] = {}
        # token -> the pieces of a relayed answer received so far
        self.parts: dict[int, dict[int, list]] = {}

    def ask(self, route: list[bytes], request_id: int, host: str, mono: float,
            ended: str = "") -> int:
        """Note a request; the token to send the worker.  `ended` (why the attempt ended)
        goes into the answer when the worker has no log of it: an attempt that never
        reached the worker has none, and the client learns why instead."""
        self.tokens += 1
        self.pending[self.tokens] = (route, request_id, mono + LOG_TIMEOUT, host)
        if ended:
            self.ended[self.tokens] = ended
        return self.tokens

    def ask_for(self, supervisor: str, token: int, mono: float) -> int:
        """Note a request another supervisor relayed; the token to send our worker."""
        self.tokens += 1
        self.peers[self.tokens] = (supervisor, token, mono + LOG_TIMEOUT)
        return self.tokens

    def forward(self, reply: p.LogReply) -> tuple[str, list[list]] | None:
        """For a worker's answer to a relayed request: (the asking supervisor, the pieces to
        send it); None when the answer is for a client of ours (or nobody waits)."""
        peer = self.peers.pop(reply.token, None)
        if peer is None:
            return None
        supervisor, token, _ = peer
        data = reply.data
        chunks = [data[i:i + PIECE] for i in range(0, len(data), PIECE)] or [b""]
        return supervisor, [[token, i, len(chunks), reply.attempt_id, reply.offset, reply.size,
                             reply.error[:500], base64.b64encode(c).decode()]
                            for i, c in enumerate(chunks)]

    def piece(self, piece: list) -> tuple[list[bytes], int, p.Body] | None:
        """Take one piece of a relayed answer; the client reply once all have come."""
        token, index, total, attempt_id, offset, size, error, data = piece
        if token not in self.pending:
            return None
        got = self.parts.setdefault(token, {})
        got[index] = piece
        if len(got) < total:
            return None
        del self.parts[token]
        whole = b"".join(base64.b64decode(got[i][7]) for i in range(total))
        return self.answer(p.LogReply(token, attempt_id, offset, size, whole, error))

    def unreachable(self, token: int) -> tuple[list[bytes], int, p.Body] | None:
        """The client reply when the request could not be sent to the worker."""
        pending = self.pending.pop(token, None)
        self.ended.pop(token, None)
        if pending is None:
            return None
        route, rid, _, host = pending
        return route, rid, p.Error("unavailable", f"host {host} cannot be reached")

    def answer(self, reply: p.LogReply) -> tuple[list[bytes], int, p.Body] | None:
        """The client reply to a worker's LogReply (None: nobody waits for it any more)."""
        pending = self.pending.pop(reply.token, None)
        ended = self.ended.pop(reply.token, "")
        if pending is None:
            return None
        route, rid, _, host = pending
        if reply.error:
            return route, rid, p.Error("unavailable", f"{host}: {reply.error}"
                                       + (f" (the attempt ended: {ended})" if ended else ""))
        return route, rid, p.LogChunk(reply.attempt_id, host, reply.offset, reply.size,
                                      reply.data)

    def expire(self, mono: float) -> list[tuple[list[bytes], int, p.Body]]:
        """Replies for the requests whose worker did not answer in time."""
        out = []
        for token, (_, _, deadline) in list(self.peers.items()):
            if mono > deadline:
                del self.peers[token]
        for token, (route, rid, deadline, host) in list(self.pending.items()):
            if mono > deadline:
                del self.pending[token]
                self.parts.pop(token, None)
                self.ended.pop(token, None)
                out.append((route, rid, p.Error("unavailable", f"host {host} did not send the log")))
        return out
