"""Benchmark (issue 8): a poll costs the same in an empty lake and in one holding 1,000,000 articles.

The same feeds (every captured feed of tests/cases/corpus, served over local HTTP) are polled into
(a) an empty lake and (b) a lake whose 1,000,000 articles are the history of those very sources:
one heavy source (the corpus feed with the most items, 1,046) holds 300,000 of them and the other
165 share the rest (about 4,200 each), so every source dedups against a history and the heavy one
shows the worst case (its 1,046 ids fall in every one of its buckets). The history is cloned from
real corpus rows with fresh article ids, spread over past days (1,000 a day: a compacted lake),
and committed through the real write and commit path (``plan_files``, ``commit_run``, so its seen
index is split, grown and folded as a live lake's would be), 25,000 rows a commit. It is built once
(about a minute) and cached under the system temp dir; each poll of (b) gets a hard-linked copy
(the local store only ever replaces files, never edits them, so the copy is as good as new).

Each poll runs in its own process, after its imports, through the pipeline's one wiring
(``tasks/pipeline/poll.py``) with plain hooks that time each stage, not through the Prefect flow:
Prefect's API calls and task tracking cost the same in both lakes and would only dilute the ratio,
and a Prefect server per process would cost more than the poll. Peak RSS is the process's
VmHWM. The store is wrapped to count requests and
bytes, and the seen index's reads and merges are timed. Median of 3 runs, the lakes alternating,
``sync`` before each so no earlier write-back lands in a poll's fsyncs. Last, the heavy source's
delta fold (the merge its polls defer, once per ~4 of them) is timed on its own.

Run: ``.venv/bin/python bench/lake_size.py`` (about 3 minutes with the lake built, 4 without), or
``--quick`` (100,000 articles, one run) while developing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CASES = ROOT / "tests" / "cases"
CORPUS = CASES / "corpus"
# Bump when the built lake changes form (or the seen index layout does), so no stale cache is used.
LAKE_FORM = "6"  # 6: the tables are Delta tables
# Commits of the history: 40 for 1,000,000 articles, the heavy source's spread over 12 of them.
CHUNK_ROWS = 25_000
# A lake as compaction leaves it: about one file per source and 1,000 articles.
ROWS_PER_DAY = 1000
RATIO_TARGET = 1.1
CHILD_ENV = {
    "GX_ANALYTICS_ENABLED": "false",
    "FEEDLAKE_ALLOW_PRIVATE_NETWORKS": "true",
    # Every feed is on one loopback server standing in for ~150 publishers: no per-host politeness.
    "FEEDLAKE_PER_HOST_MIN_GAP_SECONDS": "0",
    "FEEDLAKE_PER_HOST_CONCURRENCY": "16",
}


def corpus_files() -> list[Path]:
    """Every captured feed file of the bundled corpus."""
    return sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in {"MANIFEST.tsv", "README.md"})


def source_id(path: Path) -> str:
    """The id the poll gives a corpus file (as bench/validation.py names them)."""
    return re.sub(r"[^a-z0-9]+", "-", path.relative_to(CASES).as_posix().lower()).strip("-")[:64]


def write_sources(path: Path, base_url: str) -> None:
    """A sources file naming every corpus file at the local server."""
    lines = ["sources:"]
    for feed in corpus_files():
        name = source_id(feed)
        lines += [f"  - id: {name}", f'    url: "{base_url}/{feed.relative_to(CASES).as_posix()}"']
        lines += [f"    name: {name}", "    publisher: bench", "    kind: news"]
        # The lake's cost, not the pages': corpus items link to sites this machine cannot reach.
        lines += ["    full_text: never"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def corpus_rows() -> Any:
    """Every readable corpus entry, parsed and normalized under its poll source id."""
    import pyarrow as pa

    from feedlake.tasks.errors import FeedlakeError
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    batches = []
    for path in corpus_files():
        sid, url = source_id(path), f"http://bench.test/{path.name}"
        fetched = FetchResult(sid, url, datetime.now(UTC), status=200, body=path.read_bytes())
        try:
            batches.append(normalize_feed(parse_feed(fetched), Source(sid, url, sid, "b", "news"), "b"))
        except FeedlakeError:
            continue
    return pa.Table.from_batches(batches)


def history_counts(articles: int, heavy: int, rows: Any) -> dict[str, int]:
    """Past articles per source: ``heavy`` for the feed with the most items, the rest shared."""
    import pyarrow.compute as pc

    counts = {d["values"]: d["counts"] for d in pc.value_counts(rows.column("source_id")).to_pylist()}
    heaviest = max(counts, key=lambda s: counts[s])
    others = sorted({source_id(p) for p in corpus_files()} - {heaviest})
    share, extra = divmod(articles - heavy, len(others))
    return {heaviest: heavy} | {s: share + (1 if i < extra else 0) for i, s in enumerate(others)}


def history_chunk(rows: Any, counts: dict[str, int], start: int, stop: int, now: datetime) -> tuple[Any, str]:
    """Rows ``start:stop`` of all sources' histories laid end to end: corpus rows with fresh ids
    and dates, and the run id of the commit that holds them."""
    import numpy as np
    import pyarrow as pa

    from feedlake.schemas.article import ARTICLE_SCHEMA

    names = list(counts)
    ends = np.cumsum([counts[name] for name in names])
    positions = np.arange(start, stop)
    owners = np.searchsorted(ends, positions, side="right")
    index = positions - (ends - np.array([counts[name] for name in names]))[owners]
    sources = [names[o] for o in owners.tolist()]
    # Each source clones its own run of corpus rows, so the sources' rows differ.
    clone = rows.take(pa.array((index + owners * 997) % rows.num_rows))
    ids = [
        hashlib.blake2b(f"{s}/{i}".encode(), digest_size=16).hexdigest()
        for s, i in zip(sources, index.tolist(), strict=True)
    ]
    # Article i of a source was published i / ROWS_PER_DAY days before the lake's first poll.
    published = [now - timedelta(days=i // ROWS_PER_DAY + 1, seconds=i) for i in index.tolist()]
    run_id = f"{(now - timedelta(hours=stop * 24 // CHUNK_ROWS)).strftime('%Y%m%dT%H%M%SZ')}-history"
    values = {
        "source_id": pa.array(sources, pa.string()),
        "article_id": pa.array(ids, pa.string()),
        "published_at": pa.array(published, ARTICLE_SCHEMA.field("published_at").type),
        "published_date": pa.array([p.date() for p in published], pa.date32()),
        "run_id": pa.array([run_id] * len(ids), pa.string()),
    }
    for name, column in values.items():
        clone = clone.set_column(clone.schema.get_field_index(name), ARTICLE_SCHEMA.field(name), column)
    return clone, run_id


def build_lake(folder: Path, articles: int, heavy: int) -> dict[str, Any]:
    """Commit ``articles`` past articles of the corpus sources into a lake under ``folder``."""
    from feedlake.tasks.lake.commit import commit_run
    from feedlake.tasks.lake.delta_table import live_files, open_table
    from feedlake.tasks.lake.layout import ARTICLES
    from feedlake.tasks.lake.seen_index import read_seen
    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.lake.write import plan_files

    started = time.perf_counter()
    rows = corpus_rows()
    counts = history_counts(articles, heavy, rows)
    store = open_store(str(folder / "lake"))
    now = datetime(2026, 11, 1, tzinfo=UTC)
    total = sum(counts.values())
    for start in range(0, total, CHUNK_ROWS):
        chunk, run_id = history_chunk(rows, counts, start, min(total, start + CHUNK_ROWS), now)
        files = [(ARTICLES, f) for f in plan_files(chunk, ARTICLES, 64 * 1024)]
        keys = chunk.select(["source_id", "article_id", "content_hash"])
        commit_run(store, run_id, files, keys, {})
    heaviest = max(counts, key=lambda s: counts[s])
    seen = store.list("_state/seen/")
    return {
        "articles": sum(counts.values()),
        "sources_with_history": len(counts),
        "heavy_source": heaviest,
        "heavy_articles": counts[heaviest],
        "heavy_seen_keys": len(read_seen(store, heaviest)),
        "data_files": len(live_files(store, ARTICLES)),
        "commits": table.version() if (table := open_table(store, ARTICLES)) is not None else 0,
        "seen_objects": len(seen),
        "seen_bytes": sum((folder / "lake" / key).stat().st_size for key in seen),
        "build_seconds": time.perf_counter() - started,
    }


def cached_lake(articles: int, heavy: int, rebuild: bool) -> tuple[Path, dict[str, Any]]:
    """The built lake's folder (built now unless cached) and its facts."""
    folder = Path(tempfile.gettempdir()) / "feedlake-bench" / f"lake-size-{articles}-{heavy}-f{LAKE_FORM}"
    if rebuild:
        shutil.rmtree(folder, ignore_errors=True)
    if not (folder / "facts.json").is_file():
        building = folder.with_name(f"{folder.name}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        facts = build_lake(building, articles, heavy)
        (building / "facts.json").write_text(json.dumps(facts, indent=1), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        building.rename(folder)  # atomic: an interrupted build never looks complete
    return folder / "lake", json.loads((folder / "facts.json").read_text(encoding="utf-8"))


class CountingStore:
    """An ObjectStore that counts the requests a poll makes and the bytes it moves."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts = {
            "get": 0,
            "get_bytes": 0,
            "put": 0,
            "put_bytes": 0,
            "list": 0,
            "listed": 0,
            "delete": 0,
        }
        self.listed_prefixes: list[str] = []
        self._lock = threading.Lock()

    def _add(self, **amounts: int) -> None:
        with self._lock:
            for name, amount in amounts.items():
                self.counts[name] += amount

    def get(self, key: str) -> bytes | None:
        data = self.inner.get(key)
        self._add(get=1, get_bytes=len(data or b""))
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        found = self.inner.get_versioned(key)
        self._add(get=1, get_bytes=len(found[0]) if found else 0)
        return found

    def put(self, key: str, data: bytes) -> None:
        self._add(put=1, put_bytes=len(data))
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._add(put=1, put_bytes=len(data))
        return bool(self.inner.put_if_absent(key, data))

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> bool:
        self._add(put=1, put_bytes=len(data))
        return bool(self.inner.put_if_match(key, data, etag))

    def delete(self, key: str) -> None:
        self._add(delete=1)
        self.inner.delete(key)

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = self.inner.list(prefix)
        self._add(list=1, listed=len(keys))
        with self._lock:
            self.listed_prefixes.append(prefix)
        return keys

    def uri(self, key: str = "") -> str:
        return str(self.inner.uri(key))

    def delta_options(self) -> dict[str, str]:
        return dict(self.inner.delta_options())


def peak_rss_mib() -> float:
    """This process's peak resident set so far, MiB.

    VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a child would report its parent's
    peak (the parent that built the lake) instead of its own.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def poll_here(lake: str, sources: str) -> dict[str, Any]:
    """One poll of every source into ``lake`` through the pipeline's one wiring, each stage timed."""
    import great_expectations  # noqa: F401 - loaded before the clock, as in a long-running worker

    from feedlake.tasks.lake.storage import open_store
    from feedlake.tasks.pipeline.hooks import PipelineHooks
    from feedlake.tasks.pipeline.poll import run_poll
    from feedlake.tasks.settings import settings_with

    settings = settings_with(lake=lake, sources=sources)
    store = CountingStore(open_store(settings.lake, settings))
    seen_seconds = {"read_seen": 0.0, "merge_seen": 0.0}
    timed_seen(seen_seconds)
    stages: dict[str, dict[str, float]] = {}

    class TimedHooks(PipelineHooks):
        """Each stage's wall and CPU time, peak memory and store calls."""

        def stage(self, name: str, function: Any, retries: int = 0, delays: Any = ()) -> Any:
            inner = super().stage(name, function, retries, delays)

            def run(*args: Any, **kwargs: Any) -> Any:
                before, clock, cpu = dict(store.counts), time.perf_counter(), time.process_time()
                try:
                    return inner(*args, **kwargs)
                finally:
                    stages[name] = {
                        "seconds": time.perf_counter() - clock,
                        "cpu_seconds": time.process_time() - cpu,
                        "peak_rss_mib_after": peak_rss_mib(),
                    }
                    stages[name].update({k: v - before[k] for k, v in store.counts.items() if v != before[k]})

            return run

    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_poll(settings, store=store, hooks=TimedHooks())
    return {
        "wall_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mib": peak_rss_mib(),
        "rows_committed": summary.rows_committed,
        "rows_quarantined": summary.rows_quarantined,
        "duplicates": sum(r.duplicate for r in summary.reports),
        "files_written": summary.files_written,
        "store": store.counts,
        "listed_prefixes": sorted(set(store.listed_prefixes)),
        "stages": stages,
        "seen_index_seconds": seen_seconds,
    }


def timed_seen(seconds: dict[str, float]) -> None:
    """Add the wall time of every seen-index read (dedup) and merge (commit) to ``seconds``."""
    import feedlake.tasks.lake.commit
    import feedlake.tasks.pipeline.stages

    def timed(function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                seconds[function.__name__] += time.perf_counter() - started

        return call

    feedlake.tasks.pipeline.stages.read_seen = timed(feedlake.tasks.pipeline.stages.read_seen)  # type: ignore[attr-defined]
    feedlake.tasks.lake.commit.merge_seen = timed(feedlake.tasks.lake.commit.merge_seen)  # type: ignore[attr-defined]


def poll_in_child(lake: Path, sources: Path) -> dict[str, Any]:
    """Run ``poll_here`` in a fresh interpreter and return what it measured."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(lake), str(sources)]
    done = subprocess.run(
        command, env=os.environ | CHILD_ENV, capture_output=True, text=True, check=False, timeout=600
    )
    if done.returncode != 0:
        raise RuntimeError(f"poll process failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_of(results: list[dict[str, Any]], path: tuple[str, ...]) -> float:
    """The median of one measured number over runs."""
    values = []
    for result in results:
        value: Any = result
        for part in path:
            value = value[part]
        values.append(float(value))
    return statistics.median(values)


def figures_of(empty: list[dict[str, Any]], full: list[dict[str, Any]], label: str) -> list[Any]:
    """The table rows: each measure in the full lake against the empty one."""
    from bench.table import Figure

    rows = []
    for measure, path, unit, target in (
        ("poll wall time", ("wall_seconds",), "s", RATIO_TARGET),
        ("poll CPU time", ("cpu_seconds",), "s", RATIO_TARGET),
        ("peak RSS of the polling process", ("peak_rss_mib",), "MiB", RATIO_TARGET),
        ("lake-facing stages (state, dedup, commit, health) wall", ("lake_seconds",), "s", None),
        ("lake-facing stages CPU", ("lake_cpu_seconds",), "s", None),
        ("seen index reads and merges wall", ("seen_seconds",), "s", None),
        ("store GETs", ("store", "get"), "", None),
        ("store bytes read", ("store", "get_mib"), "MiB", None),
        ("store LISTs", ("store", "list"), "", 1.0),
        ("store PUTs", ("store", "put"), "", None),
    ):
        value, baseline = median_of(full, path), median_of(empty, path)
        ratio = value / baseline if baseline else None
        met = None if target is None or ratio is None else ratio <= target
        listed = ""
        if path == ("store", "list"):
            # In-flight runs (_txn/) and the page retry lists (_pages/, pruned to a list or two) are
            # the only listings a poll may do, in any lake: neither grows with the lake.
            prefixes = {p for result in empty + full for p in result["listed_prefixes"]}
            met = bool(met) and all(p.startswith(("_txn/", "_pages/")) for p in prefixes)
            listed = ", _txn/ and _pages/ only"
        rows.append(
            Figure(
                figure="7",
                measure=f"{measure}, {label}",
                value=value,
                unit=unit,
                baseline=baseline,
                baseline_name="empty lake",
                ratio=ratio,
                target=None if target is None else f"lake/empty <= {target:g}x" + listed,
                met=met,
            )
        )
    return rows


def add_derived(result: dict[str, Any]) -> dict[str, Any]:
    """Add the summed lake-facing seconds and MiB read to one poll's result."""
    # Lake-facing: everything but the network-and-parse stage and validation (lease, recovery,
    # state reads, dedup, write and commit, health). Dedup runs inside the fetch stage (its worker
    # thread, as feeds arrive), so the seen index's read time is counted back in.
    other = ("fetch-parse-dedup-pages", "validate")
    result["lake_seconds"] = (
        result["wall_seconds"]
        - sum(result["stages"][s]["seconds"] for s in other)
        + result["seen_index_seconds"]["read_seen"]
    )
    result["lake_cpu_seconds"] = result["cpu_seconds"] - sum(
        result["stages"][s]["cpu_seconds"] for s in other
    )
    result["seen_seconds"] = sum(result["seen_index_seconds"].values())
    result["store"]["get_mib"] = result["store"]["get_bytes"] / 2**20
    return result


def fold_cost(full_lake: Path, lake: Path, heavy_source: str) -> dict[str, Any]:
    """Time the heavy source's delta fold: the once-in-a-while merge its polls defer."""
    import pyarrow as pa

    from feedlake.tasks.lake.seen_index import SEEN_SPLIT_AT, merge_seen
    from feedlake.tasks.lake.storage import open_store

    shutil.copytree(full_lake, lake, copy_function=os.link)
    os.sync()
    store = CountingStore(open_store(str(lake)))
    # One key more than the delta holds: the merge that folds it.
    count = SEEN_SPLIT_AT // 4 + 1
    ids = [hashlib.blake2b(f"fold/{i}".encode(), digest_size=16).hexdigest() for i in range(count)]
    started = time.perf_counter()
    merge_seen(store, heavy_source, pa.array([f"{i}:{i}" for i in ids]))
    return {"keys": count, "seconds": time.perf_counter() - started, "store": store.counts}


def main() -> int:
    """Build (or reuse) the full lake, poll both lakes in turn, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100,000 articles (30,000 heavy), one run")
    parser.add_argument("--articles", type=int, default=None, help="articles in the full lake")
    parser.add_argument("--heavy", type=int, default=None, help="of which the heaviest source holds")
    parser.add_argument("--runs", type=int, default=None, help="polls per lake (the median is kept)")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached full lake")
    parser.add_argument("--child", nargs=2, metavar=("LAKE", "SOURCES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(poll_here(*args.child)))
        return 0
    from bench.table import Figure, publish
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    articles = args.articles or (100_000 if args.quick else 1_000_000)
    heavy = args.heavy or articles * 3 // 10
    runs = args.runs or (1 if args.quick else 3)
    started = time.perf_counter()
    full_lake, facts = cached_lake(articles, heavy, args.rebuild)
    print(f"full lake: {facts}", flush=True)
    label = f"{articles:,}-article lake"
    results: dict[str, list[dict[str, Any]]] = {"empty": [], "full": []}
    with tempfile.TemporaryDirectory() as scratch, serve_snapshots(CASES) as base_url:
        sources = Path(scratch) / "sources.yaml"
        write_sources(sources, base_url)
        for run in range(runs):
            for name in ("empty", "full"):
                lake = Path(scratch) / f"{name}-{run}"
                if name == "full":
                    shutil.copytree(full_lake, lake, copy_function=os.link)
                os.sync()  # no write-back of earlier work lands in this poll's fsyncs
                result = add_derived(poll_in_child(lake, sources))
                results[name].append(result)
                print(
                    f"run {run + 1}/{runs}, {name} lake: {result['wall_seconds']:.2f} s wall, "
                    f"{result['cpu_seconds']:.2f} s CPU, {result['peak_rss_mib']:.0f} MiB, "
                    f"{result['rows_committed']} rows, {result['store']}",
                    flush=True,
                )
                shutil.rmtree(lake)
        fold = fold_cost(full_lake, Path(scratch) / "fold", facts["heavy_source"])
    figures = figures_of(results["empty"], results["full"], label)
    figures.append(
        Figure(
            figure="7",
            measure=f"seen-index fold of the heavy source ({fold['keys']:,} keys), once per ~4 of its polls",
            value=fold["seconds"],
            unit="s",
        )
    )
    details = {
        "runs": runs,
        "lake": facts,
        "seconds": time.perf_counter() - started,
        "fold": fold,
        "polls": results,
    }
    publish("lake_size", figures, details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
