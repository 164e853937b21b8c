"""Article schema, version 2: the one Arrow shape every article takes in feedlake.

Version 2 adds, at the end, where the article's text came from (``content_source``) and how its
page fetch went (``page_url``, ``page_status``, ``page_fetched_at``), and the ``date_source`` value
``page``; rows written under version 1 read with those columns null.

Field-by-field documentation lives in ``schemas/README.md``; the field metadata below carries the
same one-line descriptions so that they travel inside every Parquet file.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = "2"
SCHEMA_VERSION_KEY = b"feedlake.schema_version"

# Timestamps are microseconds in UTC: Athena, Spark and older Hive readers cannot read nanoseconds.
TIMESTAMP = pa.timestamp("us", tz="UTC")

# How published_at was obtained, from most to least trustworthy ("page": the feed gave no date,
# the article's page did).
DATE_SOURCES = ("explicit_offset", "named_zone", "assumed_utc", "missing", "page")
PAGE_DATE_SOURCE = "page"
# Where content_text came from: the feed's own text, or the article's page (full text).
CONTENT_SOURCES = ("feed", "page")

# Where the feed document holding the row came from: polled now, the publisher's own archive or
# paged history, a Wayback Machine capture, or a captured file (feed document or WARC record).
CAPTURE_SOURCES = ("live", "archive", "wayback", "file")

ENCLOSURE = pa.struct(
    [
        pa.field("url", pa.string(), nullable=False),
        pa.field("type", pa.string()),
        pa.field("length", pa.int64()),
    ]
)


def _field(name: str, type_: pa.DataType, doc: str, *, nullable: bool = True) -> pa.Field:
    return pa.field(name, type_, nullable=nullable, metadata={b"doc": doc.encode()})


ARTICLE_SCHEMA = pa.schema(
    [
        _field(
            "article_id",
            pa.string(),
            "Stable id: hash of source_id + guid (else URL)",
            nullable=False,
        ),
        _field("source_id", pa.string(), "Source slug from the sources file", nullable=False),
        _field("feed_url", pa.string(), "URL the feed was fetched from", nullable=False),
        _field("guid", pa.string(), "Entry id as the feed gave it (guid / atom:id / id)"),
        _field("url", pa.string(), "Canonical absolute article URL, tracking params dropped"),
        _field("title", pa.string(), "Title as plain text"),
        _field("summary_text", pa.string(), "The feed's own summary (or teaser) as plain text"),
        _field(
            "content_text",
            pa.string(),
            "The article's full body as plain text, paragraphs kept (the page's, else the feed's)",
        ),
        _field("content_html", pa.string(), "The same body as sanitized HTML"),
        _field("authors", pa.list_(pa.string()), "Author names"),
        _field("categories", pa.list_(pa.string()), "Categories / tags"),
        _field("enclosures", pa.list_(ENCLOSURE), "Attached media: url, type, length"),
        _field("language", pa.string(), "Language code (entry, feed, or source default)"),
        _field("published_at", TIMESTAMP, "Publication time, UTC"),
        _field("updated_at", TIMESTAMP, "Last update time, UTC"),
        _field("published_raw", pa.string(), "Publication date string as the feed gave it"),
        _field(
            "date_source",
            pa.string(),
            "explicit_offset | named_zone | assumed_utc | missing | page",
            nullable=False,
        ),
        _field("fetched_at", TIMESTAMP, "When feedlake fetched the feed, UTC", nullable=False),
        _field(
            "content_hash",
            pa.string(),
            "Hash of title, url, text and html: detects edits",
            nullable=False,
        ),
        _field("run_id", pa.string(), "Id of the run that wrote the row", nullable=False),
        _field(
            "capture_source",
            pa.string(),
            "Where the feed document came from: live | archive | wayback | file",
            nullable=False,
        ),
        _field(
            "captured_at",
            TIMESTAMP,
            "When that document was captured (fetch time, archive snapshot or file time), UTC",
            nullable=False,
        ),
        _field("content_source", pa.string(), "Where content_text came from: feed | page (v2)"),
        _field("page_url", pa.string(), "The article page's URL after redirects, when fetched (v2)"),
        _field(
            "page_status",
            pa.string(),
            "How the page fetch went: ok, not_modified, robots_disallowed, http_<code>, timeout, "
            "too_large, refused, not_an_article, error, or skipped (v2)",
        ),
        _field("page_fetched_at", TIMESTAMP, "When the page was fetched, UTC (v2)"),
        _field(
            "published_date",
            pa.date32(),
            "Partition: date of published_at, else of fetched_at",
            nullable=False,
        ),
    ],
    metadata={SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()},
)

# The tables' partition column: the month of published_date ("2026-11"). Month partitions keep a
# first poll of a whole corpus to a few hundred files and a steady-state poll of any number of feeds
# to a handful, while readers still prune by date; inside a month, files are sorted by source_id and
# published_at, and Delta's per-file statistics let readers skip files by source. The column is
# derived at write time and lives in the object path and the Delta log, not inside data files.
PARTITION_COLUMN = "published_month"
PARTITION_COLUMNS = (PARTITION_COLUMN,)
PARTITION_FIELD = pa.field(
    PARTITION_COLUMN,
    pa.string(),
    nullable=False,
    metadata={b"description": b"Partition: the month (YYYY-MM) of published_date"},
)

# Data files hold every article column (the partition column is in their path).
FILE_SCHEMA = ARTICLE_SCHEMA


def table_schema(row_schema: pa.Schema, partition: pa.Field = PARTITION_FIELD) -> pa.Schema:
    """A Delta table's schema for rows of ``row_schema``: those columns plus the partition column."""
    return row_schema.append(partition)


def published_months(published_date: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The partition value of each row: its published_date as ``YYYY-MM``."""
    months = pc.strftime(published_date.cast(pa.timestamp("s")), format="%Y-%m")
    return months.combine_chunks() if isinstance(months, pa.ChunkedArray) else months


# The quarantine table: the article columns plus why a row is held and at which stage.
QUARANTINE_FIELDS = (
    pa.field("failed_expectations", pa.list_(pa.string()), nullable=False),
    pa.field("stage", pa.string(), nullable=False),
)


def quarantine_schema(article_schema: pa.Schema) -> pa.Schema:
    """The quarantine table's schema: the article schema plus the failure columns."""
    return pa.schema([*article_schema, *QUARANTINE_FIELDS], metadata=article_schema.metadata)


def row_keys(batch: pa.RecordBatch | pa.Table) -> pa.Array:
    """One string key per row, ``article_id:content_hash``: what the seen index holds."""
    keys = pc.binary_join_element_wise(batch.column("article_id"), batch.column("content_hash"), ":")
    return keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
