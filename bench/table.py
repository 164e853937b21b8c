"""The benchmarks' common output: one row per figure, printed as a table and written as JSON.

Every bench script builds a list of ``Figure`` rows and calls ``publish``; ``bench/run.py`` (``make
bench``) runs the scripts one after another and prints all their rows as one table.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Figure:
    """One measured figure, side by side with its baseline, and the target it is held to."""

    figure: str  # the figure number: "1", "3", "5b", ...
    measure: str  # what was measured, in words
    value: float
    unit: str
    baseline: float | None = None  # the same quantity for the baseline, in the same unit
    baseline_name: str | None = None
    ratio: float | None = None  # value / baseline (the target says which way is better)
    target: str | None = None  # the target in words ("ratio >= 2")
    met: bool | None = None  # None: no target for this row


def machine() -> str:
    """The machine a result was measured on, in one line."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return (
        f"{model}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def format_value(value: float | None, unit: str) -> str:
    """A number with a sensible number of digits, and its unit."""
    if value is None:
        return ""
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def table_lines(figures: list[Figure]) -> list[str]:
    """The figures as an aligned plain-text table."""
    header = ("#", "measure", "value", "baseline", "ratio", "target", "met")
    rows = [header]
    for f in figures:
        rows.append(
            (
                f.figure,
                f.measure,
                format_value(f.value, f.unit),
                "" if f.baseline is None else f"{format_value(f.baseline, f.unit)} ({f.baseline_name})",
                "" if f.ratio is None else f"{f.ratio:.2f}x",
                f.target or "",
                "" if f.met is None else ("yes" if f.met else "NO"),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]


def markdown_lines(figures: list[Figure]) -> list[str]:
    """The figures as a Markdown table (for the README's Performance section)."""
    lines = ["| # | measure | value | baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for f in figures:
        baseline = "" if f.baseline is None else f"{format_value(f.baseline, f.unit)} ({f.baseline_name})"
        ratio = "" if f.ratio is None else f"{f.ratio:.2f}x"
        met = "" if f.met is None else ("yes" if f.met else "**no**")
        lines.append(
            f"| {f.figure} | {f.measure} | {format_value(f.value, f.unit)} | {baseline} | {ratio} "
            f"| {f.target or ''} | {met} |"
        )
    return lines


def measure_and_publish(
    name: str, measure: Callable[[Any, Path], tuple[list[Figure], dict[str, Any]]], args: Any
) -> int:
    """Run ``measure(args, scratch)`` in a scratch folder, then publish its figures as ``name``."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="feedlake-bench-") as scratch:
        figures, details = measure(args, Path(scratch))
    details["bench_seconds"] = time.monotonic() - started
    publish(name, figures, details)
    return 0


def publish(name: str, figures: list[Figure], details: dict[str, object] | None = None) -> Path:
    """Print the figures as a table and write them (plus details) to bench/results/<name>.json."""
    print(f"feedlake benchmark: {name}; {machine()}")
    for line in table_lines(figures):
        print("  " + line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{name}.json"
    document = {"machine": machine(), "figures": [asdict(f) for f in figures], "details": details or {}}
    out.write_text(json.dumps(document, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return out


def load(name: str) -> list[Figure]:
    """The figures a bench script wrote last."""
    document = json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8"))
    return [Figure(**f) for f in document["figures"]]
