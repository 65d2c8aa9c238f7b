"""Real receivers for notifications: a local HTTP server and a local SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import threading
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class HookServer:
    """An HTTP server on 127.0.0.1:`port` keeping the JSON body of every POST."""

    def __init__(self, port: int = 0, status: int = 200):
        self.received: list[dict[str, Any]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = outer.status
                outer.received.append({"path": self.path, "body": json.loads(data),
                                       "type": self.headers.get("Content-Type"),
                                       "signature": self.headers.get("X-CueFarm-Signature"),
                                       "delivery": self.headers.get("X-CueFarm-Delivery"),
                                       "raw": data,
                                       "status": status})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class MailServer:
    """An SMTP server on 127.0.0.1 keeping every message it is sent."""

    def __init__(self, port: int = 0):
        from aiosmtpd.controller import Controller

        self.messages: list[Any] = []
        outer = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                outer.messages.append(message_from_bytes(envelope.original_content))
                return "250 OK"

        if not port:
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        self.port = port
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()

    def close(self) -> None:
        self.controller.stop()
