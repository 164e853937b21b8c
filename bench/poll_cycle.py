"""Benchmark: one poll cycle over many slow sites (figure 3) and over the same sites unchanged (figure 4).

A latency server (bench/latency_server.py, its own process) serves ``--feeds`` sites, each its own
loopback address, each answering ``--latency`` seconds after a request. Every site's feed is a small
real document cut from a corpus RSS feed in tests/cases/corpus: 2 or 3 of its real items, each with
its own guid and link, so the cycle parses, normalizes, validates and commits real content.

Every cycle is ``poll_flow`` (the real Prefect flow, against one local Prefect API) in a fresh
process that has imported the flow module, as a served flow run is; wall time is measured around the
call, CPU is that process's user + system time (``getrusage``) over the call, every thread included.
The server and the Prefect API run in other processes and are not counted. Settings are feedlake's
defaults (16 feeds at once; per host 2 at once, 0.25 s apart: moot, as each site gets one request),
except FEEDLAKE_ALLOW_PRIVATE_NETWORKS, without which loopback is refused.

3. New content into a fresh lake: wall time against the ideal, feeds x latency / concurrency.
4. The second cycle over that lake: every site answers 304. CPU and wall per feed, against the same
   conditional GETs made by a bare httpx client (the floor any poller pays for HTTP alone).

Each figure is the median of ``--runs`` runs. Prints a table, writes bench/results/poll_cycle.json.

Run: ``make bench`` (all benches) or ``.venv/bin/python bench/poll_cycle.py`` (about 3 minutes);
``--quick`` is 200 feeds, 1 run. ``--logs DIR`` keeps each cycle's log; ``--profile`` adds a cProfile
per cycle there and writes bench/results/poll_cycle-profiled.json instead (its figures are inflated).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.latency_server import LAST_MODIFIED, site_address  # noqa: E402
from bench.table import Figure, publish  # noqa: E402

CORPUS = ROOT / "tests" / "cases" / "corpus"
CPU_TARGET_MS = 5.0
WALL_TARGET_RATIO = 1.5
TEMPLATE_MAX_BYTES = 160_000
_ITEM = re.compile(r"<item\b.*?</item>", re.S)
_GUID = re.compile(r"<guid\b[^>]*>.*?</guid>|<guid\b[^>]*/>", re.S)
_LINK = re.compile(r"<link>[^<]*</link>")


def template_paths() -> list[Path]:
    """Corpus RSS 2.0 feeds that are well-formed UTF-8 with at least 3 items and not huge."""
    paths = []
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            what = row["what_it_is"]
            items = re.search(r"items=(\d+)", what)
            size = re.search(r"bytes=(\d+)", what)
            if (
                "format=RSS 2.0" in what
                and re.search(r"encoding=utf-8", what, re.I)
                and "NOT-WELLFORMED" not in what
                and items
                and int(items.group(1)) >= 3
                and size
                and int(size.group(1)) <= TEMPLATE_MAX_BYTES
            ):
                paths.append(CORPUS / row["saved_path"])
    return paths


def site_document(template: str, site: int, count: int) -> str:
    """A feed of ``count`` real items of ``template``, each with a guid and link of its own."""
    items = _ITEM.findall(template)
    head = template[: template.index(items[0])]
    tail = template[template.rindex(items[-1]) + len(items[-1]) :]
    chosen = []
    for n in range(count):
        item = items[(site + n) % len(items)]
        url = f"https://site-{site}.bench.test/articles/{n}"
        guid = f'<guid isPermaLink="true">{url}</guid>'
        item = _GUID.sub(guid, item) if _GUID.search(item) else item.replace("</item>", guid + "</item>")
        item = _LINK.sub(f"<link>{url}</link>", item)
        chosen.append(item)
    return head + "".join(chosen) + tail


def build_bodies(folder: Path, sites: int) -> tuple[int, list[str]]:
    """Write ``<site>.xml`` for every site; return the item count and the templates used.

    A template is used only if a document cut from it parses and normalizes to every item it holds,
    so the cycle's row count is known in advance.
    """
    from datetime import UTC, datetime

    from feedlake.tasks.errors import FeedlakeError
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    templates = []
    for path in template_paths():
        text = path.read_text(encoding="utf-8")
        sample = site_document(text, 0, 3).encode()
        fetched = FetchResult("probe", "http://bench.test/", datetime.now(UTC), status=200, body=sample)
        try:
            rows = normalize_feed(
                parse_feed(fetched), Source("probe", "http://bench.test/", "p", "b", "news"), "b"
            )
        except (FeedlakeError, ValueError):
            continue
        if rows.num_rows == 3:
            templates.append((path, text))
    if not templates:
        raise RuntimeError("no usable corpus template")
    folder.mkdir(parents=True, exist_ok=True)
    items = 0
    for site in range(sites):
        count = 2 + site % 2
        (folder / f"{site}.xml").write_text(
            site_document(templates[site % len(templates)][1], site, count), encoding="utf-8"
        )
        items += count
    return items, [str(path.relative_to(CORPUS)) for path, _ in templates]


@contextlib.contextmanager
def latency_server(bodies: Path, latency: float, log: Path, pages: Path | None = None) -> Iterator[int]:
    """Run bench/latency_server.py in its own process (serving ``pages`` too, if given); yield its port."""
    command = [sys.executable, str(ROOT / "bench" / "latency_server.py"), "--bodies", str(bodies)]
    if pages is not None:
        command += ["--pages", str(pages)]
    with log.open("wb") as errors:
        server = subprocess.Popen(
            [*command, "--latency", str(latency)], stdout=subprocess.PIPE, stderr=errors, cwd=ROOT
        )
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line:
                raise RuntimeError(f"latency server did not start: {log.read_text()[-2000:]}")
            yield int(json.loads(line)["port"])
        finally:
            server.terminate()
            server.wait(timeout=10)


def site_url(site: int, port: int) -> str:
    """The feed URL of site number ``site``."""
    return f"http://{site_address(site)}:{port}/feed.xml"


def write_sources(path: Path, sites: int, port: int, full_text: str = "never") -> Path:
    """A sources file with one news source per site (feeds only, unless ``full_text`` says otherwise)."""
    lines = ["sources:"]
    for site in range(sites):
        lines += [
            f"  - id: site-{site:05d}",
            f'    url: "{site_url(site, port)}"',
            f"    name: Bench site {site}",
            "    publisher: bench",
            "    kind: news",
            # Feeds only by default: the full-text cost has its own figure (bench/full_text_poll.py).
            f"    full_text: {full_text}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cpu_seconds() -> float:
    """User + system CPU time of this process so far, every thread included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child_poll(sources: str, lake: str, profile: str | None) -> dict[str, Any]:
    """One poll cycle through the real flow, measured in this process (the child)."""
    from feedlake.flows.poll import poll_flow

    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    cpu, wall = cpu_seconds(), time.perf_counter()
    summary = poll_flow(sources=sources, lake=lake)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "run_seconds": summary.run_seconds,
        "validate_seconds": summary.validate_seconds,
        "statuses": dict(Counter(r.status for r in summary.reports)),
        "rows": summary.rows_committed + summary.rows_quarantined,
        "rows_quarantined": summary.rows_quarantined,
        "feeds": len(summary.reports),
    }


