"""Pages to try again: the rows whose page failed for a reason that may pass, kept between polls.

A page that timed out, or answered 429 or 5xx, leaves its row with the feed's text; the next
``page_attempts`` polls try it again. The rows waiting for a retry (as committed, plus
``page_retries``: the later polls that tried it so far) are one Parquet object per run that changed them,
``_pages/<run_id>.parquet``, committed with that run (one of ``commit_run``'s ``reports``) and
rolled back with it: a crash never leaves a retry without its row or a row retried twice. The
last committed object (by commit time) is the list; runs hold the lake's lease, so they never race
for it.
"""

from __future__ import annotations

import io
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.commit import CommitRecord
from feedlake.tasks.lake.layout import commit_key
from feedlake.tasks.lake.storage import ObjectStore

log = logging.getLogger(__name__)

PAGES = "_pages"
RETRIES = "page_retries"
RETRY_SCHEMA = ARTICLE_SCHEMA.append(pa.field(RETRIES, pa.int32(), nullable=False))


def page_retries_key(run_id: str) -> str:
    """Key of the retry list a run committed."""
    return f"{PAGES}/{run_id}.parquet"


def read_page_retries(store: ObjectStore) -> pa.Table:
    """The rows waiting for a page retry, as the last run to commit a list left them (empty if none).

    "Last" is by commit time, not run id: a run's id is minted before it waits for the lease, so
    runs can commit out of id order (each reads the list under the lease, so the last committed
    list is built on every earlier one). A list whose commit record is missing or damaged is not
    committed as far as this reader knows, and is skipped (the record is recovery's business). A
    damaged list raises DamagedObjectError naming its own key (the poll then sets it aside and
    starts afresh: those pages are not retried, and their rows keep the feed's text).
    """
    committed: list[tuple[str, str]] = []
    # Pruning keeps this folder to a list or two: one GET of each one's commit record, never a LIST
    # of _commits/ (which grows with every run).
    for key in store.list(f"{PAGES}/"):
        if not key.endswith(".parquet"):
            continue
        run_id = key.removeprefix(f"{PAGES}/").removesuffix(".parquet")
        record_key = commit_key(run_id)
        raw_record = store.get(record_key)
        if raw_record is None:
            continue  # a run in flight, or one that crashed before its commit point
        try:
            record = CommitRecord.from_json(raw_record, record_key)
        except DamagedObjectError:
            log.warning("page retries: %s is not readable; its list %s is skipped", record_key, key)
            continue
        if key in record.reports:
            committed.append((record.committed_at, key))
    for _, key in sorted(committed, reverse=True):
        raw = store.get(key)
        if raw is None:
            continue
        try:
            table = pq.read_table(io.BytesIO(raw))
            return table.select(RETRY_SCHEMA.names).cast(RETRY_SCHEMA)
        except (pa.ArrowException, KeyError, OSError) as exc:
            raise DamagedObjectError(key, f"not a page retry list ({exc})") from None
    return RETRY_SCHEMA.empty_table()


def page_retries_object(run_id: str, rows: pa.Table) -> tuple[str, bytes]:
    """The (key, body) of a run's retry list, to commit with the run."""
    sink = io.BytesIO()
    pq.write_table(rows.select(RETRY_SCHEMA.names).cast(RETRY_SCHEMA), sink)
    return page_retries_key(run_id), sink.getvalue()


def prune_page_retries(store: ObjectStore, run_id: str) -> int:
    """Delete every retry list but ``run_id``'s, once ``run_id``'s is committed; how many.

    Runs hold the lake's lease in turn, so the list just committed is the last: the others are dead
    weight (a crash while pruning leaves some behind, harmlessly, for the next prune).
    """
    others = [key for key in store.list(f"{PAGES}/") if key != page_retries_key(run_id)]
    for key in others:
        store.delete(key)
    return len(others)
