"""Publisher fidelity: what the lake holds of each corpus feed, against feedparser on the same bytes.

Every captured feed of the bundled corpus (tests/cases/corpus) is served over local HTTP, polled once
with the library API (``feedlake.poll``, full text off) into a temporary lake, and read back from the
lake (``articles/`` and ``_quarantine/``: a held row is kept, not lost). The same bytes, with the same
response headers, go to ``feedparser.parse()``. Per feed, the distinct entries feedparser sees are
paired with the lake's rows, and five facts are compared: the number of distinct entries, titles as
plain text, links, published instants and guids. Each difference is either a documented
normalization (``NORMALIZATIONS``: what feedlake does on purpose, and why) or a defect (a value lost
or changed). The script prints a table and writes docs/publisher-fidelity.md.

Run (from the repository root)::

    .venv/bin/python bench/publisher_fidelity.py        # whole corpus -> docs/publisher-fidelity.md
    .venv/bin/python bench/publisher_fidelity.py --feeds feedjira/cnn.xml RSParser/ --out -   # a few

``--feeds`` takes corpus paths or path prefixes (as in tests/cases/corpus/MANIFEST.tsv). The exit
status is 1 when a distinct entry is lost, else 0.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases"
CORPUS = CASES / "corpus"
REPORT = ROOT / "docs" / "publisher-fidelity.md"
FIELDS = ("title", "link", "guid", "published")
# How many examples of each kind of difference the report shows.
EXAMPLES = 8

# Outcome of one compared value. "same" and the documented normalizations agree; "lost" (feedparser
# has a value, the lake none) and "differs" are defects; "lake only" (the lake has a value feedparser
# does not) is listed for review, never counted as a loss.
# Neither side has a value: not compared.
SAME, LOST, DIFFERS, LAKE_ONLY, ABSENT = "same", "lost", "differs", "lake only", "absent"
NORMALIZATIONS = {
    "title": {
        "plain text": "the title column is plain text: markup removed, entities decoded, runs of "
        "whitespace collapsed (feedparser keeps an HTML title's markup and the feed's line breaks)",
        "typographic spaces": "no-break, zero-width and other typographic spaces count as spaces "
        "and control characters are removed (tasks/normalize/html_text.py), so that text compares "
        "and searches as it reads",
    },
    "link": {
        "canonical URL": "url is the canonical article URL (lower-case scheme and host, no default "
        "port, no fragment, tracking parameters such as utm_* dropped), so that one article has one "
        "URL across feeds and polls; see tasks/normalize/canonical_urls.py",
    },
    "guid": {
        "whitespace trimmed": "the guid is kept as the feed gave it, less surrounding whitespace",
        "kept as written": "the guid is kept as the feed gave it (the schema's promise); feedparser "
        "resolves a relative guid against the feed's URL, as if it were a link",
    },
    "published": {
        "update date used": "an entry without a publication date takes its update date "
        "(published_at is the time the entry was last put out; feedparser leaves published empty)",
        "year/month/day": "a date written 2020/1/10 is read as year/month/day, as Chinese feeds "
        "write it; feedparser reads it as day/month (tasks/normalize/dates.py)",
    },
}
# Whether feedparser's value and the lake's differ only by a documented normalization.
Step = Callable[[str, Any], bool]
_SLASHED_DATE = re.compile(r"^\s*\d{4}/\d{1,2}/\d{1,2}")
_SPACE = re.compile(r"\s+")
_TYPOGRAPHIC = re.compile(r"[\u00a0\u2000-\u200b\u202f\u205f\u3000]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class FeedComparison:
    """One corpus feed: what feedparser saw, what the lake holds, and how each field compares."""

    path: str
    source_id: str
    status: str = "ok"
    error: str | None = None
    entries: int = 0  # feedparser's entries
    distinct: int = 0  # of those, distinct (identical repeats counted once)
    rows: int = 0  # lake rows of the source, accepted and held
    held: int = 0  # of those, held in the quarantine
    lost: int = 0  # distinct entries with no lake row
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: {f: Counter() for f in FIELDS})
    examples: list[tuple[str, str, str, str]] = field(default_factory=list)  # field, outcome, fp, lake
    held_reasons: Counter[str] = field(default_factory=Counter)
    lost_titles: list[str] = field(default_factory=list)

    @property
    def compared(self) -> bool:
        """Whether feedparser read entries to compare against (it does not read JSON Feed)."""
        return self.entries > 0


@dataclass(frozen=True)
class Fidelity:
    """The comparison of every feed polled."""

    feeds: tuple[FeedComparison, ...]
    run_id: str

    @property
    def lost(self) -> int:
        """Distinct entries of every feed that have no row in the lake."""
        return sum(f.lost for f in self.feeds)

    def outcomes(self, name: str) -> Counter[str]:
        """How every compared value of one field fared, summed over the feeds."""
        total: Counter[str] = Counter()
        for feed in self.feeds:
            total.update(feed.outcomes[name])
        return total


def corpus_paths(selectors: Sequence[str] = ()) -> list[str]:
    """Corpus files (paths relative to tests/cases/corpus), all or those starting with a selector."""
    paths = sorted(
        p.relative_to(CORPUS).as_posix()
        for p in CORPUS.rglob("*")
        if p.is_file() and p.name not in {"MANIFEST.tsv", "README.md"}
    )
    if not selectors:
        return paths
    chosen = [p for p in paths if any(p == s or p.startswith(s) for s in selectors)]
    if not chosen:
        raise SystemExit(f"no corpus file matches {', '.join(selectors)}")
    return chosen


def source_id(path: str) -> str:
    """The source id of a corpus file (the rule tests/conftest.py uses)."""
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")[:64]


def compare_corpus(paths: Sequence[str], scratch: Path) -> Fidelity:
    """Poll ``paths`` once into a lake under ``scratch`` and compare each feed with feedparser."""
    import httpx

    import feedlake
    from feedlake.tasks.demo.snapshot_server import serve_snapshots
    from feedlake.tasks.settings import FeedlakeSettings

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    settings = FeedlakeSettings(allow_private_networks=True, per_host_min_gap_seconds=0.0)
    with serve_snapshots(CASES) as base:
        urls = {path: f"{base}/corpus/{path}" for path in paths}
        sources = _write_sources(scratch / "sources.yaml", urls)
        lake = scratch / "lake"
        summary = feedlake.poll(sources, lake, settings)
        # The bytes and headers the poll was given: the server answers every GET alike.
        responses = {}
        with httpx.Client(trust_env=False, timeout=30) as client:
            for path, url in urls.items():
                answer = client.get(url)
                responses[path] = (answer.content, {k.lower(): v for k, v in answer.headers.items()})
    rows = _lake_rows(lake)
    reports = {r.source_id: r for r in summary.reports}
    feeds = []
    for path in paths:
        sid = source_id(path)
        body, headers = responses[path]
        report = reports.get(sid)
        feed = FeedComparison(path, sid)
        if report is not None and report.status not in ("ok", "not_modified"):
            feed.status, feed.error = report.status, report.error
        _compare_feed(feed, body, headers, urls[path], rows.get(sid, []))
        feeds.append(feed)
    return Fidelity(tuple(feeds), summary.run_id)


def _write_sources(path: Path, urls: dict[str, str]) -> Path:
    lines = ["sources:"]
    for corpus_path, url in urls.items():
        sid = source_id(corpus_path)
        lines += [
            f"  - id: {sid}",
            f'    url: "{url}"',
            f"    name: {sid}",
            "    publisher: fidelity",
            "    kind: news",
            # The items link to sites this machine may not reach; the comparison is of the feeds.
            "    full_text: never",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _lake_rows(lake: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the lake, accepted and held, by source id."""
    from deltalake import DeltaTable

    wanted = ["source_id", "guid", "url", "title", "summary_text", "published_at", "published_raw"]
    found: dict[str, list[dict[str, Any]]] = {}
    for folder, held in (("articles", False), ("_quarantine", True)):
        if not DeltaTable.is_deltatable(str(lake / folder)):
            continue
        # The tables' latest versions, through their Delta logs.
        dataset = DeltaTable(str(lake / folder)).to_pyarrow_dataset()
        columns = wanted + (["failed_expectations"] if held else [])
        for row in dataset.to_table(columns=columns).to_pylist():
            row["held"] = held
            found.setdefault(row["source_id"], []).append(row)
    return found


