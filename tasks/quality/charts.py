"""Per-source history for the data-quality page: rows per UTC day over the last weeks, as small SVG.

Input is validation documents (``_validation/<run_id>.json``, or any mapping with the same keys);
only ``run_id``, ``kind``, ``validated_at``, ``sources[].source_id/passed/rejected/failed`` and the
optional ``unreachable`` map are read, from poll runs only (see ``LIVE_KINDS``). A day with no
document counts as zero: a run that checked nothing writes no document. Output is a table with one
inline SVG per source, quiet sources first.

The SVG is written by hand: the page must open with no script and no network, and a charting
library brings one or the other (or a rasteriser). A chart is a handful of elements whatever the
number of days: one ``<path>`` per series, each bar a subpath.

A damaged document (not JSON, not UTF-8, not an object, ``sources`` or ``unreachable`` of the wrong
type) is skipped with a warning naming its key or run: one bad file must not take the page down.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from feedlake.tasks.lake.layout import RUN_STAMP_FORMAT, VALIDATION
from feedlake.tasks.lake.storage import ObjectStore

log = logging.getLogger(__name__)
DEFAULT_WEEKS = 4
QUIET_DAYS = 3
DAY_WIDTH = 6
BAR_WIDTH = 5
BAR_HEIGHT = 30
FAIL_BAND = 6
# Replays and backfills move old rows: counting them would hide a feed that stopped publishing.
LIVE_KINDS = ("poll",)

_RUN_STAMP = re.compile(r"(\d{8}T\d{6}Z)")
# XML 1.0 refuses these even as character references: a hostile id must not break the SVG.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


@dataclass(frozen=True)
class SourceSeries:
    """One source's counts per UTC day, oldest first, and how long it has been without rows."""

    source_id: str
    days: tuple[date, ...]
    committed: tuple[int, ...]
    quarantined: tuple[int, ...]
    failures: tuple[int, ...]
    quiet_days: int
    quiet: bool

    @property
    def last_rows_day(self) -> date | None:
        """The last day in the window with committed rows, if any."""
        found = [day for day, rows in zip(self.days, self.committed, strict=True) if rows]
        return found[-1] if found else None


def window_days(now: datetime, weeks: int = DEFAULT_WEEKS) -> tuple[date, ...]:
    """The UTC days of the last ``weeks`` weeks, ending with ``now``'s day."""
    today = now.astimezone(UTC).date()
    return tuple(today - timedelta(days=back) for back in range(weeks * 7 - 1, -1, -1))


def document_time(document: Mapping[str, Any]) -> datetime | None:
    """When a run was validated (UTC): ``validated_at``, else the stamp its run id starts with."""
    raw = document.get("validated_at")
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            parsed = None
        if parsed is not None:
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    return run_id_time(str(document.get("run_id", "")))


