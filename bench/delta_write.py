"""Benchmark (issue 17): what a poll's write + commit costs in the Delta lake, against the old layout.

Rows: every captured feed of tests/cases/corpus, parsed and normalized by feedlake's own stages
(one row per source and article id, as dedup leaves them). Both layouts are measured in this run,
on the same rows, through the same object store class and Parquet encoder:

- new: ``plan_run_files`` (one file per month partition) + ``commit_run`` (intent, data files,
  keys, one Delta commit, seen index, cleanup);
- old: the layout of commit 449e9d4, reimplemented here: one file per (source_id, published_date)
  written 16 at a time, the keys object and a ``_commits/<run>.json`` record as the commit point,
  the same intent, seen index update and cleanup.

A. First poll of the whole corpus into an empty lake, write + commit only: data files, seconds.
B. Steady state after that first poll: 20 polls of 20 new rows each (spread over the sources),
   once with the rows' own publication dates (spread over years: the worst case for partitions)
   and once dated the poll's day (what a live feed's new items are).
C. Opening the articles table after 10, 100 and 1,000 commits of one or two rows (and 18 commits
   past 100 and 1,000: an open then reads a checkpoint and the most commits it ever does, 19):
   ``DeltaTable`` + ``version()`` + ``transaction_version("feedlake")``, against the old layout's
   reader, which replays every ``_commits/`` record. Then the same 1,000 commits' files committed
   in 100 commits: an open costs the same, so checkpoints (every 20 commits) keep it flat in
   commits; what grows is the checkpoint, with the live files (compaction's business).
   If the commits up to 100 project the rest past ``--commit-budget`` (3 minutes), 500 are used.
D. Figure A on a bucket of moto's S3 server (its own process, on loopback).

Run: ``.venv/bin/python bench/delta_write.py`` (about 3 minutes; ``--quick``: smaller sizes, 20
seconds), or ``.venv/bin/python bench/run.py --only delta_write``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedlake.schemas.article import ARTICLE_SCHEMA, quarantine_schema, row_keys
from feedlake.tasks.lake.commit import WRITE_THREADS, commit_run
from feedlake.tasks.lake.delta_table import APP_ID, TABLE_CONFIGURATION
from feedlake.tasks.lake.layout import (
    ARTICLES,
    DELTA_LOG,
    LEGACY_COMMITS,
    data_file_key,
    intent_key,
    keys_key,
    new_run_id,
)
from feedlake.tasks.lake.legacy_layout import live_legacy_files
from feedlake.tasks.lake.seen_index import merge_seen
from feedlake.tasks.lake.storage import ObjectStore, open_store
from feedlake.tasks.lake.write import (
    ENCODE_THREADS_FROM,
    encode_parquet,
    plan_run_files,
    rows_digest,
    run_keys,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from corpus_poll import S3_ENV, corpus_files, source_id  # noqa: E402
from table import Figure, measure_and_publish  # noqa: E402

ROW_GROUP_ROWS = 65536
EMPTY_HELD = quarantine_schema(ARTICLE_SCHEMA).empty_table()
# The open is flat in commits if a table that took its files in 1,000 commits opens within this
# factor of one that took the same files in 100 (with checkpoints an open reads one checkpoint and
# at most 19 commits, however many runs the table has had; the checkpoint grows with live files).
FLAT_WITHIN = 1.5
# Figure C also commits the files of its last count in this many times fewer commits.
REGROUP = 10


def corpus_rows() -> pa.Table:
    """Every readable corpus entry as normalized article rows, one per (source_id, article_id)."""
    from feedlake.tasks.errors import FeedlakeError
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    batches = []
    for path in corpus_files():
        feed_id = source_id(path)
        url = f"http://bench.test/{feed_id}.xml"
        fetched = FetchResult(
            feed_id, url, datetime(2026, 11, 23, tzinfo=UTC), status=200, body=path.read_bytes()
        )
        try:
            batches.append(
                normalize_feed(parse_feed(fetched), Source(feed_id, url, feed_id, "b", "news"), "r")
            )
        except FeedlakeError:
            continue
    rows = pa.Table.from_batches(batches)
    # A feed that repeats an id yields one row per id after dedup: keep the first.
    seen: set[tuple[str, str]] = set()
    keep = []
    pairs = zip(rows.column("source_id").to_pylist(), rows.column("article_id").to_pylist(), strict=True)
    for index, pair in enumerate(pairs):
        if pair not in seen:
            seen.add(pair)
            keep.append(index)
    return rows.take(pa.array(keep))


def fresh_rows(rows: pa.Table, tag: str, day: date | None = None) -> pa.Table:
    """``rows`` with new article ids (``<id>-<tag>``), and if ``day`` is given, published that day."""
    field = ARTICLE_SCHEMA.field("article_id")
    ids = pc.binary_join_element_wise(rows.column("article_id"), pa.scalar(f"-{tag}"), "")
    rows = rows.set_column(rows.schema.get_field_index("article_id"), field, ids)
    if day is None:
        return rows
    start = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)
    stamps = [start + timedelta(minutes=7 * i) for i in range(rows.num_rows)]
    for name, values in (("published_at", stamps), ("published_date", [s.date() for s in stamps])):
        index = rows.schema.get_field_index(name)
        rows = rows.set_column(index, rows.schema.field(name), pa.array(values, rows.schema.field(name).type))
    return rows


def spread(rows: pa.Table, count: int, offset: int) -> pa.Table:
    """``count`` rows spread evenly over ``rows`` (which are in source order), shifted by ``offset``."""
    step = rows.num_rows // count
    return rows.take(pa.array([(i * step + offset) % rows.num_rows for i in range(count)]))


# The new layout: the product's own write and commit stages.


def new_commit(store: ObjectStore, run_id: str, rows: pa.Table) -> int:
    """Write and commit ``rows`` as a poll of this release does; the number of data files."""
    files = plan_run_files(rows, EMPTY_HELD, ROW_GROUP_ROWS)
    commit_run(store, run_id, files, run_keys(rows), {})
    return len(files)


# The old layout: the pre-Delta layout of commit 449e9d4 (tasks/lake/write.py and commit.py of
# that release), reimplemented here since the product no longer writes it. One Parquet file per
# (source_id, published_date), the two partition columns in the path only; a run's commit point is
# its record under _commits/. The steps every run of either release makes (intent, keys object,
# seen index, cleanup of _txn/) are made the same way so that the difference is the layout.


def old_plan(rows: pa.Table) -> list[tuple[str, int, bytes]]:
    """(key, rows, Parquet bytes) of each (source_id, published_date) partition of ``rows``."""
    order = [(c, "ascending") for c in ("source_id", "published_date", "published_at", "article_id")]
    rows = rows.take(pc.sort_indices(rows, sort_keys=order))
    sources, days = rows.column("source_id"), rows.column("published_date")
    changed = pc.or_(
        pc.not_equal(sources.slice(1), sources.slice(0, len(sources) - 1)),
        pc.not_equal(days.slice(1), days.slice(0, len(days) - 1)),
    )
    starts = [0, *(pc.indices_nonzero(changed).to_numpy() + 1).tolist(), rows.num_rows]
    source_values, day_values = sources.to_pylist(), days.to_pylist()

    def plan(start: int, stop: int) -> tuple[str, int, bytes]:
        part = rows.slice(start, stop - start)
        partition = (("source_id", source_values[start]), ("published_date", day_values[start].isoformat()))
        key = data_file_key(ARTICLES, partition, rows_digest(part))
        body = part.drop_columns(["source_id", "published_date"])
        return key, part.num_rows, encode_parquet(body, ROW_GROUP_ROWS)

    bounds = list(zip(starts, starts[1:], strict=False))
    if len(bounds) < ENCODE_THREADS_FROM:
        return [plan(start, stop) for start, stop in bounds]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return list(pool.map(lambda bound: plan(*bound), bounds))


def old_commit(store: ObjectStore, run_id: str, rows: pa.Table) -> int:
    """Write and commit ``rows`` as a poll of the release before Delta did; the number of data files."""
    files = old_plan(rows)
    keys = keys_key(run_id)
    objects = [key for key, _, _ in files] + [keys]
    store.put(intent_key(run_id), json.dumps({"run_id": run_id, "objects": objects}).encode())
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        for future in [pool.submit(store.put_if_absent, key, data) for key, _, data in files]:
            future.result()
    row_key = row_keys(rows)
    buffer = io.BytesIO()
    pq.write_table(
        pa.table({"source_id": rows.column("source_id"), "key": row_key}), buffer, compression="zstd"
    )
    store.put(keys, buffer.getvalue())
    record = {
        "run_id": run_id,
        "committed_at": datetime.now(UTC).isoformat(),
        "files": [
            {
                "key": key,
                "source_id": key.split("/")[1].removeprefix("source_id="),
                "rows": n,
                "table": ARTICLES,
            }
            for key, n, _ in files
        ],
        "validators": {},
        "keys_object": keys,
        "removed": [],
        "kind": "poll",
        "reports": [],
    }
    store.put_if_absent(
        f"{LEGACY_COMMITS}/{run_id}.json", json.dumps(record, sort_keys=True, indent=1).encode()
    )
    # State: the seen index of each source takes its keys, 16 sources at a time (as both releases do).
    by_source: dict[str, list[str]] = {}
    for source, key in zip(rows.column("source_id").to_pylist(), row_key.to_pylist(), strict=True):
        by_source.setdefault(source, []).append(key)
    with ThreadPoolExecutor(max_workers=WRITE_THREADS) as pool:
        merges = [pool.submit(merge_seen, store, s, pa.array(k, pa.string())) for s, k in by_source.items()]
        for merged in merges:
            merged.result()
    store.delete(keys)
    store.delete(intent_key(run_id))
    return len(files)


Commit = Callable[[ObjectStore, str, pa.Table], int]
LAYOUTS: dict[str, Commit] = {"new": new_commit, "old": old_commit}


def data_files(store: ObjectStore) -> int:
    """Data files under articles/ (its Delta log excluded)."""
    return sum(1 for key in store.list(f"{ARTICLES}/") if not key.startswith(f"{ARTICLES}/{DELTA_LOG}/"))


def timed(commit: Commit, store: ObjectStore, rows: pa.Table, local: bool) -> tuple[int, float]:
    """(data files, seconds) of one write + commit of ``rows``."""
    if local:
        os.sync()  # no earlier run's write-back lands in this one's fsyncs
    started = time.perf_counter()
    files = commit(store, new_run_id(), rows)
    return files, time.perf_counter() - started


def first_poll(
    rows: pa.Table, make_lake: Callable[[str], ObjectStore], runs: int, local: bool
) -> tuple[dict[str, Any], dict[str, ObjectStore]]:
    """Figure A: the whole corpus into an empty lake, ``runs`` times per layout (fresh lake each,
    the layouts alternating); the medians, and the last run's lakes."""
    seconds: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    written: dict[str, int] = {}
    lakes: dict[str, ObjectStore] = {}
    for run in range(runs):
        for name, commit in LAYOUTS.items():
            lakes[name] = make_lake(f"{name}-first-{run}")
            planned, took = timed(commit, lakes[name], rows, local)
            seconds[name].append(took)
            written[name] = data_files(lakes[name])
            assert written[name] == planned, (name, written[name], planned)
    result = {
        name: {"files": written[name], "seconds": statistics.median(seconds[name]), "runs": seconds[name]}
        for name in LAYOUTS
    }
    return result, lakes


