"""WebSub (W3C) subscriber: discover a feed's hub, subscribe, verify intent, check push signatures.

A push is accepted only with a valid ``X-Hub-Signature`` (HMAC of the body with the secret of that
subscription); anything else is acknowledged and ignored, as the spec allows, so a forger learns
nothing. Secrets are derived per source from one process secret and never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx

from feedlake.tasks.errors import FetchTerminalError
from feedlake.tasks.parse.feed_links import feed_links

log = logging.getLogger(__name__)

_DIGESTS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}
DEFAULT_LEASE_SECONDS = 86400 * 5


@dataclass
class Subscription:
    """One source's subscription at its hub."""

    source_id: str
    topic: str
    hub: str
    callback: str
    state: str = "pending"
    expires_at: datetime | None = None
    renew_at: datetime | None = None
    renewals: int = 0


def discover(body: bytes, feed_url: str) -> tuple[str, str] | None:
    """The feed's hub and topic (its ``self`` link, else its URL), if it advertises a hub."""
    links = feed_links(body, feed_url)
    hub = links.get("hub")
    return (hub, links.get("self", feed_url)) if hub else None


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``X-Hub-Signature: <algo>=<hex>`` is the HMAC of ``body`` under ``secret``."""
    if not header or "=" not in header:
        return False
    algorithm, _, received = header.partition("=")
    digest = _DIGESTS.get(algorithm.strip().lower())
    if digest is None:
        return False
    expected = hmac.new(secret, body, digest).hexdigest()
    return hmac.compare_digest(expected, received.strip().lower())


class Subscriber:
    """The subscriptions of one callback endpoint, their secrets and their verification state."""

    def __init__(self, public_url: str, master_secret: str | None = None) -> None:
        self.public_url = public_url.rstrip("/")
        # A fresh secret per process unless one is configured: subscriptions are renewed at start.
        self._master = (master_secret or secrets.token_hex(32)).encode()
        self._lock = threading.Lock()
        self.subscriptions: dict[str, Subscription] = {}

    def secret_for(self, source_id: str) -> bytes:
        """The HMAC secret given to the hub for this source."""
        return hmac.new(self._master, source_id.encode(), hashlib.sha256).hexdigest().encode()

    def callback_for(self, source_id: str) -> str:
        """The callback URL of a source's subscription."""
        return f"{self.public_url}/{quote(source_id, safe='')}"

    def subscribe(
        self,
        client: httpx.Client,
        source_id: str,
        hub: str,
        topic: str,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
    ) -> Subscription:
        """Ask the hub to subscribe (or renew); the hub then verifies intent at the callback."""
        callback = self.callback_for(source_id)
        with self._lock:
            known = self.subscriptions.get(source_id)
            subscription = known or Subscription(source_id, topic, hub, callback)
            if known is not None:
                subscription.renewals += 1
                subscription.renew_at = None  # asked once; the hub's next verification sets it again
            self.subscriptions[source_id] = subscription
        form = {
            "hub.mode": "subscribe",
            "hub.topic": topic,
            "hub.callback": callback,
            "hub.secret": self.secret_for(source_id).decode(),
            "hub.lease_seconds": str(lease_seconds),
        }
        response = client.post(hub, data=form)
        if response.status_code not in (202, 204):
            raise FetchTerminalError(
                f"hub refused the subscription: HTTP {response.status_code}", source_id=source_id, url=hub
            )
        log.info("websub: asked %s to subscribe %s to %s", hub, source_id, topic)
        return subscription

    def verify_intent(self, source_id: str, query: Mapping[str, str]) -> tuple[int, bytes]:
        """Answer the hub's verification GET: echo the challenge only for a subscription we asked for."""
        with self._lock:
            subscription = self.subscriptions.get(source_id)
            mode, topic = query.get("hub.mode"), query.get("hub.topic")
            if (
                subscription is None
                or topic != subscription.topic
                or mode not in ("subscribe", "unsubscribe")
            ):
                log.warning("websub: refused verification for %s (%s %s)", source_id, mode, topic)
                return 404, b"no such subscription"
            if mode == "unsubscribe":
                del self.subscriptions[source_id]
            else:
                lease = int(query.get("hub.lease_seconds") or DEFAULT_LEASE_SECONDS)
                now = datetime.now(UTC)
                subscription.state = "active"
                subscription.expires_at = now + timedelta(seconds=lease)
                # Renew with a fifth of the lease left: a 5-day lease a day early, a 10 s one at 8 s.
                subscription.renew_at = now + timedelta(seconds=lease * 0.8)
        return 200, query.get("hub.challenge", "").encode()

    def accept_push(self, source_id: str, body: bytes, signature: str | None) -> bool:
        """Whether a pushed body comes from the hub of an active subscription (valid signature)."""
        with self._lock:
            subscription = self.subscriptions.get(source_id)
        if subscription is None or subscription.state != "active":
            log.warning("websub: push for %s without an active subscription ignored", source_id)
            return False
        if not signature_valid(self.secret_for(source_id), body, signature):
            log.warning("websub: push for %s with a bad signature ignored", source_id)
            return False
        return True

    def due_for_renewal(self, now: datetime) -> list[Subscription]:
        """Active subscriptions whose lease is four fifths over."""
        with self._lock:
            return [
                s
                for s in self.subscriptions.values()
                if s.state == "active" and s.renew_at is not None and now >= s.renew_at
            ]
