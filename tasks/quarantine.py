"""The quarantine table: read what is held, and replay it through the current suite, exactly once.

Replay re-validates every held row (of one source, if asked) with the suite as it is now, grouped
in batches by source and original run. Rows that now pass move to ``articles/``; every quarantine
file that held one of them is replaced by a file of its remaining rows. One run commits the
quarantine's new and removed files, then the moved rows to ``articles`` (recovery finishes a run
either table holds), so after a crash and the next run's recovery each row is in exactly one of
the two tables, and a second replay finds nothing more to move. Rows held at stage ``normalize``
(items that could not be normalized) are not replayed: they hold raw text, not an article.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.schemas.article import ARTICLE_SCHEMA, quarantine_schema
from feedlake.tasks.errors import StoreError
from feedlake.tasks.lake.commit import commit_run
from feedlake.tasks.lake.delta_table import live_files
from feedlake.tasks.lake.layout import ARTICLES, QUARANTINE
from feedlake.tasks.lake.storage import ObjectStore
from feedlake.tasks.lake.write import KEY_COLUMNS, plan_run_files
from feedlake.tasks.normalize.articles import NORMALIZE_STAGE
from feedlake.tasks.quality.report import quality_objects, validation_document
from feedlake.tasks.quality.results_table import validation_rows
from feedlake.tasks.validate.validator import ArticleValidator, SourceQuality

log = logging.getLogger(__name__)

QUARANTINE_SCHEMA = quarantine_schema(ARTICLE_SCHEMA)
FILE_COLUMN = "file"


@dataclass(frozen=True)
class ReplayResult:
    """What a replay found and did."""

    run_id: str
    checked: int = 0
    moved: int = 0
    still_held: int = 0
    files_replaced: int = 0
    by_source: Mapping[str, SourceQuality] = field(default_factory=dict)
    committed: bool = False
    document: Mapping[str, Any] | None = None


def read_quarantine(store: ObjectStore, source_id: str | None = None) -> pa.Table:
    """Every live quarantined row (of one source), with its file's key."""
    tables = [_read_held_file(store, committed.key, source_id) for committed in live_files(store, QUARANTINE)]
    if not tables:
        empty = QUARANTINE_SCHEMA.empty_table()
        return empty.append_column(FILE_COLUMN, pa.array([], pa.string()))
    return pa.concat_tables(tables)


def _read_held_file(store: ObjectStore, key: str, source_id: str | None) -> pa.Table:
    raw = store.get(key)
    if raw is None:
        raise StoreError(f"live quarantine file {store.uri(key)} is missing; the lake was changed by hand")
    table = pq.read_table(io.BytesIO(raw))
    if source_id is not None:
        table = table.filter(pc.equal(table.column("source_id"), source_id))
    held = table.select(QUARANTINE_SCHEMA.names).cast(QUARANTINE_SCHEMA)
    return held.append_column(FILE_COLUMN, pa.array([key] * held.num_rows, pa.string()))


def replay_quarantine(
    store: ObjectStore,
    run_id: str,
    validator: ArticleValidator,
    *,
    row_group_rows: int,
    source_id: str | None = None,
    dry_run: bool = False,
) -> ReplayResult:
    """Move held rows that pass the current suite into ``articles/``, in one commit."""
    # Every held row, not just the source's: a file holds many sources, and the rows of a replaced
    # file that stay in quarantine go to its replacement.
    every = read_quarantine(store)
    unreplayable = pc.equal(every.column("stage"), NORMALIZE_STAGE)
    if source_id is not None:
        unreplayable = pc.or_(unreplayable, pc.not_equal(every.column("source_id"), source_id))
    held, kept_as_is = every.filter(pc.invert(unreplayable)), every.filter(unreplayable)
    if held.num_rows == 0:
        return ReplayResult(run_id)
    rows = held.select(ARTICLE_SCHEMA.names).cast(ARTICLE_SCHEMA)
    sources, runs = held.column("source_id").to_pylist(), held.column("run_id").to_pylist()
    batch_keys = [f"{source}@{run}" for source, run in zip(sources, runs, strict=True)]
    outcome = validator.validate(rows, batch_keys=batch_keys, stage="replay")
    files = held.column(FILE_COLUMN).to_pylist()
    still_held = set(outcome.held_positions)
    replaced = sorted({files[p] for p in range(held.num_rows) if p not in still_held})
    # Rows still failing but sharing a file with a moved row are rewritten into a new file.
    replaced_set = set(replaced)
    remaining = outcome.quarantined.take(
        pa.array([i for i, p in enumerate(outcome.held_positions) if files[p] in replaced_set], pa.int64())
    )
    # Unreplayed rows that share a replaced file go to its replacement too, unchanged.
    in_replaced = pc.is_in(kept_as_is.column(FILE_COLUMN), pa.array(replaced, pa.string()))
    carried = kept_as_is.filter(in_replaced).select(QUARANTINE_SCHEMA.names).cast(remaining.schema)
    remaining = pa.concat_tables([remaining, carried])
    planned = plan_run_files(outcome.accepted, remaining, row_group_rows)
    # A new file can never be one of those it replaces, or deleting the old would delete the new.
    new_keys = {p.key for _, p in planned}
    removed = [f for f in live_files(store, QUARANTINE) if f.key in replaced_set and f.key not in new_keys]
    document = validation_document(outcome, run_id, "replay")
    result = ReplayResult(
        run_id=run_id,
        checked=held.num_rows,
        moved=outcome.accepted.num_rows,
        still_held=outcome.quarantined.num_rows,
        files_replaced=len(removed),
        by_source=outcome.by_source,
        document=document,
    )
    if dry_run or outcome.accepted.num_rows == 0:
        return result
    commit_run(
        store,
        run_id,
        planned,
        _no_new_keys(),
        {},
        removed=removed,
        kind="replay",
        reports=quality_objects(document, store.uri()),
        validation=validation_rows(document),
    )
    log.info("replay %s: %d of %d held rows moved to %s", run_id, result.moved, result.checked, ARTICLES)
    return replace(result, committed=True)


def _no_new_keys() -> pa.Table:
    # Quarantined rows are in the seen index already (they were committed to _quarantine/).
    return pa.table({name: pa.array([], pa.string()) for name in KEY_COLUMNS})


def held_rows_for_people(held: pa.Table, limit: int) -> Sequence[tuple[str, ...]]:
    """Rows of ``feedlake quarantine list``: source, run, published, why, title, url."""
    names = ("source_id", "run_id", "published_at", "failed_expectations", "title", "url")
    columns = {name: held.column(name).to_pylist()[:limit] for name in names}
    lines = []
    for i in range(min(limit, held.num_rows)):
        published = columns["published_at"][i]
        lines.append(
            (
                str(columns["source_id"][i]),
                str(columns["run_id"][i]),
                published.strftime("%Y-%m-%d %H:%M") if published else "-",
                ", ".join(columns["failed_expectations"][i]),
                _clip(columns["title"][i], 50),
                _clip(columns["url"][i], 60),
            )
        )
    return lines


def _clip(value: object, width: int) -> str:
    text = "" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"
