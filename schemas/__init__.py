"""feedlake's data contracts: the Arrow article schema and its expectation suites."""

from schemas.article import (
    ARTICLE_SCHEMA,
    DATE_SOURCES,
    FILE_SCHEMA,
    PARTITION_COLUMNS,
    SCHEMA_VERSION,
    SCHEMA_VERSION_KEY,
)

__all__ = [
    "ARTICLE_SCHEMA",
    "DATE_SOURCES",
    "FILE_SCHEMA",
    "PARTITION_COLUMNS",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_KEY",
]
