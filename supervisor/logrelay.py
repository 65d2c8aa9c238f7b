"""Log requests relayed to workers: a client asks for an attempt's log, the worker that ran it
answers, the loop forwards the answer (or a time-out) to the client."""

from __future__ import annotations

from cuefarm import protocol as p

LOG_TIMEOUT = 10.0


class LogRelay:
    def __init__(self) -> None:
        # token -> (client route, request id, deadline (monotonic), host name)
        self.pending: dict[int, tuple[list[bytes], int, float, str]] = {}
        self.ended: dict[int, str] = {}     # token -> why its attempt ended, when it says
        self.tokens = 0

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
        for token, (route, rid, deadline, host) in list(self.pending.items()):
            if mono > deadline:
                del self.pending[token]
                self.ended.pop(token, None)
                out.append((route, rid, p.Error("unavailable", f"host {host} did not send the log")))
        return out
