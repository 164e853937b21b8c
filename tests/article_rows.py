"""Builders of valid article rows for tests that need a table but not a feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from schemas.article import ARTICLE_SCHEMA


def make_rows(source_id: str, n: int, run_id: str = "r") -> pa.Table:
    """n valid article rows for one source, spread over two days."""
    days = [datetime(2024, 12, 8 + i % 2, 12, tzinfo=UTC) + timedelta(seconds=i) for i in range(n)]
    columns = {f.name: [None] * n for f in ARTICLE_SCHEMA}
    columns.update(
        article_id=[f"{source_id}-{i}" for i in range(n)],
        source_id=[source_id] * n,
        feed_url=["http://example.test/feed"] * n,
        url=[f"http://example.test/{i}" for i in range(n)],
        title=[f"t{i}" for i in range(n)],
        authors=[[] for _ in range(n)],
        categories=[[] for _ in range(n)],
        enclosures=[[] for _ in range(n)],
        published_at=days,
        date_source=["explicit_offset"] * n,
        fetched_at=[datetime(2024, 12, 10, tzinfo=UTC)] * n,
        content_hash=[f"h{i}" for i in range(n)],
        run_id=[run_id] * n,
        published_date=[d.date() for d in days],
    )
    return pa.table(columns, schema=ARTICLE_SCHEMA)
