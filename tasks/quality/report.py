"""Validation results as people and programs read them: a JSON document per run, markdown, HTML.

The JSON document is what the lake keeps (``_validation/<run_id>.json``); the markdown table is
the Prefect artifact; the HTML page is rendered from one or many documents and needs no server,
no script and no network to open.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from feedlake.schemas.article import SCHEMA_VERSION
from feedlake.tasks.lake.layout import validation_key
from feedlake.tasks.pipeline.summary import markdown_table
from feedlake.tasks.quality.charts import (
    CHART_STYLE,
    DEFAULT_WEEKS,
    daily_series,
    document_time,
    render_history_section,
)
from feedlake.tasks.validate.validator import ValidationOutcome

log = logging.getLogger(__name__)

QUALITY_COLUMNS = ("source", "checked", "passed", "warned", "rejected", "status", "flags")
COUNTS = ("checked", "passed", "warned", "rejected")


def validation_document(
    outcome: ValidationOutcome, run_id: str, kind: str, unreachable: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The per-run validation record kept in the lake.

    ``unreachable`` names the sources whose fetch or parse failed this run, with the reason; they
    checked no rows, and the history charts count them as failed runs.
    """
    sources: list[dict[str, Any]] = [
        {
            "source_id": source_id,
            "checked": q.checked,
            "passed": q.passed,
            "warned": q.warned,
            "rejected": q.rejected,
            "failed": list(q.failed),
            "flags": list(q.flags),
        }
        for source_id, q in sorted(outcome.by_source.items())
    ]
    totals = {name: sum(s[name] for s in sources) for name in COUNTS}
    totals["sources"] = len(sources)
    totals["sources_failed"] = sum(1 for s in sources if s["failed"])
    totals["sources_flagged"] = sum(1 for s in sources if s["flags"])
    totals["sources_unreachable"] = len(unreachable or {})
    return {
        "run_id": run_id,
        "kind": kind,
        "suite": outcome.suite,
        "schema_version": SCHEMA_VERSION,
        "validated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "validate_seconds": round(outcome.seconds, 4),
        "totals": totals,
        "sources": sources,
        "unreachable": dict(sorted((unreachable or {}).items())),
        "expectations": [
            {
                "label": r.spec.label,
                "type": r.spec.type,
                "scope": r.spec.scope,
                "severity": r.spec.severity,
                "description": r.spec.description,
                "kwargs": {k: _plain(v) for k, v in r.spec.kwargs.items()},
                "success": r.unexpected == 0,
                "unexpected": r.unexpected,
                "by_source": dict(sorted(r.by_source.items())),
                "examples": list(r.examples),
            }
            for r in outcome.results
        ],
    }


def has_findings(document: Mapping[str, Any]) -> bool:
    """Whether a run's validation is worth keeping: rows checked, or a source flagged, failed, unreachable."""
    totals = document["totals"]
    return bool(
        totals["checked"]
        or totals["sources_flagged"]
        or totals["sources_failed"]
        or totals.get("sources_unreachable")
    )


def quality_objects(
    document: Mapping[str, Any], lake: str, history: Sequence[Mapping[str, Any]] = ()
) -> list[tuple[str, bytes]]:
    """The run's validation JSON and its HTML page, as (key, body) to commit with the run.

    ``history`` is earlier validation documents for the page's charts (see ``render_quality_html``).
    """
    if not has_findings(document):
        return []
    run_id = str(document["run_id"])
    # The page of a run shows the weeks up to that run, not up to whenever it is opened.
    page = render_quality_html([document], lake, history=history, now=document_time(document))
    return [
        (validation_key(run_id), json.dumps(document, indent=1, sort_keys=True).encode()),
        (validation_key(run_id, "html"), page.encode()),
    ]


