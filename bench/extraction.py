"""Benchmark: article extraction quality and speed on the real pages in tests/cases/pages/.

Prints (writes nothing):
1. for every page with a reference body (tests/cases/pages/bodies/), token-level precision, recall
   and F1 (bag of lower-cased words) of
   (a) bare ``trafilatura.extract(html, url=url)`` with default settings, and
   (b) feedlake's ``extract_article``, given what a feed would give: for the af.mil pages the title
       and text of the matching item of the captured af.mil feed (tests/cases/pages/af.mil/LINKS.tsv),
       for the others the page's <title> and the first sentence of its og:description;
   one row per page, and the means;
2. pages per second of ``extract_articles`` on 1 process and on the 2-process pool, cold (its start-up
   included) and long-lived (warm), every page repeated until a run takes a few seconds, and the speedup.

Run: ``.venv/bin/python bench/extraction.py [--seconds 4]``.
"""

from __future__ import annotations

import argparse
import csv
import html
import re
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGES = ROOT / "tests" / "cases" / "pages"
BODIES = PAGES / "bodies"
AF_FEED = ROOT / "tests" / "cases" / "corpus" / "af.mil-mirror_TecnologiaNova" / "RSS3a26.ashx.xml"

_WORDS = re.compile(r"\w+")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_META = re.compile(rb"<meta\b[^>]*>", re.IGNORECASE)
_LINK = re.compile(rb"<link\b[^>]*>", re.IGNORECASE)
_ATTRIBUTE = re.compile(rb"""([\w:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")


@dataclass(frozen=True)
class Page:
    """One benchmark page: its bytes, the URL and feed hints the extractor gets, its reference body."""

    name: str
    data: bytes
    url: str
    title: str | None
    teaser: str | None
    reference: str | None


def tokens(text: str | None) -> Counter[str]:
    """The bag of lower-cased words of a text."""
    return Counter(_WORDS.findall((text or "").lower()))


def scores(found: str | None, reference: str) -> tuple[float, float, float]:
    """Token-level precision, recall and F1 of ``found`` against ``reference``."""
    got, want = tokens(found), tokens(reference)
    common = sum((got & want).values())
    precision = common / sum(got.values()) if got else 0.0
    recall = common / sum(want.values()) if want else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def feed_items() -> dict[str, tuple[str | None, str | None]]:
    """item link -> (title, plain text) of the captured af.mil feed, as feedlake parses it."""
    from feedlake.tasks.normalize.articles import normalize_feed
    from feedlake.tasks.parse.feed import parse_feed
    from feedlake.tasks.sources.catalog import Source
    from feedlake.tasks.values import FetchResult

    url = "http://bench.test/RSS3a26.ashx.xml"
    fetched = FetchResult("af-mil", url, datetime.now(UTC), status=200, body=AF_FEED.read_bytes())
    batch = normalize_feed(parse_feed(fetched), Source("af-mil", url, "af-mil", "bench", "news"), "bench")
    rows = batch.select(["url", "title", "summary_text", "content_text"]).to_pylist()
    return {row["url"]: (row["title"], row["content_text"] or row["summary_text"]) for row in rows}


def page_hints(data: bytes) -> tuple[str | None, str | None, str | None]:
    """The page's own (url, title, teaser): canonical or og:url, <title>, og:description's first sentence."""
    metas = [_attributes(tag) for tag in _META.findall(data)]
    links = [_attributes(tag) for tag in _LINK.findall(data)]
    url = next((a.get("href") for a in links if "canonical" in a.get("rel", "").lower().split()), None)
    url = url or next((a.get("content") for a in metas if a.get("property") == "og:url"), None)
    match = _TITLE.search(data)
    title = " ".join(html.unescape(match.group(1).decode("utf-8", "replace")).split()) if match else None
    description = next((a.get("content") for a in metas if a.get("property") == "og:description"), None)
    teaser = (
        re.split(r"(?<=[.!?])\s+", description.strip())[0] if description and description.strip() else None
    )
    return url, title or None, teaser


def _attributes(tag: bytes) -> dict[str, str]:
    return {
        m.group(1).decode("ascii", "replace").lower(): html.unescape(
            (m.group(2) or m.group(3) or b"").decode("utf-8", "replace")
        )
        for m in _ATTRIBUTE.finditer(tag)
    }


def load_pages() -> list[Page]:
    """Every captured page, with its hints and (where written) its reference body."""
    links = {}
    with (PAGES / "af.mil" / "LINKS.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            links[row["page_file"]] = row["item_link"]
    items = feed_items()
    pages = []
    for path in sorted(PAGES.glob("*/*.html")):
        name = str(path.relative_to(PAGES))
        data = path.read_bytes()
        reference_path = BODIES / f"{name}.txt"
        reference = reference_path.read_text(encoding="utf-8") if reference_path.exists() else None
        if path.parent.name == "af.mil":
            link = links[path.name]
            title, teaser = items[link]
            pages.append(Page(name, data, link, title, teaser, reference))
        else:
            url, title, teaser = page_hints(data)
            pages.append(Page(name, data, url or f"https://bench.test/{path.name}", title, teaser, reference))
    return pages


def quality(pages: list[Page]) -> None:
    """Print the per-page quality table and the means."""
    import trafilatura

    from feedlake.tasks.full_text.extract import ExtractionJob, extract_article

    header = (
        f"{'page':48} {'bare P':>6} {'R':>5} {'F1':>5}  {'ours P':>6} {'R':>5} {'F1':>5}  {'method':19} cover"
    )
    print("1. Token precision / recall / F1 against the reference bodies")
    print("   " + header)
    totals = [0.0] * 6
    scored = [page for page in pages if page.reference is not None]
    for page in scored:
        assert page.reference is not None
        bare = trafilatura.extract(page.data, url=page.url)
        ours = extract_article(ExtractionJob(page.data, page.url, title=page.title, teaser=page.teaser))
        row = scores(bare, page.reference) + scores(ours.text, page.reference)
        totals = [total + value for total, value in zip(totals, row, strict=True)]
        coverage = "" if ours.teaser_coverage is None else f"{ours.teaser_coverage:.2f}"
        print(
            f"   {page.name[:48]:48} {row[0]:6.3f} {row[1]:5.3f} {row[2]:5.3f}  {row[3]:6.3f} {row[4]:5.3f} "
            f"{row[5]:5.3f}  {ours.method:19} {coverage}"
        )
    means = [total / len(scored) for total in totals]
    print(
        f"   {'mean of ' + str(len(scored)) + ' pages':48} {means[0]:6.3f} {means[1]:5.3f} {means[2]:5.3f}  "
        f"{means[3]:6.3f} {means[4]:5.3f} {means[5]:5.3f}"
    )
    unscored = [page.name for page in pages if page.reference is None]
    if unscored:
        print(f"   (no reference body, not scored: {', '.join(unscored)})")


def speed(pages: list[Page], seconds: float, runs: int = 3) -> None:
    """Print pages per second of extract_articles on 1 process and on the 2-process pool, and the speedup.

    The pool is the process's long-lived one (``extraction_pool``): the first 2-process run pays its
    start-up (spawning the workers, importing trafilatura there), as a one-shot poll does; later runs
    find it warm, as every poll of ``feedlake serve`` after the first does. Warm and 1-process runs
    alternate, ``runs`` of each; the medians are compared.
    """
    from feedlake.tasks.full_text.extract import ExtractionJob, extract_articles

    jobs = [ExtractionJob(page.data, page.url, title=page.title, teaser=page.teaser) for page in pages]
    started = time.perf_counter()
    extract_articles(jobs, processes=1)
    one_pass = time.perf_counter() - started
    repeat = max(1, round(seconds / max(one_pass, 1e-3)))
    batch = jobs * repeat

    def rate(processes: int) -> float:
        started = time.perf_counter()
        extract_articles(batch, processes=processes)
        return len(batch) / (time.perf_counter() - started)

    print(f"2. Throughput: {len(batch)} pages ({len(jobs)} pages x {repeat}), extract_articles end to end")
    cold = rate(2)
    ones, warms = [], []
    for _ in range(runs):
        ones.append(rate(1))
        warms.append(rate(2))
    one, warm = statistics.median(ones), statistics.median(warms)
    print(f"   1 process:                   {one:7.1f} pages/s (median of {runs})")
    print(f"   2 processes, cold pool:      {cold:7.1f} pages/s (its start-up included: a one-shot run)")
    print(f"   2 processes, long-lived pool: {warm:7.1f} pages/s (median of {runs}: feedlake serve)")
    print(f"   speedup 2 vs 1: {warm / one:.2f}x with the long-lived pool, {cold / one:.2f}x cold")


def main() -> int:
    """Run the quality table and the throughput measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="target length of the 1-process run")
    args = parser.parse_args()
    import logging

    # trafilatura logs a warning for every page it discards; the table says what matters.
    logging.basicConfig(level=logging.ERROR)
    pages = load_pages()
    quality(pages)
    speed(pages, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