def run_id_time(text: str) -> datetime | None:
    """The UTC start time a run id (or a key holding one) carries: ``20261123T205959Z-...``."""
    found = _RUN_STAMP.search(text)
    if found is None:
        return None
    try:
        return datetime.strptime(found.group(1), RUN_STAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


def daily_series(
    documents: Iterable[Mapping[str, Any]],
    now: datetime,
    weeks: int = DEFAULT_WEEKS,
    quiet_after: int = QUIET_DAYS,
) -> list[SourceSeries]:
    """Rows committed, rows quarantined and failed runs per source per UTC day; gaps are zeros."""
    days = window_days(now, weeks)
    index = {day: position for position, day in enumerate(days)}
    counts: dict[str, list[list[int]]] = {}
    seen_runs: set[str] = set()
    for document in documents:
        problem = document_problem(document)
        if problem is not None:
            log.warning("quality: skipped a validation document in the charts (%s)", problem)
            continue
        run_id = str(document.get("run_id", ""))
        if run_id in seen_runs or document.get("kind", "poll") not in LIVE_KINDS:
            continue
        seen_runs.add(run_id)
        when = document_time(document)
        position = index.get(when.date()) if when is not None else None
        if position is None:
            continue
        for source in document.get("sources") or ():
            row = _counts(counts, str(source.get("source_id", "")), len(days))
            row[0][position] += _count(source.get("passed"))
            row[1][position] += _count(source.get("rejected"))
            row[2][position] += 1 if source.get("failed") else 0
        for source_id in document.get("unreachable") or {}:
            _counts(counts, str(source_id), len(days))[2][position] += 1
    series = []
    for source_id, (committed, quarantined, failures) in counts.items():
        quiet_days = next((i for i, rows in enumerate(reversed(committed)) if rows), len(days))
        series.append(
            SourceSeries(
                source_id,
                days,
                tuple(committed),
                tuple(quarantined),
                tuple(failures),
                quiet_days,
                quiet_days >= quiet_after,
            )
        )
    # Quiet sources first, longest silence first: they are what the operator opens the page for.
    return sorted(series, key=lambda s: (not s.quiet, -s.quiet_days, s.source_id))


def history_keys(keys: Iterable[str], now: datetime, weeks: int = DEFAULT_WEEKS) -> list[str]:
    """The validation JSON keys whose run started in the window (keys without a stamp are kept)."""
    start = window_days(now, weeks)[0]
    chosen = []
    for key in keys:
        if not key.endswith(".json"):
            continue
        started = run_id_time(key)
        # A run that started just before midnight may validate after it: keep the day before too.
        if started is None or started.date() >= start - timedelta(days=1):
            chosen.append(key)
    return chosen


def read_history(store: ObjectStore, now: datetime, weeks: int = DEFAULT_WEEKS) -> list[dict[str, Any]]:
    """The validation documents of the runs in the last ``weeks`` weeks: one LIST, one GET each."""
    return read_documents(store, history_keys(store.list(f"{VALIDATION}/"), now, weeks))


def read_documents(store: ObjectStore, keys: Iterable[str]) -> list[dict[str, Any]]:
    """The validation documents at ``keys``, in order; a missing or damaged one is skipped."""
    documents = []
    for key in keys:
        raw = store.get(key)
        document = load_document(raw, key) if raw is not None else None
        if document is not None:
            documents.append(document)
    return documents


def load_document(raw: bytes, key: str) -> dict[str, Any] | None:
    """A stored validation document, or None with a warning naming ``key`` if it is damaged."""
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # UnicodeDecodeError is a ValueError, named for the reader; "[[[[..." deep enough recurses.
        log.warning("quality: skipped validation document %s: not UTF-8 JSON (%s)", key, exc)
        return None
    problem = document_problem(document)
    if problem is not None:
        log.warning("quality: skipped validation document %s: %s", key, problem)
        return None
    return dict(document)


def document_problem(document: object) -> str | None:
    """Why a validation document cannot be charted (its shape or field types), or None if it can."""
    if not isinstance(document, Mapping):
        return f"a JSON {type(document).__name__}, not an object"
    run = f"run {str(document.get('run_id'))[:100]!r}"
    sources = document.get("sources")
    if sources is not None and (
        not isinstance(sources, list) or not all(isinstance(source, Mapping) for source in sources)
    ):
        return f"{run}: 'sources' is not a list of objects"
    unreachable = document.get("unreachable")
    if unreachable is not None and not isinstance(unreachable, Mapping):
        return f"{run}: 'unreachable' is not an object"
    return None


def render_chart(series: SourceSeries, chart_id: str) -> str:
    """An inline SVG of one source's days: committed bars, quarantined stacked, failure marks."""
    count = len(series.days)
    width, height = count * DAY_WIDTH, BAR_HEIGHT + 2 + FAIL_BAND
    peak = max((c + q for c, q in zip(series.committed, series.quarantined, strict=True)), default=0)
    committed, quarantined, failed = [], [], []
    for position in range(count):
        x = position * DAY_WIDTH
        low = _bar_height(series.committed[position], peak)
        high = _bar_height(series.committed[position] + series.quarantined[position], peak)
        if low:
            committed.append(f"M{x} {BAR_HEIGHT - low}h{BAR_WIDTH}v{low}h-{BAR_WIDTH}z")
        if high > low:
            quarantined.append(f"M{x} {BAR_HEIGHT - high}h{BAR_WIDTH}v{high - low}h-{BAR_WIDTH}z")
        if series.failures[position]:
            failed.append(f"M{x} {BAR_HEIGHT + 2}h{BAR_WIDTH}v{FAIL_BAND}h-{BAR_WIDTH}z")
    parts = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='spark' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-labelledby='{chart_id}-t' "
        f"data-source='{_text(series.source_id)}' data-quiet='{str(series.quiet).lower()}'>",
        f"<title id='{chart_id}-t'>{_text(series.source_id)}: {_text(summary_text(series))}; "
        f"peak {peak} rows a day</title>",
    ]
    if series.quiet:
        quiet = min(series.quiet_days, count) * DAY_WIDTH
        parts.append(f"<rect class='quiet' x='{width - quiet}' y='0' width='{quiet}' height='{height}'/>")
    parts.append(f"<path class='base' d='M0 {BAR_HEIGHT}.5H{width}'/>")
    for name, subpaths in (("rows", committed), ("held", quarantined), ("fail", failed)):
        if subpaths:
            parts.append(f"<path class='{name}' d='{''.join(subpaths)}'/>")
    parts.append("</svg>")
    return "".join(parts)