def steady_polls(
    rows: pa.Table, lakes: dict[str, ObjectStore], polls: int, per_poll: int, day: date | None, tag: str
) -> dict[str, Any]:
    """Figure B: ``polls`` polls of ``per_poll`` new rows each into lakes holding the first poll."""
    seconds: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    files: dict[str, list[int]] = {name: [] for name in LAYOUTS}
    for poll in range(polls):
        batch = fresh_rows(spread(rows, per_poll, poll), f"{tag}{poll}", day)
        for name, commit in LAYOUTS.items():
            written, took = timed(commit, lakes[name], batch, local=True)
            seconds[name].append(took)
            files[name].append(written)
    return {
        name: {
            "seconds": statistics.median(seconds[name]),
            "files": statistics.median(files[name]),
            "runs": seconds[name],
        }
        for name in LAYOUTS
    }


def open_delta(store: ObjectStore, opens: int) -> float:
    """Median seconds to open the articles table and read its version and feedlake's transaction."""
    from deltalake import DeltaTable

    timings = []
    for _ in range(opens):
        started = time.perf_counter()
        table = DeltaTable(store.uri(ARTICLES), storage_options=store.delta_options())
        table.version()
        table.transaction_version(APP_ID)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def open_legacy(store: ObjectStore, opens: int) -> float:
    """Median seconds for the old layout's reader to find the live files (it replays _commits/)."""
    timings = []
    for _ in range(opens):
        started = time.perf_counter()
        live_legacy_files(store)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def log_position(store: ObjectStore) -> dict[str, int]:
    """The articles table's version, its checkpoints, and the commits an open reads past the last."""
    names = [key.rsplit("/", 1)[1] for key in store.list(f"{ARTICLES}/{DELTA_LOG}/")]
    versions = [int(name.split(".")[0]) for name in names if name.endswith(".json")]
    checkpoints = [int(name.split(".")[0]) for name in names if name.endswith(".checkpoint.parquet")]
    version = max(versions)
    return {
        "version": version,
        "checkpoints": len(checkpoints),
        "past_checkpoint": version - max(checkpoints) if checkpoints else version + 1,
        "log_objects": len(names),
    }


