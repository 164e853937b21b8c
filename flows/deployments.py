"""Every deployment, declared once in code: polls per interval group, compaction, backfill, history pruning.

``feedlake serve`` serves them all from one long-lived process (Prefect's ``serve``): no separate
server or worker is needed on one machine. The same list deploys to a work pool when a Prefect
server and workers run the show (see the README, "Operating it").
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.events import DeploymentEventTrigger

from feedlake.flows.backfill import backfill_flow
from feedlake.flows.compact import compact_flow
from feedlake.flows.events import BATCH_COMMITTED
from feedlake.flows.maintenance import prune_history_flow
from feedlake.flows.poll import poll_flow
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import load_sources


def interval_label(seconds: int) -> str:
    """``900`` -> ``15m``: the suffix of a poll deployment's name."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def poll_groups(settings: FeedlakeSettings) -> dict[int, list[str]]:
    """Enabled source ids by poll interval (their own, else the default)."""
    groups: dict[int, list[str]] = defaultdict(list)
    for source in load_sources(settings.sources, dict(os.environ)):
        if source.enabled:
            groups[source.poll_interval_seconds or settings.default_poll_interval_seconds].append(source.id)
    return dict(sorted(groups.items()))


def build_deployments(settings: FeedlakeSettings) -> list[Any]:
    """The runner deployments for this sources file and lake."""
    common = {"sources": settings.sources, "lake": settings.lake}
    deployments = []
    for seconds, ids in poll_groups(settings).items():
        deployments.append(
            poll_flow.to_deployment(
                name=f"poll-every-{interval_label(seconds)}",
                interval=timedelta(seconds=seconds),
                parameters={**common, "poll_interval": seconds},
                # One run per group at a time: a tick that finds the last poll still running is
                # cancelled, not queued, so a slow poll never builds a backlog (the lake's lease also
                # keeps any two writers apart).
                concurrency_limit=ConcurrencyLimitConfig(
                    limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
                ),
                description=f"Poll {len(ids)} sources every {interval_label(seconds)}: {', '.join(ids)}",
                tags=["feedlake", "poll"],
            )
        )
    # The maintenance deployments: one run at a time each, tagged by what they do.
    single: dict[str, Any] = {"concurrency_limit": 1}
    history = f"Delete flow runs older than {settings.history_days:g} days from Prefect's database"
    deployments += [
        compact_flow.to_deployment(
            "compact",
            cron=settings.compact_cron,
            parameters={"lake": settings.lake},
            triggers=[compaction_trigger(settings.compact_after_batches)],
            description="Compact every partition nightly, and a source after it committed many batches",
            tags=["feedlake", "compact"],
            **single,
        ),
        backfill_flow.to_deployment(
            "backfill",
            parameters=common,
            description="Backfill one source's history on demand (parameter: source)",
            tags=["feedlake", "backfill"],
            **single,
        ),
        prune_history_flow.to_deployment(
            "prune-history",
            cron=settings.maintenance_cron,
            parameters={"days": settings.history_days},
            description=history,
            tags=["feedlake", "maintenance"],
            **single,
        ),
    ]
    return deployments


def compaction_trigger(batches: int) -> DeploymentEventTrigger:
    """Run compaction of a source once it has committed ``batches`` batches within a day."""
    return DeploymentEventTrigger(
        name=f"compact a source after {batches} committed batches",
        expect={BATCH_COMMITTED},
        match={"prefect.resource.id": "feedlake.source.*"},
        for_each={"prefect.resource.id"},
        threshold=batches,
        within=timedelta(days=1),
        parameters={"source": "{{ event.resource['feedlake.source_id'] }}"},
    )