def summary_text(series: SourceSeries) -> str:
    """What the chart shows, in words: rows in the window, the recent silence, held rows, failures."""
    total, held, failed = sum(series.committed), sum(series.quarantined), sum(series.failures)
    parts = [f"{total} rows in {len(series.days)} days"]
    if series.quiet_days and total:
        recent = "today" if series.quiet_days == 1 else f"the last {series.quiet_days} days"
        parts.append(f"0 rows {recent}")
    if held:
        parts.append(f"{held} quarantined")
    if failed:
        parts.append(f"{failed} failed run{'s' if failed != 1 else ''}")
    return ", ".join(parts)


CHART_STYLE = """
svg.spark{display:block}svg.spark .rows{fill:#2f6db5}svg.spark .held{fill:#d08a00}
svg.spark .fail{fill:#a4161a}svg.spark .base{stroke:#9a9a9a;stroke-width:1;fill:none}
svg.spark .quiet{fill:#fff2cc}td.quiet{color:#8a5a00;font-weight:600}.legend i{display:inline-block;
width:.8em;height:.8em;margin:0 .3em 0 .8em;vertical-align:-.05em}
"""


def render_history_section(
    series: Sequence[SourceSeries], weeks: int = DEFAULT_WEEKS, quiet_after: int = QUIET_DAYS
) -> str:
    """The page section: a legend and one row per source with its chart and the same figures in text."""
    if not series:
        return "<h2 id=history>Sources over time</h2><p>No validation results in the window.</p>"
    first, last = series[0].days[0], series[0].days[-1]
    quiet = sum(1 for s in series if s.quiet)
    parts = [
        f"<h2 id=history>Sources over the last {weeks} weeks</h2>",
        f"<p>UTC days {first.isoformat()} to {last.isoformat()}, one bar a day; "
        f"<strong>{quiet} of {len(series)} sources quiet</strong> (no rows committed for "
        f"{quiet_after} days or more, shaded). A day without a validation result counts as zero."
        "</p><p class=legend><i style='background:#2f6db5'></i>rows committed"
        "<i style='background:#d08a00'></i>rows quarantined"
        "<i style='background:#a4161a'></i>failed runs (below the line)</p>",
        "<table id=history-table><thead><tr><th>source</th><th>rows per day</th><th>rows</th>"
        "<th>quarantined</th><th>failed runs</th><th>last rows</th><th>status</th></tr></thead><tbody>",
    ]
    for number, s in enumerate(series):
        source = _text(s.source_id)
        where = f"data-run='' data-source='{source}'"
        status = "quiet" if s.quiet else "ok"
        last_rows = s.last_rows_day.isoformat() if s.last_rows_day else "none"
        parts.append(
            f"<tr><td>{source}</td><td>{render_chart(s, f'chart-{number}')}"
            f"<small>{_text(summary_text(s))}</small></td>"
            f"<td class=n {where} data-metric=rows_in_window>{sum(s.committed)}</td>"
            f"<td class=n {where} data-metric=quarantined_in_window>{sum(s.quarantined)}</td>"
            f"<td class=n {where} data-metric=failed_runs_in_window>{sum(s.failures)}</td>"
            f"<td {where} data-metric=last_rows>{last_rows}</td>"
            f"<td class={status} {where} data-metric=activity>{status}</td></tr>"
        )
    parts.append("</tbody></table>")
    return "\n".join(parts)


def _counts(counts: dict[str, list[list[int]]], source_id: str, length: int) -> list[list[int]]:
    return counts.setdefault(source_id, [[0] * length, [0] * length, [0] * length])


def _count(value: object) -> int:
    # Documents are ours, but a hand-edited or foreign one must not break the page.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _bar_height(rows: int, peak: int) -> int:
    if rows <= 0 or peak <= 0:
        return 0
    # One pixel at least: a day with a single row must not look like a silent one.
    return max(1, round(rows / peak * BAR_HEIGHT))


def _text(value: object) -> str:
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)