def _compare_feed(
    feed: FeedComparison, body: bytes, headers: dict[str, str], url: str, rows: list[dict[str, Any]]
) -> None:
    import feedparser

    from feedlake.tasks.normalize.canonical_urls import canonical_url

    # feedparser.parse(url) takes the response URL as the base of relative links, unless the
    # response names another in Content-Location: the same base, given to the bytes.
    parsed = feedparser.parse(body, response_headers={"content-location": url, **headers})
    base = parsed.get("href") or headers.get("content-location") or url
    feed.entries = len(parsed.entries)
    feed.rows = len(rows)
    feed.held = sum(1 for r in rows if r["held"])
    for row in rows:
        if row["held"]:
            feed.held_reasons.update(row.get("failed_expectations") or [])
    distinct = _distinct(parsed.entries)
    feed.distinct = len(distinct)
    pairs = _pair(distinct, rows, lambda link: canonical_url(link, base))
    for entry, row in pairs:
        if row is None:
            feed.lost += 1
            feed.lost_titles.append(_plain(entry.get("title"), "html") or entry.get("id") or "(untitled)")
            continue
        for name, fp_value, lake_value, outcome in _field_outcomes(entry, row, base, canonical_url):
            if outcome == ABSENT:
                continue
            feed.outcomes[name][outcome] += 1
            if outcome not in (SAME,) and sum(1 for e in feed.examples if e[:2] == (name, outcome)) < 3:
                feed.examples.append((name, outcome, str(fp_value), str(lake_value)))


