"""Where things live in a lake: every key feedlake reads or writes is built here.

articles/                               the articles Delta table:
  _delta_log/                           its log (commits, checkpoints): what readers read
  published_month=<YYYY-MM>/part-<digest>.parquet   its data files, sorted by source and time
_quarantine/                            the quarantine Delta table (rejected rows + reasons), same shape
_validation_results/                    a Delta table: one row per source and run, its check counts
_validation/<run_id>.json, .html        one run's validation record in full and its data-quality page
_raw/<YYYY-MM-DD>/<run_id>.warc.gz      a run's raw capture: WARC of every feed and page it fetched
_txn/<run_id>/intent.json, keys.parquet  a run in flight (its whole plan); gone once state is applied
_state/feeds/<source_id>.json            ETag / Last-Modified per source
_state/health.json                       every source's health (last success, failures, next try)
_state/seen/<source_id>.parquet          committed (article_id:content_hash) keys of a source; once
                                         split, an empty pointer whose metadata names k (buckets_log2);
                                         its metadata may also mark the index for rebuild
_state/seen/<source_id>/delta.parquet    keys merged since the last fold (sources past 4,096 keys)
_state/seen/<source_id>/k<k>/b<hex>.parquet  bucket of the keys whose article id starts with those
                                         k bits (past 16,384 keys; live once the pointer names k)
_state/damaged/<key>.<utc-stamp>         a copy of a damaged object, kept for a person to look at
_lease.json                              the lease of the run that holds the lake
_commits/                                the commit log of lakes before Delta (read by ``migrate``)
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

ARTICLES = "articles"
QUARANTINE = "_quarantine"
VALIDATION_RESULTS = "_validation_results"
# The commit log of lakes written before the tables were Delta tables (feedlake migrate reads it).
LEGACY_COMMITS = "_commits"
DELTA_LOG = "_delta_log"
TXN = "_txn"
VALIDATION = "_validation"
RAW = "_raw"
LEASE = "_lease.json"


def data_file_key(table: str, partitions: tuple[tuple[str, str], ...], digest: str) -> str:
    """Key of a Parquet data file in a partition folder of ``table``."""
    folders = "/".join(f"{name}={value}" for name, value in partitions)
    return f"{table}/{folders}/part-{digest}.parquet"


def validation_key(run_id: str, extension: str = "json") -> str:
    """Key of a run's validation results (``json``) or data-quality page (``html``)."""
    return f"{VALIDATION}/{run_id}.{extension}"


# A run id starts with its UTC start time in this format, so run ids sort by start time.
RUN_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def new_run_id() -> str:
    """A run id that sorts by start time: ``20261123T205959Z-0412779c``.

    The suffix is the start's microseconds (six digits) and one random byte, so runs of one lake
    (which hold its lease in turn) sort by start even within a second: readers order an article's
    versions by run id last.
    """
    now = datetime.now(UTC)
    return now.strftime(RUN_STAMP_FORMAT) + f"-{now.microsecond:06d}" + secrets.token_hex(1)


_RUN_STAMP = re.compile(r"[0-9]{8}T[0-9]{6}Z")


def raw_capture_key(run_id: str) -> str:
    """Key of a run's raw capture (WARC), in the folder of the UTC day its run id's stamp names."""
    problem = f"run id {run_id!r} does not start with a UTC stamp like 20261123T205959Z"
    stamp = run_id[:16]
    if _RUN_STAMP.fullmatch(stamp) is None or "/" in run_id:
        raise ValueError(problem)
    try:
        started = datetime.strptime(stamp, RUN_STAMP_FORMAT)
    except ValueError:  # digits in the stamp's shape that name no time (month 13)
        raise ValueError(problem) from None
    return f"{RAW}/{started:%Y-%m-%d}/{run_id}.warc.gz"


def intent_key(run_id: str) -> str:
    """Key of the intent a run writes before any data file."""
    return f"{TXN}/{run_id}/intent.json"


def keys_key(run_id: str) -> str:
    """Key of the side file listing the article keys a run commits."""
    return f"{TXN}/{run_id}/keys.parquet"


def feed_state_key(source_id: str) -> str:
    """Key of a source's HTTP validators (ETag, Last-Modified)."""
    return f"_state/feeds/{source_id}.json"


def seen_key(source_id: str) -> str:
    """Key of a source's index of committed article keys."""
    return f"_state/seen/{source_id}.parquet"


def seen_delta_key(source_id: str) -> str:
    """Key of the keys a big seen index took in since its last fold into the root or buckets."""
    return f"_state/seen/{source_id}/delta.parquet"


def seen_bucket_key(source_id: str, level: int, bucket: int) -> str:
    """Key of bucket ``bucket`` of 2^``level`` in a split seen index (hex, fixed width per level)."""
    return f"_state/seen/{source_id}/k{level}/b{bucket:0{max(1, (level + 3) // 4)}x}.parquet"


_BUCKET = re.compile(r"k(?P<level>[0-9]{1,2})/b(?P<bucket>[0-9a-f]+)\.parquet")


def seen_bucket_of(source_id: str, key: str) -> tuple[int, int] | None:
    """The (level, bucket) a key names if it is a bucket of ``source_id``'s seen index, else None."""
    folder = f"_state/seen/{source_id}/"
    found = _BUCKET.fullmatch(key[len(folder) :]) if key.startswith(folder) else None
    if found is None:
        return None
    level, bucket = int(found["level"]), int(found["bucket"], 16)
    if not 1 <= level <= 32 or key != seen_bucket_key(source_id, level, bucket):
        return None
    return level, bucket
