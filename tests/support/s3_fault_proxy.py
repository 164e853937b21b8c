"""A reverse proxy in front of the S3 server that fails requests on purpose.

Faults, chosen per request by a seeded random generator or by a path rule:
- ``slowdown``: answer 503 SlowDown without forwarding (the request never happened);
- ``error``: answer 500 InternalError without forwarding;
- ``drop``: forward the request, then close the connection without an answer (it did happen,
  but the client cannot know: the nastiest case for exactly-once).
"""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

from tests.support.threaded_http import serve_handler

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>x</Message></Error>'
)

FaultRule = Callable[[str, str], str | None]


class FaultPolicy:
    """Decides the fault (or None) for each request; counts what it injected."""

    def __init__(self, rate: float = 0.0, seed: int = 7, rule: FaultRule | None = None) -> None:
        self.rate = rate
        self.random = random.Random(seed)
        self.rule = rule
        self.lock = threading.Lock()
        self.injected: dict[str, int] = {"slowdown": 0, "error": 0, "drop": 0}
        self.requests = 0

    def choose(self, method: str, path: str) -> str | None:
        with self.lock:
            self.requests += 1
            fault = self.rule(method, path) if self.rule else None
            if fault is None and self.random.random() < self.rate:
                fault = self.random.choice(["slowdown", "error", "drop"])
            if fault:
                self.injected[fault] += 1
            return fault


def _handler(upstream: str, policy: FaultPolicy) -> type[BaseHTTPRequestHandler]:
    target = urlsplit(upstream)

    class ProxyHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            body = self._read_body()
            fault = policy.choose(self.command, self.path)
            if fault in ("slowdown", "error"):
                payload = SLOWDOWN if fault == "slowdown" else INTERNAL
                self.send_response(503 if fault == "slowdown" else 500)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() != "transfer-encoding"}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            if fault == "drop":
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return ProxyHandler


@contextlib.contextmanager
def fault_proxy(upstream: str, policy: FaultPolicy) -> Iterator[str]:
    """Run the proxy on loopback for the block; yield its endpoint URL."""
    with serve_handler(_handler(upstream, policy)) as endpoint:
        yield endpoint
