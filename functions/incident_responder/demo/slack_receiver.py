"""A real HTTP server on loopback standing in for Slack's incoming webhooks: the demo posts to
it, and the tests (tests/support/slack_receiver.py) use it to see exactly what Slack would get.

It records every request and can be told to answer the next N requests with another
status (429 with Retry-After, 500, ...), so retry and failure handling are exercised
over real HTTP instead of with patched clients.

    with SlackReceiver() as slack:          # outside pytest
        ...post to slack.url...
        slack.requests[0].body["blocks"]

    def test_x(slack_receiver): ...         # inside pytest
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any  # parsed JSON, or the decoded text when the body is not JSON


@dataclass(frozen=True)
class _Reply:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


class SlackReceiver:
    """Answers 200 "ok" (as Slack does) unless told otherwise with ``reply_next``."""

    webhook_path = "/services/TLOCAL/BLOCAL/receiver"

    def __init__(self) -> None:
        self._requests: list[ReceivedRequest] = []
        self._statuses: list[bool] = []
        self._replies: list[_Reply] = []
        self._random_faults: list[tuple[float, _Reply]] = []
        self._random = random.Random(0)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                reply = receiver._record(ReceivedRequest("POST", self.path, dict(self.headers), raw, body))
                payload = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output clean
                pass

        return Handler

    def _record(self, request: ReceivedRequest) -> _Reply:
        with self._lock:
            self._requests.append(request)
            reply = _Reply(200, "ok")
            if self._replies:
                reply = self._replies.pop(0)
            else:
                draw = self._random.random()
                reply = next((fault for threshold, fault in self._random_faults if draw < threshold), reply)
            self._statuses.append(reply.status == 200)
            return reply

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self.webhook_path}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def statuses(self) -> list[bool]:
        """For each request in order: whether it was answered 200 (Slack posted it)."""
        with self._lock:
            return list(self._statuses)

    def reply_next(self, status: int, body: str | None = None, *, times: int = 1,
                   retry_after: int | None = None, headers: dict[str, str] | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (then 200 "ok" again)."""
        if times < 1:
            raise ValueError(f"times must be at least 1, got {times}")
        reply_headers = dict(headers or {})
        if retry_after is not None:
            reply_headers["Retry-After"] = str(retry_after)
        text = body if body is not None else {429: "rate_limited", 500: "internal_error"}.get(status, str(status))
        with self._lock:
            self._replies.extend(_Reply(status, text, reply_headers) for _ in range(times))

    def fail_randomly(self, rates: dict[int, float], *, retry_after: int = 1, seed: int = 0) -> None:
        """Answer each request with a status drawn from ``rates`` (e.g. {500: 0.10, 429: 0.05}), else 200."""
        faults, threshold = [], 0.0
        for status, rate in rates.items():
            threshold += rate
            headers = {"Retry-After": str(retry_after)} if status == 429 else {}
            faults.append((threshold, _Reply(status, {429: "rate_limited", 500: "internal_error"}.get(status, str(status)),
                                             headers)))
        with self._lock:
            self._random_faults = faults
            self._random = random.Random(seed)

    def start(self) -> SlackReceiver:
        if self._thread is None:
            # A short poll interval keeps shutdown (every test teardown) quick.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="slack-receiver", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SlackReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
