"""The quarantine replay flow: re-validate held rows under the lake's lease and move those that pass."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from feedlake.flows.poll import transient_retrying
from feedlake.tasks.lake.layout import new_run_id
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.lake.transaction import lake_transaction
from feedlake.tasks.quality.report import quality_markdown
from feedlake.tasks.quarantine import ReplayResult, replay_quarantine
from feedlake.tasks.settings import settings_with
from feedlake.tasks.validate.suite import DEFAULT_SUITE
from feedlake.tasks.validate.validator import validator_for

replay_task = transient_retrying(replay_quarantine, "replay-quarantine", 2, [2, 10])


@flow(name="feedlake-quarantine-replay", persist_result=False)
def replay_flow(
    lake: str | None = None, source: str | None = None, suite: str | None = None, dry_run: bool = False
) -> ReplayResult:
    """Re-validate quarantined rows with the current suite; move those that pass into articles/."""
    logger = get_run_logger()
    settings = settings_with(lake=lake, suite=suite)
    validator = validator_for(Path(settings.suite) if settings.suite else DEFAULT_SUITE)
    store = open_store(settings.lake, settings)
    run_id = new_run_id()
    lease = lake_transaction(store, run_id, settings.lease_seconds, settings.lease_wait_seconds)
    with lease as recovered:
        for action in recovered:
            logger.warning("recovered the lake first: %s", action)
        result = replay_task(
            store,
            run_id,
            validator,
            row_group_rows=settings.row_group_rows,
            source_id=source,
            dry_run=dry_run,
        )
    if result.document is not None:
        create_markdown_artifact(
            quality_markdown(result.document), key="feedlake-quarantine-replay", description="Replay"
        )
    logger.info(
        "replay %s: %d held rows checked, %d moved to articles, %d still held%s",
        run_id,
        result.checked,
        result.moved,
        result.still_held,
        " (dry run)" if dry_run else "",
    )
    return result
