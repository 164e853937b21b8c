"""Prefect events a poll emits, for automations and deployment triggers downstream.

- ``feedlake.batch.committed``: one per source whose new rows were committed (rows, the run's
  article files and month partitions, the articles table version, run id, lake);
- ``feedlake.source.quarantined``: one per source with rows held in ``_quarantine/``;
- ``feedlake.source.failed``: one per source whose poll ended in error (kind and reason).

Every event's resource is the source (``feedlake.source.<id>``), so triggers can count per source
(``for_each: prefect.resource.id``). Emitting never fails a run: the data is committed already.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prefect.events import emit_event

from feedlake.tasks.lake.commit import CommitRecord
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.values import SourceReport

log = logging.getLogger(__name__)

BATCH_COMMITTED = "feedlake.batch.committed"
SOURCE_QUARANTINED = "feedlake.source.quarantined"
SOURCE_FAILED = "feedlake.source.failed"


def source_resource(source_id: str, lake: str) -> dict[str, str]:
    """The Prefect resource of a source's events."""
    return {
        "prefect.resource.id": f"feedlake.source.{source_id}",
        "prefect.resource.name": source_id,
        "feedlake.source_id": source_id,
        "feedlake.lake": lake,
    }


def emit_poll_events(lake: str, record: CommitRecord, reports: Iterable[SourceReport]) -> int:
    """Emit the run's events; return how many were emitted."""
    # A data file holds every source of its month: the run's files are shared by its sources.
    keys = [committed.key for committed in record.files if committed.table == ARTICLES]
    partitions = sorted({key.rsplit("/", 1)[0].removeprefix(f"{ARTICLES}/") for key in keys})
    version = record.table_versions.get(ARTICLES)
    emitted = 0
    for report in reports:
        resource = source_resource(report.source_id, lake)
        base = {"source_id": report.source_id, "run_id": record.run_id, "lake": lake}
        events = []
        if report.new and keys:
            payload = {
                "rows": report.new,
                "files": len(keys),
                "partitions": partitions,
                "table_version": version,
            }
            events.append((BATCH_COMMITTED, {**base, **payload}))
        if report.rejected:
            events.append((SOURCE_QUARANTINED, {**base, "rows": report.rejected}))
        if report.status == "error":
            events.append((SOURCE_FAILED, {**base, "kind": report.error_kind, "error": report.error}))
        for name, payload in events:
            try:
                emit_event(event=name, resource=resource, payload=payload)
                emitted += 1
            except Exception as exc:  # noqa: BLE001 - an event is a notice; the run's data is committed
                log.warning("could not emit %s for %s: %s", name, report.source_id, exc)
    return emitted
