"""feedlake's data contracts: the Arrow article schema and its expectation suites."""

from feedlake.schemas.article import (
    ARTICLE_SCHEMA,
    DATE_SOURCES,
    FILE_SCHEMA,
    PARTITION_COLUMN,
    PARTITION_COLUMNS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
    quarantine_schema,
    table_schema,
)

__all__ = [
    "ARTICLE_SCHEMA",
    "DATE_SOURCES",
    "FILE_SCHEMA",
    "PARTITION_COLUMN",
    "PARTITION_COLUMNS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_KEY",
    "quarantine_schema",
    "table_schema",
]
