"""A local news site that publishes a new item every few seconds, for unattended-run tests.

``/feed.xml`` is an RSS document of every item published so far (newest first, at most 50), each
with a stable guid and a description long enough to pass the data-quality suite. ``hold_seconds`` makes
feed requests wait and then answer nothing, so a test can kill a poll while it is in flight.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from tests.support.threaded_http import QuietHandler, serve_handler


@dataclass
class PublishingSite:
    """What the site has published; ``published_guids`` is the truth a lake is checked against."""

    every_seconds: float
    started: float = field(default_factory=time.monotonic)
    hold_seconds: float = 0.0
    served: list[int] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    base_url: str = ""

    def count(self) -> int:
        """Items published so far (one at start, then one per interval)."""
        return 1 + int((time.monotonic() - self.started) / self.every_seconds)

    def published_guids(self, upto: int | None = None) -> list[str]:
        """The guids of the first ``upto`` (default: all so far) items."""
        return [f"urn:test:item:{n}" for n in range(upto if upto is not None else self.count())]

    def document(self) -> bytes:
        """The feed as it stands now."""
        total = self.count()
        items = []
        for n in range(total - 1, max(-1, total - 51), -1):
            when = format_datetime(datetime.fromtimestamp(1_790_000_000 + n * 60, UTC), usegmt=True)
            items.append(
                f"<item><title>Release number {n}</title><link>{self.base_url}/news/{n}</link>"
                f'<guid isPermaLink="false">urn:test:item:{n}</guid><pubDate>{when}</pubDate>'
                f"<description>Press release number {n} of the test site, published for the "
                f"unattended-run tests with enough words to be an article.</description></item>"
            )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Test site</title><link>{self.base_url}/</link><description>tests</description>"
            + "".join(items)
            + "</channel></rss>"
        ).encode()


@contextmanager
def publishing_site(every_seconds: float) -> Iterator[PublishingSite]:
    """Serve a site that publishes an item every ``every_seconds``; yield its state."""
    site = PublishingSite(every_seconds)

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path != "/feed.xml":
                self.send_error(404)
                return
            site.request_times.append(time.monotonic())
            if site.hold_seconds:
                site.held.set()
                time.sleep(site.hold_seconds)
                self.close_connection = True
                return
            body = site.document()
            site.served.append(site.count())
            self.send_body(200, body, {"Content-Type": "application/rss+xml"})

    with serve_handler(Handler) as base_url:
        site.base_url = base_url
        yield site
