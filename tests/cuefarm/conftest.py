"""Fixtures for the library tests: a simulated supervisor speaking the real protocol.

`FakeSupervisor` binds a real ZeroMQ ROUTER socket and answers client requests with whatever its
`handler` returns, recording each request.  It is a peer, not a mock: the client and CLI under
test go through their real sockets, encoding and decoding.
"""

from __future__ import annotations

import threading
from typing import Callable

import pytest
import zmq
from click.testing import CliRunner

from cuefarm import protocol as p
from tests.farm import free_port_block

Handler = Callable[[str, p.Body], p.Body]


def free_port() -> int:
    """A TCP port nothing listens on right now, outside the range outgoing connections use."""
    return free_port_block(1)


class FakeSupervisor:
    def __init__(self) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"127.0.0.1:{self.port}"
        self.requests: list[tuple[str, p.Body]] = []
        self.handler: Handler = lambda name, body: p.Error("unhandled", f"no handler for {name}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, data = self.sock.recv_multipart()
            try:
                env, body = p.decode(data, allowed=p.CLIENT_REQUESTS)
            except p.ProtocolError as exc:
                self.sock.send_multipart(
                    [ident, p.encode(p.Error(exc.code, exc.message), exc.request_id)])
                continue
            self.requests.append((env.type, body))
            try:
                reply = self.handler(env.type, body)
            except Exception as exc:  # a broken test handler must not hang the client
                reply = p.Error("handler", repr(exc))
            self.sock.send_multipart([ident, p.encode(reply, env.id)])

    def types(self) -> list[str]:
        return [name for name, _ in self.requests]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def fake_supervisor():
    sup = FakeSupervisor()
    yield sup
    sup.close()


@pytest.fixture
def unreachable_address() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def runner() -> CliRunner:
    """A click runner for the `cuefarm` command."""
    return CliRunner()