def _distinct(entries: Iterable[Any]) -> list[Any]:
    """feedparser's entries less identical repeats: same id, link, title, summary and content."""
    seen: set[tuple[object, ...]] = set()
    kept = []
    for entry in entries:
        content = tuple(c.get("value") for c in entry.get("content", []))
        key = (entry.get("id"), entry.get("link"), entry.get("title"), entry.get("summary"), content)
        if key not in seen:
            seen.add(key)
            kept.append(entry)
    return kept


def _pair(entries: Sequence[Any], rows: Sequence[dict[str, Any]], canonical: Any) -> list[tuple[Any, Any]]:
    """Each entry with a lake row: the pairs sharing most of guid, link, title, date and text first."""
    by_token: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        for token in _row_tokens(row):
            by_token.setdefault(token, []).append(index)
    candidates = []
    for position, entry in enumerate(entries):
        scores: Counter[int] = Counter()
        for token in _entry_tokens(entry, canonical):
            scores.update(by_token.get(token, ()))
        candidates += [(-score, position, index) for index, score in scores.items()]
    # Best pairs first, so that an entry with little to go on (no title, no link) cannot take the
    # row of one that matches it on everything; ties go by document order.
    paired: dict[int, int] = {}
    taken: set[int] = set()
    for _, position, index in sorted(candidates):
        if position not in paired and index not in taken:
            paired[position] = index
            taken.add(index)
    return [(entry, rows[paired[p]] if p in paired else None) for p, entry in enumerate(entries)]


def _row_tokens(row: dict[str, Any]) -> set[str]:
    values = {
        "g": row["guid"],
        "l": row["url"],
        "t": _collapse(row["title"]),
        "p": row["published_raw"],
        "s": _collapse(row["summary_text"])[:80] or None,
    }
    return {f"{k}:{v}" for k, v in values.items() if v}