def child_httpx(targets: str, concurrency: int) -> dict[str, Any]:
    """The baseline: the same conditional GETs from a bare httpx client, ``concurrency`` at a time."""
    import httpx

    pairs = json.loads(Path(targets).read_text(encoding="utf-8"))

    async def cycle() -> Counter[int]:
        limit = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

            async def one(url: str, etag: str) -> int:
                headers = {"If-None-Match": etag, "If-Modified-Since": LAST_MODIFIED}
                async with limit:
                    return (await client.get(url, headers=headers)).status_code

            return Counter(await asyncio.gather(*(one(url, etag) for url, etag in pairs)))

    cpu, wall = cpu_seconds(), time.perf_counter()
    statuses = asyncio.run(cycle())
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    return {"wall_seconds": wall, "cpu_seconds": cpu, "statuses": dict(statuses), "feeds": len(pairs)}


def in_child(arguments: list[str], env: dict[str, str], scratch: Path, log: Path) -> dict[str, Any]:
    """Run this script's ``--child`` mode in a fresh process (output to ``log``); return what it measured."""
    out = scratch / "child.json"
    with log.open("wb") as output:
        done = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", *arguments, "--child-out", str(out)],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"bench child failed ({done.returncode}): {log.read_text()[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def poll_arguments(args: argparse.Namespace, sources: Path, lake: str, name: str) -> list[str]:
    """The child's arguments for one poll cycle, profiled into the logs folder with ``--profile``."""
    profile = ["--child-profile", str(Path(args.logs) / f"{name}.prof")] if args.profile else []
    return ["poll", str(sources), lake, *profile]


def check_cycle(result: dict[str, Any], feeds: int, status: str, rows: int) -> None:
    """Refuse a cycle that did not do the work it is timed for (every feed ``status``)."""
    if result["statuses"] != {status: feeds} or result["rows"] != rows:
        raise RuntimeError(f"expected {feeds} feeds {status} and {rows} rows, got {result}")


def measure(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], dict[str, object]]:
    """Start the servers, run every cycle, and turn the medians into figures."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    from feedlake.tasks.settings import FeedlakeSettings

    concurrency = FeedlakeSettings().concurrency
    items, templates = build_bodies(scratch / "bodies", args.feeds)
    pages = sorted((scratch / "bodies").glob("*.xml"), key=lambda p: int(p.stem))
    targets = scratch / "targets.json"
    cycles: dict[str, list[dict[str, Any]]] = {"new": [], "unchanged": [], "httpx": []}
    with (
        prefect_test_harness(server_startup_timeout=120),
        latency_server(scratch / "bodies", args.latency, scratch / "server.log") as port,
    ):
        sources = write_sources(scratch / "sources.yaml", args.feeds, port)
        etags = ['"' + hashlib.blake2b(p.read_bytes(), digest_size=8).hexdigest() + '"' for p in pages]
        pairs = [[site_url(n, port), etag] for n, etag in enumerate(etags)]
        targets.write_text(json.dumps(pairs), encoding="utf-8")
        env = {
            **os.environ,
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "FEEDLAKE_ALLOW_PRIVATE_NETWORKS": "true",
            "GX_ANALYTICS_ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        }
        logs = Path(args.logs) if args.logs else scratch
        for run in range(args.runs):
            lake = str(scratch / f"lake-{run}")
            new = in_child(
                poll_arguments(args, sources, lake, f"new-{run}"), env, scratch, logs / f"new-{run}.log"
            )
            check_cycle(new, args.feeds, "ok", items)
            command = poll_arguments(args, sources, lake, f"unchanged-{run}")
            unchanged = in_child(command, env, scratch, logs / f"unchanged-{run}.log")
            check_cycle(unchanged, args.feeds, "not_modified", 0)
            command = ["httpx", str(targets), str(concurrency)]
            bare = in_child(command, env, scratch, logs / f"httpx-{run}.log")
            if bare["statuses"] != {"304": args.feeds}:
                raise RuntimeError(f"baseline expected {args.feeds} answers 304, got {bare}")
            for name, result in (("new", new), ("unchanged", unchanged), ("httpx", bare)):
                cycles[name].append(result)
                print(f"  run {run + 1}/{args.runs} {name}: {json.dumps(result)}", flush=True)
    return figures(args, concurrency, cycles), {
        "feeds": args.feeds,
        "latency_seconds": args.latency,
        "concurrency": concurrency,
        "runs": args.runs,
        "items": items,
        "templates": templates,
        "cycles": cycles,
    }


def figures(
    args: argparse.Namespace, concurrency: int, cycles: dict[str, list[dict[str, Any]]]
) -> list[Figure]:
    """The table's rows from the medians of the measured cycles."""

    def median(name: str, key: str) -> float:
        return float(statistics.median(c[key] for c in cycles[name]))

    ideal = args.feeds * args.latency / concurrency
    wall = median("new", "wall_seconds")
    cpu_ms = 1000 * median("unchanged", "cpu_seconds") / args.feeds
    bare_cpu_ms = 1000 * median("httpx", "cpu_seconds") / args.feeds
    wall_ms = 1000 * median("unchanged", "wall_seconds") / args.feeds
    bare_wall_ms = 1000 * median("httpx", "wall_seconds") / args.feeds
    sites = f"{args.feeds:,} feeds, {1000 * args.latency:.0f} ms latency"
    return [
        Figure(
            "3",
            f"poll cycle, {sites}, new content: wall",
            wall,
            "s",
            baseline=ideal,
            baseline_name=f"ideal: feeds x latency / {concurrency}",
            ratio=wall / ideal,
            target=f"<= {WALL_TARGET_RATIO}x ideal",
            met=wall <= WALL_TARGET_RATIO * ideal,
        ),
        Figure(
            "4",
            f"poll cycle, {sites}, all 304: CPU per feed",
            cpu_ms,
            "ms",
            baseline=bare_cpu_ms,
            baseline_name="bare httpx conditional GET",
            ratio=cpu_ms / bare_cpu_ms,
            target=f"< {CPU_TARGET_MS:g} ms",
            met=cpu_ms < CPU_TARGET_MS,
        ),
        Figure(
            "4",
            f"poll cycle, {sites}, all 304: wall per feed",
            wall_ms,
            "ms",
            baseline=bare_wall_ms,
            baseline_name="bare httpx conditional GET",
            ratio=wall_ms / bare_wall_ms,
        ),
    ]


def child_main(args: argparse.Namespace) -> int:
    """The ``--child`` mode: one measured cycle, written as JSON to ``--child-out``."""
    kind, *rest = args.child
    if kind == "poll":
        result = child_poll(rest[0], rest[1], args.child_profile)
    else:
        result = child_httpx(rest[0], int(rest[1]))
    Path(args.child_out).write_text(json.dumps(result), encoding="utf-8")
    return 0


def main() -> int:
    """Run the benchmark (or, with ``--child``, one measured cycle of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000, help="sites (one feed each) per cycle")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds each answer is held back")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="200 feeds, 1 run: for development")
    parser.add_argument("--logs", help="keep each cycle's log (Prefect's stage timings) in this folder")
    parser.add_argument("--profile", action="store_true", help="cProfile each poll (main thread) into --logs")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--child-profile", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child_main(args)
    if args.quick:
        args.feeds, args.runs = 200, 1
    if args.profile and not args.logs:
        parser.error("--profile needs --logs DIR")
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feedlake-bench-") as scratch:
        table, details = measure(args, Path(scratch))
    details["bench_seconds"] = time.monotonic() - started
    if args.profile:
        print("note: cycles ran under cProfile, which inflates their CPU and wall figures")
    # Profiled figures are inflated: they must not stand in for the ones bench/run.py reports.
    publish("poll_cycle-profiled" if args.profile else "poll_cycle", table, details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
