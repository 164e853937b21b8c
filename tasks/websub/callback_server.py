"""The WebSub callback endpoint: answers hub verifications and queues signed pushes for ingest."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from feedlake.tasks.websub.subscriber import Subscriber

log = logging.getLogger(__name__)

MAX_PUSH_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Push:
    """A verified pushed feed document for one source."""

    source_id: str
    body: bytes
    content_type: str


@contextmanager
def callback_server(
    subscriber: Subscriber, host: str, port: int, pushes: queue.Queue[Push]
) -> Iterator[tuple[str, int]]:
    """Serve the callback endpoint on ``host:port`` in a thread; yield the bound address."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            parts = urlsplit(self.path)
            status, body = subscriber.verify_intent(_source_of(parts.path), dict(parse_qsl(parts.query)))
            self._answer(status, body)

        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PUSH_BYTES:
                self._answer(413, b"too large")
                return
            body = self.rfile.read(length)
            source_id = _source_of(urlsplit(self.path).path)
            if subscriber.accept_push(source_id, body, self.headers.get("X-Hub-Signature")):
                pushes.put(Push(source_id, body, self.headers.get("Content-Type") or ""))
            # 202 either way: the spec lets a subscriber ignore a forged push without telling the sender.
            self._answer(202, b"")

        def _answer(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield str(server.server_address[0]), int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _source_of(path: str) -> str:
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])
