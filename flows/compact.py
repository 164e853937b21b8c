"""The maintenance flow: compact small files per partition, then vacuum, under the lake's lease."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from feedlake.flows.poll import transient_retrying
from feedlake.tasks.lake.compact import VACUUM_RETENTION_HOURS, PartitionCompaction, compact_lake, vacuum_lake
from feedlake.tasks.lake.layout import new_run_id
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.pipeline.summary import markdown_table
from feedlake.tasks.settings import settings_with

compact_task = transient_retrying(compact_lake, "compact", 2, [2, 10])
vacuum_task = transient_retrying(vacuum_lake, "vacuum", 2, [2, 10])


@flow(name="feedlake-compact", persist_result=False)
def compact_flow(
    lake: str | None = None,
    source: str | None = None,
    since: date | None = None,
    target_mb: float | None = None,
    vacuum_hours: int | None = VACUUM_RETENTION_HOURS,
) -> list[PartitionCompaction]:
    """Compact the tables' month partitions (``source``: the source whose batches triggered the run,
    logged only: a month's files hold every source) (from a date's month on, if given) as a new table
    version, then vacuum files older than ``vacuum_hours`` that no version names (None: no vacuum)."""
    logger = get_run_logger()
    if source:
        logger.info("triggered by the batches of source %s", source)
    settings = settings_with(lake=lake)
    target = int((target_mb or settings.compact_target_mb) * 1024 * 1024)
    store = open_store(settings.lake, settings)
    run_id = new_run_id()
    with lake_transaction(store, run_id, settings.lease_seconds, settings.lease_wait_seconds):
        done = compact_task(
            store,
            run_id,
            target_bytes=target,
            row_group_rows=settings.row_group_rows,
            since=since,
        )
        vacuumed = [] if vacuum_hours is None else vacuum_task(store, vacuum_hours)
    table = markdown_table(
        ("partition", "files before", "files after", "rows", "MB before", "MB after"),
        [
            (
                d.partition,
                str(d.files_before),
                str(d.files_after),
                str(d.rows),
                f"{d.bytes_before / 1e6:.2f}",
                f"{d.bytes_after / 1e6:.2f}",
            )
            for d in done
        ],
    )
    create_markdown_artifact(table, key="feedlake-compaction", description="Compaction")
    logger.info(
        "compacted %d partitions: %d files -> %d; vacuum deleted %d files",
        len(done),
        sum(d.files_before for d in done),
        sum(d.files_after for d in done),
        len(vacuumed),
    )
    return done