def _entry_tokens(entry: Any, canonical: Any) -> set[str]:
    link = entry.get("link")
    values = {
        "g": (entry.get("id") or "").strip(),
        "l": canonical(link) if link else None,
        "t": _plain(entry.get("title"), entry.get("title_detail", {}).get("type")),
        "p": (_own(entry, "published") or _own(entry, "updated") or "").strip(),
        "s": _plain(entry.get("summary"), "html")[:80] or None,
    }
    return {f"{k}:{v}" for k, v in values.items() if v}


def _field_outcomes(
    entry: Any, row: dict[str, Any], base: str, canonical_url: Any
) -> list[tuple[str, object, object, str]]:
    """(field, feedparser's value, the lake's value, outcome) for each compared field."""
    title, link, guid = entry.get("title"), entry.get("link"), entry.get("id")
    title_steps: list[tuple[str, Step]] = [
        ("plain text", lambda fp, lake: _plain(fp, "html") == lake),
        ("typographic spaces", lambda fp, lake: _spaced(fp) == lake),
    ]
    link_steps: list[tuple[str, Step]] = [
        ("canonical URL", lambda fp, lake: canonical_url(fp, base) == lake),
        ("not a web link", lambda fp, lake: lake is None and not _web(fp)),
    ]
    guid_steps: list[tuple[str, Step]] = [
        ("whitespace trimmed", lambda fp, lake: fp.strip() == lake),
        ("kept as written", lambda fp, lake: lake is not None and urljoin(base, lake) == fp),
    ]
    return [
        ("title", title, row["title"], _outcome(title, row["title"], title_steps)),
        ("link", link, row["url"], _outcome(link, row["url"], link_steps)),
        ("guid", guid, row["guid"], _outcome(guid, row["guid"], guid_steps)),
        _published(entry, row),
    ]


def _spaced(value: str) -> str:
    # No-break, zero-width and other typographic spaces read as spaces; control characters go.
    return _collapse(_CONTROL.sub("", _TYPOGRAPHIC.sub(" ", _plain(value, "html"))))


def _web(value: str) -> bool:
    return urlsplit(value.strip()).scheme.lower() in ("http", "https", "")


def _outcome(fp_value: str | None, lake_value: str | None, steps: Sequence[tuple[str, Step]]) -> str:
    if not fp_value or not fp_value.strip():
        return ABSENT if not lake_value else LAKE_ONLY
    if fp_value == lake_value:
        return SAME
    for name, agrees in steps:
        if agrees(fp_value, lake_value):
            return name
    return LOST if lake_value is None else DIFFERS


def _published(entry: Any, row: dict[str, Any]) -> tuple[str, object, object, str]:
    from feedlake.tasks.parse.xml_entry import from_struct

    published = from_struct(_own(entry, "published_parsed"))
    updated = from_struct(_own(entry, "updated_parsed"))
    lake = row["published_at"]
    lake_second = lake.replace(microsecond=0) if lake is not None else None
    raw = _own(entry, "published") or _own(entry, "updated")
    if published is None:
        if lake_second is None:
            outcome = ABSENT
        elif updated is not None and updated == lake_second:
            outcome = "update date used"
        else:
            outcome = LAKE_ONLY
    elif lake_second is None:
        outcome = LOST
    elif published == lake_second:
        outcome = SAME
    elif raw and _SLASHED_DATE.match(raw):
        outcome = "year/month/day"
    else:
        outcome = DIFFERS
    return "published", f"{published} ({raw})", lake, outcome


def _own(entry: Any, key: str) -> Any:
    # feedparser's get() answers "updated" with the published date when there is none (and warns):
    # the dict's own get sees only what the entry holds.
    return dict.get(entry, key)


