"""Benchmark: a poll whose 1,000 new items need their pages (figure 16c), against the same poll without.

A latency server (bench/latency_server.py, its own process) serves ``--feeds`` sites, each its own
loopback address, each answering every request ``--latency`` seconds late: its feed, its
robots.txt (a 404, so every page is allowed) and its article page. Every feed holds one new item
made from one of the real pages of tests/cases/pages (the page's title, and the first sentence of its
og:description as the teaser, as bench/extraction.py does); the item links to that page on its own
site. So the poll fetches 1,000 feeds, 1,000 robots.txt and 1,000 pages, and extracts 1,000 real
pages (32 of them in turn: news, blogs, af.mil releases, from 8 KB to 740 KB).

Each cycle is ``feedlake.poll`` (the library; no Prefect) in a fresh process on a fresh lake, with
feedlake's defaults (16 feeds and 16 pages at once, 2 per host 0.25 s apart, extraction on every
core) and FEEDLAKE_ALLOW_PRIVATE_NETWORKS (loopback). Interleaved, medians of ``--runs``:

- ``full_text: always``: feeds, pages and extraction; its wall time against the ideal, the feeds'
  round trips at ``concurrency`` at once plus one robots.txt and one page round trip for the last
  feed (pages overlap the feeds, so nothing else need wait): ``feeds x latency / 16 + 2 x latency``;
- ``full_text: never``: the same feeds alone (the baseline: what the pages add).

Run: ``.venv/bin/python bench/full_text_poll.py`` (about 2 minutes); ``--quick`` is 200 feeds, 1 run.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.extraction import load_pages  # noqa: E402
from bench.latency_server import site_address  # noqa: E402
from bench.poll_cycle import latency_server, write_sources  # noqa: E402
from bench.table import Figure, measure_and_publish  # noqa: E402

WALL_TARGET_RATIO = 1.5


def site_feed(site: int, title: str, teaser: str) -> str:
    """One RSS document with one item: a teaser linking to its page on the site's own address."""
    link = f"http://{site_address(site)}:__PORT__/articles/{site}"
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Bench site {site}</title><link>http://{site_address(site)}:__PORT__/</link>"
        "<description>bench</description>"
        f"<item><title>{html.escape(title)}</title><link>{link}</link>"
        f'<guid isPermaLink="true">{link}</guid><description>{html.escape(teaser)}</description>'
        "<pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate></item></channel></rss>"
    )


def build_sites(scratch: Path, feeds: int) -> None:
    """Write every site's feed (``bodies/<site>.xml``) and the pages (``pages/<k>.html``)."""
    pages = [p for p in load_pages() if p.title and p.teaser]
    (scratch / "bodies").mkdir()
    (scratch / "pages").mkdir()
    for k, page in enumerate(pages):
        (scratch / "pages" / f"{k}.html").write_bytes(page.data)
    for site in range(feeds):
        page = pages[site % len(pages)]
        (scratch / "bodies" / f"{site}.xml").write_text(
            site_feed(site, page.title or "", page.teaser or ""), encoding="utf-8"
        )


def child_poll(sources: str, lake: str) -> dict[str, Any]:
    """One poll through the library, measured in this process (the child)."""
    import feedlake
    from feedlake.tasks.full_text.extract import shutdown_extraction_pools

    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu, wall = usage.ru_utime + usage.ru_stime, time.perf_counter()
    summary = feedlake.poll(sources, lake)
    wall = time.perf_counter() - wall
    shutdown_extraction_pools()  # so that the workers' CPU is counted (RUSAGE_CHILDREN: ended ones)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu,
        "rows": summary.rows_committed + summary.rows_quarantined,
        "pages_tried": summary.pages_tried,
        "pages_used": summary.pages_used,
        "failed": summary.sources_failed,
        "children_cpu_seconds": children.ru_utime + children.ru_stime,
    }


def run_child(sources: Path, lake: Path, scratch: Path, log: Path) -> dict[str, Any]:
    """One cycle in a fresh process; what it measured."""
    out = scratch / "child.json"
    env = {
        **os.environ,
        "FEEDLAKE_ALLOW_PRIVATE_NETWORKS": "true",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("PREFECT_API_URL", None)
    command = [sys.executable, __file__, "--child", str(sources), str(lake), "--child-out", str(out)]
    with log.open("wb") as output:
        done = subprocess.run(
            command, env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, check=False
        )
    if done.returncode != 0:
        raise RuntimeError(f"bench child failed ({done.returncode}): {log.read_text()[-3000:]}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def measure(args: argparse.Namespace, scratch: Path) -> tuple[list[Figure], dict[str, object]]:
    """Serve the sites, run the cycles interleaved, and turn the medians into figures."""
    from feedlake.tasks.settings import FeedlakeSettings

    defaults = FeedlakeSettings()
    build_sites(scratch, args.feeds)
    cycles: dict[str, list[dict[str, Any]]] = {"always": [], "never": []}
    with latency_server(scratch / "bodies", args.latency, scratch / "server.log", scratch / "pages") as port:
        for run in range(args.runs):
            for mode in ("always", "never"):
                sources = write_sources(scratch / f"{mode}.yaml", args.feeds, port, mode)
                result = run_child(sources, scratch / f"lake-{mode}-{run}", scratch, scratch / f"{mode}.log")
                if result["rows"] != args.feeds or result["failed"]:
                    raise RuntimeError(f"expected {args.feeds} rows and no failure, got {result}")
                if mode == "always" and result["pages_tried"] != args.feeds:
                    raise RuntimeError(f"expected {args.feeds} pages tried, got {result}")
                cycles[mode].append(result)
                print(f"  run {run + 1}/{args.runs} {mode}: {json.dumps(result)}", flush=True)

    def median(mode: str, key: str) -> float:
        return float(statistics.median(c[key] for c in cycles[mode]))

    ideal = args.feeds * args.latency / defaults.concurrency + 2 * args.latency
    wall, feeds_only = median("always", "wall_seconds"), median("never", "wall_seconds")
    sites = f"{args.feeds:,} feeds, {1000 * args.latency:.0f} ms latency"
    table = [
        Figure(
            "16c",
            f"poll, {sites}, {args.feeds:,} new items with their pages: wall",
            wall,
            "s",
            baseline=ideal,
            baseline_name=f"ideal: feeds x latency / {defaults.concurrency} + robots and page of the last",
            ratio=wall / ideal,
            target=f"<= {WALL_TARGET_RATIO}x ideal",
            met=wall <= WALL_TARGET_RATIO * ideal,
        ),
        Figure(
            "16c",
            f"poll, {sites}, the same feeds without pages (full_text: never): wall",
            feeds_only,
            "s",
            baseline=ideal - 2 * args.latency,
            baseline_name="ideal: feeds x latency / concurrency",
            ratio=feeds_only / (ideal - 2 * args.latency),
        ),
    ]
    used = median("always", "pages_used")
    details: dict[str, object] = {
        "feeds": args.feeds,
        "latency_seconds": args.latency,
        "runs": args.runs,
        "pages_used_median": used,
        "cycles": cycles,
    }
    return table, details


def main() -> int:
    """Run the benchmark (or, with ``--child``, one measured cycle of it)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=1000, help="sites (one feed, one new item each)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds each answer is held back")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="200 feeds, 1 run: for development")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child_poll(*args.child)
        Path(args.child_out).write_text(json.dumps(result), encoding="utf-8")
        return 0
    if args.quick:
        args.feeds, args.runs = 200, 1
    return measure_and_publish("full_text_poll", measure, args)


if __name__ == "__main__":
    sys.exit(main())