def quality_markdown(document: Mapping[str, Any]) -> str:
    """Markdown table per source (checked, passed, warned, rejected), for the Prefect artifact."""
    rows = [_source_cells(s) for s in document["sources"]]
    totals = document["totals"]
    lines = [
        f"# Data quality, run `{document['run_id']}`",
        "",
        f"Suite `{document['suite']}`: {totals['checked']} rows checked, {totals['passed']} passed, "
        f"{totals['warned']} warned, {totals['rejected']} rejected to `_quarantine/`; "
        f"{totals['sources_failed']} source batches failed; "
        f"validation took {document['validate_seconds']:.2f} s.",
        "",
        markdown_table(QUALITY_COLUMNS, rows),
    ]
    failing = [e for e in document["expectations"] if not e["success"]]
    if failing:
        cells = [_expectation_cells(e) for e in failing]
        lines += ["", markdown_table(("expectation", "severity", "failing"), cells)]
    return "\n".join(lines)


def _source_cells(source: Mapping[str, Any]) -> list[str]:
    status = "failed" if source["failed"] else ("flagged" if source["flags"] else "ok")
    notes = "; ".join([*source["failed"], *source["flags"]])
    return [source["source_id"], *(str(source[name]) for name in COUNTS), status, notes]


def _expectation_cells(expectation: Mapping[str, Any]) -> list[str]:
    return [expectation["label"], expectation["severity"], str(expectation["unexpected"])]


