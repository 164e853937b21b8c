"""A WebSub hub on loopback: takes subscriptions, verifies intent, pushes signed (or forged) content."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode

import httpx

from tests.support.threaded_http import serve_handler


@dataclass
class HubSubscription:
    """A subscription whose intent the subscriber confirmed."""

    topic: str
    callback: str
    secret: str
    lease_seconds: int


class Hub:
    """The hub's state: verified subscriptions (renewals included) and refused verifications."""

    def __init__(self) -> None:
        self.verified: list[HubSubscription] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()

    def subscribe(self, form: dict[str, str]) -> None:
        """Verify intent at the callback, as a hub does after answering 202."""
        challenge = secrets.token_hex(8)
        query = {
            "hub.mode": form["hub.mode"],
            "hub.topic": form["hub.topic"],
            "hub.challenge": challenge,
            "hub.lease_seconds": form.get("hub.lease_seconds", "3600"),
        }
        answer = httpx.get(f"{form['hub.callback']}?{urlencode(query)}", timeout=10)
        with self._lock:
            if answer.status_code == 200 and answer.text == challenge:
                self.verified.append(
                    HubSubscription(
                        form["hub.topic"],
                        form["hub.callback"],
                        form["hub.secret"],
                        int(query["hub.lease_seconds"]),
                    )
                )
            else:
                self.refused.append(form["hub.callback"])

    def push(self, topic: str, body: bytes, forged: bool = False) -> int:
        """Deliver ``body`` to the topic's latest subscriber, signed with its secret (or a wrong one)."""
        subscription = [s for s in self.verified if s.topic == topic][-1]
        key = secrets.token_hex(16) if forged else subscription.secret
        signature = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
        headers = {"Content-Type": "application/rss+xml", "X-Hub-Signature": f"sha256={signature}"}
        return httpx.post(subscription.callback, content=body, headers=headers, timeout=10).status_code


@contextmanager
def serve_hub() -> Iterator[tuple[str, Hub]]:
    """Run a hub on loopback; yield its URL and its state."""
    hub = Hub()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            length = int(self.headers.get("Content-Length") or 0)
            form = dict(parse_qsl(self.rfile.read(length).decode()))
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            # Verification happens after the 202, from another thread, as real hubs do.
            threading.Thread(target=hub.subscribe, args=(form,), daemon=True).start()

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as base:
        yield f"{base}/", hub