class _TextOf(HTMLParser):
    """The text of an HTML fragment (stdlib parser: independent of feedlake's own)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in ("script", "style") and self._skip > 0

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def _plain(value: str | None, kind: str | None) -> str:
    if not value:
        return ""
    if kind and "html" in kind:
        parser = _TextOf()
        parser.feed(value)
        parser.close()
        value = "".join(parser.parts)
    return _collapse(html.unescape(value) if kind and "html" in kind else value)


def _collapse(value: str | None) -> str:
    return _SPACE.sub(" ", value or "").strip()


def _share(counts: Counter[str], agreeing: Iterable[str]) -> str:
    total = sum(counts.values())
    if not total:
        return "-"
    good = sum(counts[k] for k in agreeing)
    return f"{100 * good / total:.1f} %"


def _agreeing(name: str) -> tuple[str, ...]:
    return (SAME, *NORMALIZATIONS[name])


def render_table(fidelity: Fidelity) -> str:
    """A terminal table: one line per field, then the feeds that lost entries."""
    lines = [f"{'field':<10} {'values':>7} {'same':>7} {'document':>9} {'defects':>8} {'lake only':>9}"]
    for name in FIELDS:
        counts = fidelity.outcomes(name)
        documented = sum(counts[k] for k in NORMALIZATIONS[name])
        defects = counts[LOST] + counts[DIFFERS]
        lines.append(
            f"{name:<10} {sum(counts.values()):>7} {counts[SAME]:>7} {documented:>9} {defects:>8} "
            f"{counts[LAKE_ONLY]:>9}"
        )
    compared = [f for f in fidelity.feeds if f.compared]
    lines.append(
        f"feeds {len(fidelity.feeds)} (compared {len(compared)}), distinct entries "
        f"{sum(f.distinct for f in compared)}, lake rows {sum(f.rows for f in compared)} "
        f"(held {sum(f.held for f in compared)}), lost {fidelity.lost}"
    )
    for feed in fidelity.feeds:
        if feed.lost:
            lines.append(f"  LOST {feed.lost} of {feed.distinct}: {feed.path} ({feed.status})")
    return "\n".join(lines)


def render_markdown(fidelity: Fidelity, command: str) -> str:
    """The report: totals, documented normalizations, defects with examples, and every feed."""
    compared = [f for f in fidelity.feeds if f.compared]
    out = [
        "# Publisher fidelity: the lake against feedparser",
        "",
        f"Generated by `{command}` (bench/publisher_fidelity.py; its docstring says how it works). "
        "Each corpus feed (tests/cases/corpus) was served over local HTTP, polled once by "
        "`feedlake.poll` into a fresh lake, read back (accepted and quarantined rows), and compared "
        f"with `feedparser.parse()` (feedparser {_feedparser_version()}) of the same bytes and "
        "response headers (the feed URL as Content-Location, the base feedparser.parse(url) would use).",
        "",
        f"- Feeds: {len(fidelity.feeds)}; compared: {len(compared)} (feedparser reads no entry of "
        "the others: JSON Feed, or a document it cannot read).",
        f"- feedparser's entries: {sum(f.entries for f in compared)}, distinct: "
        f"{sum(f.distinct for f in compared)} (identical repeats, same id, link, title, summary and "
        "content, count once).",
        f"- Lake rows of those feeds: {sum(f.rows for f in compared)}, of which held in the "
        f"quarantine: {sum(f.held for f in compared)}."
        + (
            " More rows than distinct entries: entries that differ only outside those fields (a "
            "date, say), with no guid or link to name them, which feedlake keeps as different articles."
            if sum(f.rows for f in compared) > sum(f.distinct for f in compared)
            else ""
        ),
        f"- **Distinct entries lost: {fidelity.lost}.**",
        "",
        "## Fields",
        "",
        "Each distinct entry is paired with the lake row sharing most of its guid, link, title, date "
        "string and summary. A value agrees when it is the same or differs only by a documented "
        "normalization; a defect is a value the lake lost or changed; *lake only* is a value the "
        "lake has and feedparser does not (listed for review).",
        "",
        "| field | compared | same | documented | lost | differs | lake only | agree |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in FIELDS:
        counts = fidelity.outcomes(name)
        documented = sum(counts[k] for k in NORMALIZATIONS[name])
        out.append(
            f"| {name} | {sum(counts.values())} | {counts[SAME]} | {documented} | {counts[LOST]} | "
            f"{counts[DIFFERS]} | {counts[LAKE_ONLY]} | {_share(counts, _agreeing(name))} |"
        )
    out += ["", "## Documented normalizations", ""]
    for name in FIELDS:
        counts = fidelity.outcomes(name)
        for key, reason in NORMALIZATIONS[name].items():
            out.append(f"- **{name}: {key}** ({counts[key]} values): {reason}.")
    out += ["", "## Defects and values to review", ""]
    any_listed = False
    for name in FIELDS:
        for outcome in (LOST, DIFFERS, LAKE_ONLY):
            examples = [(f.path, e) for f in fidelity.feeds for e in f.examples if e[:2] == (name, outcome)]
            if not examples:
                continue
            any_listed = True
            total = fidelity.outcomes(name)[outcome]
            out += [f"### {name}: {outcome} ({total})", "", "| feed | feedparser | lake |", "|---|---|---|"]
            for path, (_, _, fp_value, lake_value) in examples[:EXAMPLES]:
                out.append(f"| {path} | {_cell(fp_value)} | {_cell(lake_value)} |")
            out.append("")
    lost_feeds = [f for f in fidelity.feeds if f.lost]
    if lost_feeds:
        any_listed = True
        out += [
            "### Lost entries",
            "",
            "| feed | status | lost | of | first titles |",
            "|---|---|---:|---:|---|",
        ]
        for feed in lost_feeds:
            titles = "; ".join(feed.lost_titles[:3])
            out.append(f"| {feed.path} | {feed.status} | {feed.lost} | {feed.distinct} | {_cell(titles)} |")
        out.append("")
    if not any_listed:
        out += ["None.", ""]
    reasons: Counter[str] = Counter()
    for feed in fidelity.feeds:
        reasons.update(feed.held_reasons)
    if reasons:
        out += [
            "## Rows held in the quarantine (kept, with the reason)",
            "",
            "| reason | rows |",
            "|---|---:|",
        ]
        out += [f"| {_cell(reason)} | {count} |" for reason, count in reasons.most_common()]
        out.append("")
    out += [
        "## Every feed",
        "",
        "Columns: feedparser's entries and distinct entries, lake rows (held), lost, then per field the "
        "values that agree of those compared.",
        "",
        "| feed | status | entries | distinct | rows (held) | lost | title | link | guid | published |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for feed in fidelity.feeds:
        shares = " | ".join(_fraction(feed.outcomes[n], _agreeing(n)) for n in FIELDS)
        out.append(
            f"| {feed.path} | {feed.status if feed.compared else 'not compared'} | {feed.entries} | "
            f"{feed.distinct} | {feed.rows} ({feed.held}) | {feed.lost} | {shares} |"
        )
    return "\n".join(out) + "\n"


def _feedparser_version() -> str:
    import feedparser

    return str(feedparser.__version__)


def _fraction(counts: Counter[str], agreeing: Iterable[str]) -> str:
    total = sum(counts.values())
    return f"{sum(counts[k] for k in agreeing)}/{total}" if total else "-"


def _cell(value: str, limit: int = 120) -> str:
    text = _collapse(value).replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: Sequence[str] | None = None) -> int:
    """Compare, print the table, write the report; 1 if a distinct entry was lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", nargs="*", default=[], help="corpus paths or path prefixes (default: all)")
    parser.add_argument("--out", default=str(REPORT), help="report file ('-': print the table only)")
    args = parser.parse_args(argv)
    # The poll warns about every ill-formed corpus feed; the report says what matters here.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    paths = corpus_paths(args.feeds)
    with tempfile.TemporaryDirectory(prefix="fidelity-") as scratch:
        fidelity = compare_corpus(paths, Path(scratch))
    print(render_table(fidelity))
    if args.out != "-":
        command = "python bench/publisher_fidelity.py" + (
            f" --feeds {' '.join(args.feeds)}" if args.feeds else ""
        )
        Path(args.out).write_text(render_markdown(fidelity, command), encoding="utf-8")
        print(f"wrote {args.out}")
    return 1 if fidelity.lost else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
