"""`feedlake websub serve`: subscribe to the hubs feeds advertise, and ingest what they push.

Polling stays the fallback: a pushed document goes through the poll's own stages (parse,
normalize, dedup, validate, commit under the lease), so a push and a poll of the same items never
write them twice.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from prefect import flow
from prefect.exceptions import TerminationSignal

from feedlake.flows.poll import PrefectHooks
from feedlake.tasks.fetch.client import fetch_feeds_blocking
from feedlake.tasks.pipeline.poll import run_poll
from feedlake.tasks.settings import FeedlakeSettings, settings_with
from feedlake.tasks.sources.catalog import load_sources
from feedlake.tasks.values import FetchResult
from feedlake.tasks.websub.callback_server import Push, callback_server
from feedlake.tasks.websub.subscriber import DEFAULT_LEASE_SECONDS, Subscriber, discover

log = logging.getLogger(__name__)


@flow(name="feedlake-websub-push", persist_result=False)
def push_flow(source: str, body_path: str, sources: str | None = None, lake: str | None = None) -> int:
    """Ingest one pushed document of ``source`` (saved at ``body_path``) through the poll's stages."""
    settings = settings_with(sources=sources, lake=lake)
    body = Path(body_path).read_bytes()
    catalog = {s.id: s for s in load_sources(settings.sources, dict(os.environ))}
    pushed = {source: FetchResult(source, catalog[source].url, datetime.now(UTC), status=200, body=body)}
    summary = run_poll(settings, pushed=pushed, hooks=PrefectHooks())
    return summary.rows_committed


def serve_websub(
    settings: FeedlakeSettings,
    host: str,
    port: int,
    public_url: str,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    stop_after: float | None = None,
) -> None:
    """Subscribe every enabled source whose feed advertises a hub; ingest pushes until stopped."""
    catalog = [s for s in load_sources(settings.sources, dict(os.environ)) if s.enabled]
    subscriber = Subscriber(public_url, os.environ.get("FEEDLAKE_WEBSUB_SECRET"))
    pushes: queue.Queue[Push] = queue.Queue()
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with callback_server(subscriber, host, port, pushes), httpx.Client(timeout=30) as client:
        for result in fetch_feeds_blocking(catalog, {}, settings):
            found = discover(result.body or b"", result.url) if result.body else None
            if found is None:
                log.info("websub: %s advertises no hub; polling only", result.source_id)
                continue
            hub, topic = found
            try:
                subscriber.subscribe(client, result.source_id, hub, topic, lease_seconds)
            except Exception as exc:  # noqa: BLE001 - one hub's refusal leaves that source to polling
                log.warning("websub: could not subscribe %s at %s: %s", result.source_id, hub, exc)
        started = datetime.now(UTC)
        while not stopping:
            if stop_after is not None and (datetime.now(UTC) - started).total_seconds() > stop_after:
                break
            for due in subscriber.due_for_renewal(datetime.now(UTC)):
                _renew(subscriber, client, due, lease_seconds)
            try:
                push = pushes.get(timeout=0.5)
            except queue.Empty:
                continue
            if not _ingest(push, settings):
                break


def _renew(subscriber: Subscriber, client: httpx.Client, due: Any, lease_seconds: int) -> None:
    try:
        subscriber.subscribe(client, due.source_id, due.hub, due.topic, lease_seconds)
    except Exception as exc:  # noqa: BLE001 - retried at the next check; polling covers the gap
        log.warning("websub: renewal of %s failed: %s", due.source_id, exc)


def _ingest(push: Push, settings: FeedlakeSettings) -> bool:
    """Ingest one push; False when a SIGTERM arrived meanwhile (the endpoint then stops)."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "pushed"
        path.write_bytes(push.body)
        try:
            rows = push_flow(push.source_id, str(path), settings.sources, settings.lake)
            log.info("websub: push for %s committed %d rows", push.source_id, rows)
        except TerminationSignal:
            # While a flow runs, Prefect's own SIGTERM handler raises this instead of ours. The
            # push's run is committed, or the lake's recovery rolls it back: stop, as asked.
            log.info("websub: stopping (SIGTERM during the push for %s)", push.source_id)
            return False
        except Exception as exc:  # noqa: BLE001 - a bad push must not stop the endpoint
            log.warning("websub: push for %s failed: %s", push.source_id, exc)
    return True
