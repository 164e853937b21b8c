"""Run facts as data, and the two ways people read them: a terminal table and a markdown table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from feedlake.tasks.values import SourceReport

COLUMNS = ("source", "status", "http", "fetched", "new", "duplicate", "rejected", "error")


@dataclass(frozen=True)
class RunSummary:
    """Everything a poll run did: per-source reports, files committed and where the data went."""

    run_id: str
    lake: str
    reports: tuple[SourceReport, ...]
    files_written: int
    rows_committed: int
    rows_quarantined: int
    # The articles table version the run committed (its commit point), None if it made none.
    table_version: int | None
    recovered: tuple[str, ...] = field(default=())
    validate_seconds: float = 0.0
    run_seconds: float = 0.0
    quality_report: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def sources_not_modified(self) -> int:
        """How many sources answered 304 Not Modified (no parse, no write)."""
        return sum(1 for r in self.reports if r.status == "not_modified")

    @property
    def sources_backing_off(self) -> int:
        """How many failing sources were not due yet and were skipped."""
        return sum(1 for r in self.reports if r.status == "backing_off")

    @property
    def pages_tried(self) -> int:
        """How many article pages the run tried to fetch (full text)."""
        return sum(r.pages_tried for r in self.reports)

    @property
    def pages_used(self) -> int:
        """How many new rows hold their article's body from its page."""
        return sum(r.pages_used for r in self.reports)

    @property
    def sources_failed(self) -> int:
        """How many sources ended in error."""
        return sum(1 for r in self.reports if r.status == "error")


def _cells(report: SourceReport, width: int) -> list[str]:
    error = report.error or ""
    if len(error) > width:
        error = error[: width - 1] + "…"
    return [
        report.source_id,
        report.status,
        str(report.http_status or ""),
        str(report.fetched),
        str(report.new),
        str(report.duplicate),
        str(report.rejected),
        error,
    ]


def text_table(
    columns: Sequence[str], rows: Sequence[Sequence[str]], footer: Sequence[str] | None = None
) -> str:
    """Fixed-width table with a rule under the header (and above the footer row, if any)."""
    every = [list(columns), *map(list, rows), *([list(footer)] if footer else [])]
    widths = [max(len(row[i]) for row in every) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in every]
    rule = "  ".join("-" * w for w in widths)
    lines.insert(1, rule)
    if footer:
        lines.insert(len(lines) - 1, rule)
    return "\n".join(lines)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """GitHub-style markdown table, with ``|`` in cells escaped."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_table(reports: Sequence[SourceReport], error_width: int = 70) -> str:
    """Fixed-width table of per-source results, with a totals row."""
    totals = ["TOTAL", f"{sum(r.status == 'error' for r in reports)} failed", ""]
    totals += [
        str(sum(getattr(r, name) for r in reports)) for name in ("fetched", "new", "duplicate", "rejected")
    ]
    return text_table(COLUMNS, [_cells(r, error_width) for r in reports], [*totals, ""])


def format_markdown(summary: RunSummary) -> str:
    """Markdown summary of a run, for the Prefect artifact."""
    lines = [
        f"# feedlake poll `{summary.run_id}`",
        "",
        f"Lake: `{summary.lake}`; rows committed: **{summary.rows_committed}**, "
        f"quarantined: **{summary.rows_quarantined}**, files: {summary.files_written}, "
        f"sources failed: {summary.sources_failed} of {len(summary.reports)}, "
        f"not modified: {summary.sources_not_modified}, backing off: {summary.sources_backing_off}.",
        "",
        markdown_table(COLUMNS, [_cells(r, 200) for r in summary.reports]),
    ]
    if summary.warnings:
        lines += ["", "Warnings about the lake:", *[f"- {w}" for w in summary.warnings]]
    if summary.recovered:
        lines += ["", "Recovered from an earlier interrupted run:", *[f"- {a}" for a in summary.recovered]]
    return "\n".join(lines)
