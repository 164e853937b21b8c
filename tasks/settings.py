"""The one settings object, read from ``FEEDLAKE_*`` environment variables at the entry point."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeedlakeSettings(BaseSettings):
    """Every knob of a feedlake run; built once by the CLI or flow and passed down."""

    model_config = SettingsConfigDict(env_prefix="FEEDLAKE_", extra="ignore")

    lake: str = Field("./lake", description="Lake URL: ./path, file:///abs/path or s3://bucket/prefix")
    sources: str = Field("infra/sources/default.yaml", description="Sources file (YAML)")
    concurrency: int = Field(16, ge=1, le=1024, description="Feeds fetched at the same time")
    per_host_concurrency: int = Field(2, ge=1, le=64, description="Concurrent requests to one host")
    per_host_min_gap_seconds: float = Field(
        0.25, ge=0, description="Least time between two requests to one host"
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection")
    read_timeout: float = Field(30.0, gt=0, description="Seconds between two bytes of a response")
    total_timeout: float = Field(60.0, gt=0, description="Seconds for a whole fetch, body included")
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="Largest feed body accepted")
    page_max_bytes: int = Field(5 * 1024 * 1024, ge=1024, description="Largest article page accepted")
    page_concurrency: int = Field(16, ge=1, le=1024, description="Article pages fetched at the same time")
    page_attempts: int = Field(3, ge=0, le=20, description="Polls that try a failed page again")
    robots_cache_seconds: float = Field(3600.0, ge=0, description="How long a host's robots.txt is trusted")
    extract_processes: int = Field(
        0, ge=0, le=256, description="Processes extracting article bodies (0: one per core)"
    )
    parse_processes: int = Field(
        0,
        ge=0,
        le=256,
        description="Processes parsing the feeds of a poll of many (0: one per core, 1: in the poll's own)",
    )
    connect_to: str = Field(
        "",
        description="host:port=ip:port,...: connect there, not to the resolved host (curl --connect-to)",
    )
    fetch_attempts: int = Field(3, ge=1, le=10, description="Tries per feed on transient errors")
    backoff_seconds: float = Field(0.5, ge=0, description="First retry delay; doubles, with jitter")
    failure_backoff_seconds: float = Field(300.0, ge=0, description="First wait after a source fails")
    failure_backoff_cap_seconds: float = Field(86400.0, ge=0, description="Longest wait for a failing source")
    allow_private_networks: bool = Field(
        False, description="Allow feed URLs on loopback/private networks (never cloud metadata)"
    )
    contact_url: str = Field(
        "https://github.com/feedlake/feedlake",
        description="Where feed publishers can reach whoever runs this poller (sent in User-Agent)",
    )

    @property
    def user_agent(self) -> str:
        """The User-Agent sent to every feed server: names feedlake and a contact URL."""
        return f"feedlake/0.1 (+{self.contact_url})"

    lease_seconds: float = Field(900.0, gt=0, description="How long a run's lake lease lasts")
    lease_wait_seconds: float = Field(60.0, ge=0, description="How long a run waits for a busy lake")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint; default: AWS_ENDPOINT_URL, else AWS itself"
    )
    s3_region: str | None = Field(None, description="Region; default: AWS_REGION / AWS_DEFAULT_REGION")
    s3_addressing_style: Literal["auto", "path", "virtual"] = Field(
        "auto", description="Bucket in the host name (virtual) or in the path (path-style)"
    )
    s3_max_attempts: int = Field(6, ge=1, le=20, description="Tries per S3 request (500/503/SlowDown/resets)")
    commit_retries: int = Field(3, ge=0, le=10, description="Retries of write/commit (transient errors)")
    compact_target_mb: float = Field(128.0, gt=0, description="Target size of a compacted file, MiB")
    suite: str | None = Field(
        None, description="Expectation suite file (default: schemas/expectations/articles_v2.json)"
    )
    default_poll_interval_seconds: int = Field(
        900, ge=30, description="How often `feedlake serve` polls sources that set no poll_interval"
    )
    compact_after_batches: int = Field(
        24, ge=1, description="Committed batches of one source (within a day) that trigger its compaction"
    )
    compact_cron: str = Field("17 3 * * *", description="Cron schedule of the compaction deployment (UTC)")
    wayback_url: str = Field(
        "https://web.archive.org", description="Wayback Machine base URL (CDX API and raw snapshots)"
    )
    backfill_workers: int = Field(
        0, ge=0, le=256, description="Parse processes for backfill (0: one per core)"
    )
    backfill_batch_rows: int = Field(50_000, ge=100, description="Rows per backfill commit (bounds memory)")
    backfill_max_pages: int = Field(10_000, ge=1, description="Most archive or paged documents to follow")
    row_group_rows: int = Field(64 * 1024, ge=1024, description="Rows per Parquet row group")
    home: str = Field(
        "~/.feedlake",
        description="Where `feedlake serve` keeps its own Prefect server's database and logs",
    )
    serve_port: int = Field(
        4200, ge=0, le=65535, description="Port of the Prefect server that `feedlake serve` starts (0: any)"
    )
    history_days: float = Field(
        14.0, gt=0, description="Days of flow runs, logs and events kept in the Prefect database"
    )
    maintenance_cron: str = Field(
        "41 4 * * *", description="Cron schedule of the Prefect-history cleanup deployment (UTC)"
    )
    stale_after_intervals: float = Field(
        3.0, gt=1, description="A source whose last success is older than this many intervals is stale"
    )


def settings_with(**values: object) -> FeedlakeSettings:
    """Settings from the environment, with every given value that is not None put over them."""
    return FeedlakeSettings().model_copy(update={k: v for k, v in values.items() if v is not None})