def _plain(value: object) -> object:
    # Bounds like "now+1d" are datetimes once loaded; JSON keeps them as ISO strings.
    return value.isoformat() if isinstance(value, datetime) else value


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:80em;padding:0 1em;color:#1b1b1b}
h1{font-size:1.6em}h2{margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0 1.5em;width:100%}
th,td{border:1px solid #d5d5d5;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f2f2f2}td.n{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:#176b2c}.flagged{color:#8a5a00}.failed,.reject{color:#a4161a}.warn{color:#8a5a00}
.fail{color:#a4161a;font-weight:600}td.bad{background:#fdecea}code{font-size:.92em}small{color:#555}
"""


def render_quality_html(
    documents: Sequence[Mapping[str, Any]],
    lake: str,
    history: Sequence[Mapping[str, Any]] | None = None,
    *,
    now: datetime | None = None,
    weeks: int = DEFAULT_WEEKS,
) -> str:
    """A self-contained HTML data-quality report of one or more runs, newest first, with charts.

    The per-source charts cover the ``weeks`` weeks up to ``now`` (default: the current time) and
    are drawn from ``history`` plus ``documents``: validation documents as stored in
    ``_validation/<run_id>.json`` (``quality.charts.read_history`` reads them from a lake); a
    run given in both counts once. Only the runs in ``documents`` get a detailed section. A
    document with missing keys or fields of the wrong type is left out, with a logged warning.
    """
    runs: list[tuple[str, str, str, Mapping[str, Any]]] = []
    for document in documents:
        try:
            runs.append((str(document["run_id"]), _runs_row(document), _run_section(document), document))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            # A hand-edited or damaged document in the lake: the page still shows the good runs.
            run = document.get("run_id") if isinstance(document, Mapping) else None
            log.warning(
                "quality: skipped validation document %s: %s %s",
                validation_key(str(run)[:100]) if isinstance(run, str) else repr(document)[:100],
                type(exc).__name__,
                exc,
            )
    runs.sort(key=lambda run: run[0], reverse=True)
    ordered = [document for *_, document in runs]
    now = now or datetime.now(UTC)
    series = daily_series([*(history or ()), *ordered], now, weeks)
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        "<meta name=viewport content='width=device-width,initial-scale=1'>",
        "<title>feedlake data quality</title>",
        f"<style>{_STYLE}{CHART_STYLE}</style></head><body>",
        "<h1>feedlake data quality</h1>",
        f"<p>Lake <code>{_e(lake)}</code>; {len(ordered)} run(s); generated "
        f"{datetime.now(UTC).isoformat(timespec='seconds')}. Rejected rows are kept in "
        "<code>_quarantine/</code>: <code>feedlake quarantine list</code> shows them, "
        "<code>feedlake quarantine replay</code> moves those that pass after a fix.</p>",
        render_history_section(series, weeks),
        "<h2>Runs</h2>",
        _runs_table([row for _, row, _, _ in runs]),
        *(section for _, _, section, _ in runs),
        "</body></html>",
    ]
    return "\n".join(parts)


def _runs_table(rows: Sequence[str]) -> str:
    header = ("run", "kind", "validated at", *COUNTS, "sources", "failed", "flagged", "seconds")
    return _table(header, rows, "runs")


def _runs_row(d: Mapping[str, Any]) -> str:
    t = d["totals"]
    run = _e(d["run_id"])
    cells = [f"<td><a href='#run-{run}'>{run}</a></td>", f"<td>{_e(d['kind'])}</td>"]
    cells.append(f"<td>{_e(d['validated_at'])}</td>")
    for name in (*COUNTS, "sources", "sources_failed", "sources_flagged"):
        cells.append(_number(t[name], run=run, metric=name))
    cells.append(f"<td class=n>{d['validate_seconds']:.2f}</td>")
    return "<tr>" + "".join(cells) + "</tr>"


def _run_section(document: Mapping[str, Any]) -> str:
    run = _e(document["run_id"])
    parts = [
        f"<h2 id='run-{run}'>Run {run}</h2>",
        f"<p><small>{_e(document['kind'])}, suite <code>{_e(document['suite'])}</code>, "
        f"article schema v{_e(document['schema_version'])}</small></p>",
        "<h3>Sources</h3>",
    ]
    rows = []
    for s in document["sources"]:
        source = _e(s["source_id"])
        status = "failed" if s["failed"] else ("flagged" if s["flags"] else "ok")
        cells = [f"<td>{source}</td>"]
        for name in COUNTS:
            cells.append(_number(s[name], run=run, source=source, metric=name))
        notes = "<br>".join(_e(n) for n in [*s["failed"], *s["flags"]])
        where = f"data-run='{run}' data-source='{source}'"
        cells.append(f"<td class={status} {where} data-metric=status>{status}</td>")
        cells.append(f"<td>{notes}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    for source_id, reason in (document.get("unreachable") or {}).items():
        source, where = _e(source_id), f"data-run='{run}' data-source='{_e(source_id)}'"
        rows.append(
            f"<tr><td>{source}</td>{'<td class=n>0</td>' * len(COUNTS)}"
            f"<td class=failed {where} data-metric=status>unreachable</td><td>{_e(reason)}</td></tr>"
        )
    parts.append(_table(QUALITY_COLUMNS, rows, f"sources-{run}"))
    parts.append("<h3>Expectations</h3>")
    rows = []
    for e in document["expectations"]:
        label = _e(e["label"])
        examples = "<br>".join(_e(_example(x)) for x in e["examples"])
        rows.append(
            "<tr>"
            f"<td><code>{label}</code><br><small>{_e(e['description'])}</small></td>"
            f"<td>{_e(e['scope'])}</td><td class={_e(e['severity'])}>{_e(e['severity'])}</td>"
            + _number(
                e["unexpected"], run=run, expectation=label, metric="unexpected", bad=e["unexpected"] > 0
            )
            + f"<td><small>{examples}</small></td></tr>"
        )
    header = ("expectation", "scope", "severity", "failing", "examples")
    parts.append(_table(header, rows, f"expectations-{run}"))
    return "\n".join(parts)


def _number(value: object, bad: bool = False, **data: str) -> str:
    # data-* attributes let a script (or a test in a browser) find each figure without parsing prose.
    attributes = "".join(f" data-{name}='{text}'" for name, text in data.items())
    return f"<td class='n{' bad' if bad else ''}'{attributes}>{_e(value)}</td>"


def _example(example: Mapping[str, Any]) -> str:
    where = example.get("url") or example.get("article_id") or example.get("batch") or ""
    return f"{example.get('source_id')}: {where} → {example.get('value')!s}"


def _table(header: Sequence[str], rows: Sequence[str], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join(rows) if rows else f"<tr><td colspan={len(header)}>nothing</td></tr>"
    return f"<table id='{_e(table_id)}'><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