def small_batch(rows: pa.Table, index: int) -> pa.Table:
    """The rows of figure C's commit number ``index``: one or two, with fresh ids."""
    return fresh_rows(spread(rows, 1 + index % 2, index * 37), f"c{index}")


def regroup(rows: pa.Table, store: ObjectStore, count: int, group: int) -> ObjectStore:
    """The data files of figure C's first ``count`` commits, committed ``group`` commits' files at
    a time (the same keys and bytes, a ``group``-th of the commits)."""
    for start in range(0, count, group):
        batches = [small_batch(rows, index) for index in range(start, min(start + group, count))]
        files = [f for batch in batches for f in plan_run_files(batch, EMPTY_HELD, ROW_GROUP_ROWS)]
        commit_run(store, new_run_id(), files, run_keys(*batches), {})
    return store


def accumulate(
    rows: pa.Table, scratch: Path, counts: list[int], opens: int, budget: float
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Figure C: one- and two-row commits into fresh lakes of both layouts, the open measured at each
    count and, once the table has a checkpoint, again where an open reads the most commits past
    one (interval - 1). If the commits so far project the last count past ``budget`` seconds, it
    is halved (the details say so)."""
    lakes = {name: open_store(str(scratch / f"{name}-commits")) for name in LAYOUTS}
    build = {name: 0.0 for name in LAYOUTS}
    measured: list[dict[str, Any]] = []
    made, halved = 0, False
    worst = int(TABLE_CONFIGURATION["delta.checkpointInterval"]) - 1

    def commit_up_to(count: int) -> None:
        nonlocal made
        while made < count:
            batch = small_batch(rows, made)
            for name, commit in LAYOUTS.items():
                build[name] += timed(commit, lakes[name], batch, local=False)[1]
            made += 1
        measured.append(
            {
                "commits": made,
                **log_position(lakes["new"]),
                "new": open_delta(lakes["new"], opens),
                "old": open_legacy(lakes["old"], opens),
            }
        )

    for index, count in enumerate(counts):
        if index == len(counts) - 1 and made:
            projected = (build["new"] + build["old"]) / made * (count - made)
            if projected > budget:
                count, halved = count // 2, True
        commit_up_to(count)
        if index == len(counts) - 1:
            # The same data files in a tenth of the commits: what the open costs for the files
            # alone, measured back to back with the open of the table that took them one by one.
            regrouped = regroup(rows, open_store(str(scratch / "new-regrouped")), count, REGROUP)
            measured[-1]["regrouped"] = {
                **log_position(regrouped),
                "commits": count // REGROUP,
                "files": data_files(regrouped),
                "new": open_delta(regrouped, opens),
                "one_by_one": open_delta(lakes["new"], opens),
                "one_by_one_files": data_files(lakes["new"]),
            }
            assert measured[-1]["regrouped"]["files"] == measured[-1]["regrouped"]["one_by_one_files"]
        past = measured[-1]["past_checkpoint"]
        if measured[-1]["checkpoints"] and past < worst:
            commit_up_to(made + worst - past)
    return measured, {**{f"{name}_build_seconds": s for name, s in build.items()}, "halved": halved}


def on_s3(rows: pa.Table, runs: int) -> dict[str, Any]:
    """Figure D: figure A into buckets of moto's S3 server (its own process, on loopback)."""
    import boto3

    from tests.support.moto_server import moto_server

    with moto_server() as endpoint:
        saved = {key: os.environ.get(key) for key in [*S3_ENV, "AWS_ENDPOINT_URL"]}
        os.environ.update({**S3_ENV, "AWS_ENDPOINT_URL": endpoint})
        try:
            client = boto3.client("s3", endpoint_url=endpoint)

            def make_lake(name: str) -> ObjectStore:
                client.create_bucket(Bucket=name)
                return open_store(f"s3://{name}/lake")

            result, _ = first_poll(rows, make_lake, runs, local=False)
        finally:
            for key, value in saved.items():
                os.environ.pop(key, None) if value is None else os.environ.update({key: value})
    return result


def ratio_figure(figure: str, what: str, new: float, old: float, unit: str) -> Figure:
    """A row with the new layout's value against the old layout's (ratio new / old)."""
    return Figure(figure, what, new, unit, old, "old layout", new / old if old else None)


def measure(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], dict[str, Any]]:
    """Every figure of this benchmark, and the details behind them."""
    logging.getLogger("feedlake").setLevel(logging.ERROR)  # the corpus's ill-formed feeds warn
    started = time.perf_counter()
    rows = corpus_rows()
    sources = len(rows.column("source_id").unique())
    loaded = time.perf_counter() - started
    print(f"{rows.num_rows:,} rows of {sources} sources loaded in {loaded:.1f} s", flush=True)

    started = time.perf_counter()
    first, lakes = first_poll(rows, lambda name: open_store(str(scratch / name)), args.runs, local=True)
    print(f"A: {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    steady = steady_polls(rows, lakes, args.polls, args.poll_rows, None, "b")
    steady_day = steady_polls(rows, lakes, args.polls, args.poll_rows, date(2026, 11, 23), "d")
    print(f"B: {time.perf_counter() - started:.1f} s", flush=True)

    started = time.perf_counter()
    counts = [int(c) for c in args.commits.split(",")]
    opens, build = accumulate(rows, scratch, counts, args.opens, args.commit_budget)
    print(f"C: {time.perf_counter() - started:.1f} s", flush=True)

    s3 = None
    if not args.no_s3:
        started = time.perf_counter()
        s3 = on_s3(rows, args.s3_runs)
        print(f"D: {time.perf_counter() - started:.1f} s", flush=True)

    corpus = f"{rows.num_rows:,} rows, {sources} sources"
    figures = [
        ratio_figure(
            "17A", f"first poll ({corpus}): data files", first["new"]["files"], first["old"]["files"], "files"
        ),
        ratio_figure(
            "17A",
            f"first poll: write + commit, local (median of {args.runs})",
            first["new"]["seconds"],
            first["old"]["seconds"],
            "s",
        ),
    ]
    for result, dated in ((steady, "own dates"), (steady_day, "dated the poll's day")):
        label = f"steady poll, {args.poll_rows} new rows ({dated})"
        figures += [
            ratio_figure("17B", f"{label}: files", result["new"]["files"], result["old"]["files"], "files"),
            ratio_figure(
                "17B",
                f"{label}: seconds (median of {args.polls})",
                result["new"]["seconds"],
                result["old"]["seconds"],
                "s",
            ),
        ]
    for point in opens:
        read = (
            f"checkpoint + {point['past_checkpoint']} commits"
            if point["checkpoints"]
            else f"{point['version'] + 1} commits"
        )
        figures.append(
            Figure(
                "17C",
                f"open articles after {point['commits']:,} commits (reads {read}; median of {args.opens})",
                point["new"] * 1000,
                "ms",
                point["old"] * 1000,
                "old: replay _commits/",
                point["new"] / point["old"],
            )
        )
    # Opens at the same place past a checkpoint, after the first and the last count: how much the
    # open grew with 10x the commits (and here 10x the live files: each commit added one or two).
    growth = []
    for past in {p["past_checkpoint"] for p in opens if p["checkpoints"]}:
        same = [p for p in opens if p["checkpoints"] and p["past_checkpoint"] == past]
        if len(same) > 1:
            growth.append((same[-1]["new"] / same[0]["new"], same[0]["commits"], same[-1]["commits"]))
    if growth:
        grew, since, until = max(growth)
        figures.append(
            Figure(
                "17C",
                f"open after {until:,} commits / after {since:,} (same place past a checkpoint; worst)",
                grew,
                "x",
            )
        )
    # Flat in commits: the table that took its files one commit at a time opens like the one that
    # took the same files in a tenth of the commits.
    regrouped = next((p["regrouped"] for p in opens if "regrouped" in p), None)
    if regrouped is not None:
        flat = regrouped["one_by_one"] / regrouped["new"]
        figures.append(
            Figure(
                "17C",
                f"open, {regrouped['one_by_one_files']:,} files committed in "
                f"{regrouped['commits'] * REGROUP:,} commits (median of {args.opens})",
                regrouped["one_by_one"] * 1000,
                "ms",
                regrouped["new"] * 1000,
                f"same files in {regrouped['commits']:,} commits",
                flat,
                f"<= {FLAT_WITHIN:g}x (flat in commits)",
                flat <= FLAT_WITHIN,
            )
        )
    if s3 is not None:
        figures.append(
            ratio_figure(
                "17D",
                f"first poll: write + commit, S3 moto server (median of {args.s3_runs})",
                s3["new"]["seconds"],
                s3["old"]["seconds"],
                "s",
            )
        )
    details = {
        "rows": rows.num_rows,
        "sources": sources,
        "load_seconds": loaded,
        "first_poll": first,
        "steady_own_dates": steady,
        "steady_poll_day": steady_day,
        "opens": opens,
        "commits_requested": counts,
        **build,
        "s3": s3,
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    return figures, details


def main() -> int:
    """Measure, print the table, write bench/results/delta_write.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one run each (a smoke test)")
    parser.add_argument("--runs", type=int, default=3, help="first polls per layout (median reported)")
    parser.add_argument("--polls", type=int, default=20, help="steady polls per layout")
    parser.add_argument("--poll-rows", type=int, default=20, help="new rows per steady poll")
    parser.add_argument("--commits", default="10,100,1000", help="commit counts the open is measured at")
    parser.add_argument("--opens", type=int, default=20, help="opens per measurement (median reported)")
    parser.add_argument(
        "--commit-budget", type=float, default=180, help="seconds the commits after the second count may take"
    )
    parser.add_argument("--no-s3", action="store_true", help="skip figure D (moto's S3 server)")
    parser.add_argument("--s3-runs", type=int, default=3, help="first polls per layout on S3")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.polls, args.commits, args.opens, args.s3_runs = 1, 5, "10,40,80", 5, 1
    return measure_and_publish("delta_write", measure, args)


if __name__ == "__main__":
    sys.exit(main())
