"""Builders of valid article rows for tests that need a table but not a feed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from feedlake.schemas.article import ARTICLE_SCHEMA
from tests.support.paths import CASES


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
        capture_source=["live"] * n,
        captured_at=[datetime(2024, 12, 10, tzinfo=UTC)] * n,
        published_date=[d.date() for d in days],
    )
    return pa.table(columns, schema=ARTICLE_SCHEMA)


def corpus_rows(relative_path: str, source_id: str, run_id: str = "r") -> pa.Table:
    """A real captured feed under tests/cases, parsed and normalized as a poll would."""
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    url = f"http://feeds.example.test/{relative_path}"
    fetched = FetchResult(
        source_id,
        url,
        datetime(2026, 11, 23, tzinfo=UTC),
        status=200,
        body=(CASES / relative_path).read_bytes(),
    )
    batch = normalize_feed(parse_feed(fetched), Source(source_id, url, source_id, "test", "news"), run_id)
    return pa.Table.from_batches([batch])


def replace_column(table: pa.Table, name: str, values: list[object]) -> pa.Table:
    """``table`` with one column's values replaced (same type)."""
    index = table.schema.get_field_index(name)
    field = table.schema.field(name)
    return table.set_column(index, field, pa.array(values, field.type))
