"""A local stand-in for Slack's incoming-webhook endpoint: a real HTTP server on loopback that
records what it was sent. The demo posts to it; the tests use it to see exactly what Slack would get.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any


@dataclass
class _Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class SlackReceiver:
    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._replies: list[_Reply] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                with receiver._lock:
                    receiver.requests.append(ReceivedRequest(self.path, dict(self.headers), raw, body))
                    reply = receiver._replies.pop(0) if receiver._replies else _Reply(200, "ok")
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(reply.body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/services/T000/B000/local"

    def reply_next(self, status: int, body: str = "", *, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` requests with this status (e.g. 429 with Retry-After)."""
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        with self._lock:
            self._replies.extend(_Reply(status, body or str(status), headers) for _ in range(times))

    def start(self) -> "SlackReceiver":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "SlackReceiver":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
