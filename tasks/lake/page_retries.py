"""Pages to try again: the rows whose page failed for a reason that may pass, kept between polls.

A page that timed out, or answered 429 or 5xx, leaves its row with the feed's text; the next
``page_attempts`` polls try it again. The rows waiting for a retry (as committed, plus
``page_retries``: the later polls that tried it so far) are one Parquet object per run that changed them,
``_pages/<run_id>.parquet``, committed with that run (one of ``commit_run``'s ``reports``) and
rolled back with it: a crash never leaves a retry without its row or a row retried twice. The
latest committed object is the list; runs hold the lake's lease, so they never race for it.
"""

from __future__ import annotations

import io
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.commit import CommitRecord
from feedlake.tasks.lake.layout import COMMITS, commit_key
from feedlake.tasks.lake.storage import ObjectStore

log = logging.getLogger(__name__)

PAGES = "_pages"
RETRIES = "page_retries"
RETRY_SCHEMA = ARTICLE_SCHEMA.append(pa.field(RETRIES, pa.int32(), nullable=False))


def page_retries_key(run_id: str) -> str:
    """Key of the retry list a run committed."""
    return f"{PAGES}/{run_id}.parquet"


def read_page_retries(store: ObjectStore) -> pa.Table:
    """The rows waiting for a page retry, as the latest committed run left them (empty if none).

    A damaged list raises DamagedObjectError naming its key (the poll then starts a fresh list:
    those pages are not retried, and their rows keep the feed's text, as they already have).
    """
    runs = sorted((key for key in store.list(f"{PAGES}/") if key.endswith(".parquet")), reverse=True)
    commits = set(store.list(f"{COMMITS}/"))
    for key in runs:
        run_id = key.removeprefix(f"{PAGES}/").removesuffix(".parquet")
        record_key = commit_key(run_id)
        raw_record = store.get(record_key) if record_key in commits else None
        if raw_record is None or key not in CommitRecord.from_json(raw_record, record_key).reports:
            continue  # a run in flight, or one that crashed before its commit point
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
    """Delete the retry lists of runs before ``run_id`` (once ``run_id``'s is committed); how many.

    Only the latest committed list counts, so the older ones are dead weight; a crash while pruning
    leaves some behind, harmlessly, for the next prune.
    """
    older = [key for key in store.list(f"{PAGES}/") if key < page_retries_key(run_id)]
    for key in older:
        store.delete(key)
    return len(older)
