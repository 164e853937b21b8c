"""Pages to try again: the rows whose page failed for a reason that may pass, kept between polls.

A page that timed out, or answered 429 or 5xx, leaves its row with the feed's text; the next
``page_attempts`` polls try it again. The rows waiting for a retry (as committed, plus
``page_retries``: the later polls that tried it so far) are one Parquet object per run that changed them,
``_pages/<run_id>.parquet``, committed with that run (one of ``commit_run``'s ``reports``) and
rolled back with it: a crash never leaves a retry without its row or a row retried twice. The
last committed object (by commit order) is the list; runs hold the lake's lease, so they never race
for it.
"""

from __future__ import annotations

import io
import logging

import pyarrow as pa
import pyarrow.parquet as pq

from feedlake.schemas.article import ARTICLE_SCHEMA
from feedlake.tasks.errors import DamagedObjectError
from feedlake.tasks.lake.commit import run_in_flight
from feedlake.tasks.lake.delta_table import RUN_ID_KEY, commit_history
from feedlake.tasks.lake.layout import ARTICLES
from feedlake.tasks.lake.storage import ObjectStore

log = logging.getLogger(__name__)

PAGES = "_pages"
RETRIES = "page_retries"
RETRY_SCHEMA = ARTICLE_SCHEMA.append(pa.field(RETRIES, pa.int32(), nullable=False))
# Commits of the articles table searched for the order of several committed lists (a crash
# between a commit and its prune leaves two; more than this many commits apart never happens).
HISTORY_LOOKBACK = 50


def page_retries_key(run_id: str) -> str:
    """Key of the retry list a run committed."""
    return f"{PAGES}/{run_id}.parquet"


def read_page_retries(store: ObjectStore) -> pa.Table:
    """The rows waiting for a page retry, as the last run to commit a list left them (empty if none).

    A list whose run still has an intent is in flight or crashed before recovery: it is not
    committed as far as this reader knows, and is skipped. Of the committed lists (normally one:
    each commit prunes the others), "last" is by commit, not run id: a run's id is minted before it
    waits for the lease, so runs can commit out of id order. The articles table's recent history
    names the run of each commit; lists it does not name sort first, by run id. A damaged list
    raises DamagedObjectError naming its own key (the poll then sets it aside and starts afresh:
    those pages are not retried, and their rows keep the feed's text).
    """
    lists = {}
    for key in store.list(f"{PAGES}/"):
        run_id = key.removeprefix(f"{PAGES}/").removesuffix(".parquet")
        if key.endswith(".parquet") and not run_in_flight(store, run_id):
            lists[run_id] = key
    if not lists:
        return RETRY_SCHEMA.empty_table()
    order = {run_id: len(lists) for run_id in lists}
    if len(lists) > 1:
        for position, commit in enumerate(commit_history(store, ARTICLES, HISTORY_LOOKBACK)):
            run_id = str(commit.get(RUN_ID_KEY, ""))
            if run_id in order and order[run_id] == len(lists):
                order[run_id] = -position
    for run_id in sorted(lists, key=lambda r: (order[r], r), reverse=True):
        key = lists[run_id]
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
