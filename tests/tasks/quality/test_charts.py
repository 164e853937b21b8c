"""Per-source daily history: UTC days, gaps as zeros, quiet sources flagged, SVG well formed and inert."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from feedlake.tasks.lake.layout import validation_key
from feedlake.tasks.lake.storage import open_store
from feedlake.tasks.quality.charts import (
    daily_series,
    history_keys,
    read_documents,
    read_history,
    render_chart,
    render_history_section,
)

NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert('x')</script>&\"\x01"


def run(when: str, sources: dict[str, tuple[int, int, bool]], unreachable: tuple[str, ...] = ()) -> dict:
    """A validation document with only what the charts read: (passed, rejected, failed) per source."""
    stamp = datetime.fromisoformat(when).astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return {
        "run_id": f"{stamp}-{abs(hash((when, tuple(sources)))) % 10**8:08x}",
        "validated_at": when,
        "sources": [
            {"source_id": s, "passed": p, "rejected": r, "failed": ["rejected_share"] if f else []}
            for s, (p, r, f) in sources.items()
        ],
        "unreachable": {s: "HTTP 503" for s in unreachable},
    }


def by_id(series: list[Any]) -> dict[str, Any]:
    return {s.source_id: s for s in series}


def test_days_are_utc_and_gaps_are_zero() -> None:
    documents = [
        # 20:00 at UTC-5 on the 21st is 01:00 UTC on the 22nd.
        run("2026-11-21T20:00:00-05:00", {"a": (4, 1, False)}),
        run("2026-11-20T12:00:00+00:00", {"a": (3, 0, False)}),
        run("2026-11-20T13:00:00+00:00", {"a": (2, 0, True)}),
        run("2026-10-01T12:00:00+00:00", {"a": (99, 0, False)}),  # before the window
        {**run("2026-11-23T00:05:00+00:00", {"a": (50, 0, False)}), "kind": "replay"},  # not live
    ]
    documents.append(documents[0])  # the same run given twice counts once
    a = by_id(daily_series(documents, NOW))["a"]
    assert len(a.days) == 28 and a.days[-1] == date(2026, 11, 23) and a.days[0] == date(2026, 10, 27)
    day = {d: i for i, d in enumerate(a.days)}
    assert a.committed[day[date(2026, 11, 22)]] == 4 and a.quarantined[day[date(2026, 11, 22)]] == 1
    assert a.committed[day[date(2026, 11, 21)]] == 0  # the gap
    assert a.committed[day[date(2026, 11, 20)]] == 5 and a.failures[day[date(2026, 11, 20)]] == 1
    assert sum(a.committed) == 9 and a.committed[-1] == 0
    assert a.quiet_days == 1 and not a.quiet and a.last_rows_day == date(2026, 11, 22)


def test_a_source_without_rows_for_days_is_quiet_and_listed_first() -> None:
    documents = [
        run("2026-11-18T10:00:00+00:00", {"went-quiet": (7, 0, False), "busy": (1, 0, False)}),
        run("2026-11-23T00:30:00+00:00", {"busy": (2, 0, False)}),
        run("2026-11-22T09:00:00+00:00", {}, unreachable=("down",)),
        run("2026-11-23T00:10:00+00:00", {}, unreachable=("down",)),
    ]
    series = daily_series(documents, NOW, quiet_after=3)
    assert [s.source_id for s in series] == ["down", "went-quiet", "busy"]
    quiet, busy, down = (by_id(series)[k] for k in ("went-quiet", "busy", "down"))
    assert (quiet.quiet, quiet.quiet_days) == (True, 5)
    assert (busy.quiet, busy.quiet_days) == (False, 0)
    assert (down.quiet, down.quiet_days, sum(down.failures), down.last_rows_day) == (True, 28, 2, None)
    section = render_history_section(series)
    assert "2 of 3 sources quiet" in section
    assert "7 rows in 28 days, 0 rows the last 5 days" in section


def test_chart_is_well_formed_small_svg_with_a_text_alternative() -> None:
    documents = [
        run(f"2026-11-{day:02d}T12:00:00+00:00", {"a": (day, day % 3, day % 5 == 0)}) for day in range(1, 20)
    ]
    (series,) = daily_series(documents, NOW)
    svg = ET.fromstring(render_chart(series, "chart-0"))
    assert svg.tag == f"{SVG}svg" and svg.get("role") == "img" and svg.get("aria-labelledby") == "chart-0-t"
    title = svg.find(f"{SVG}title")
    assert title is not None and title.get("id") == "chart-0-t"
    assert (
        title.text
        == "a: 190 rows in 28 days, 0 rows the last 4 days, 19 quarantined, 3 failed runs; peak 20 rows a day"
    )
    # A few elements whatever the number of days: one path per series, no element per day.
    assert len(list(svg.iter())) <= 7
    paths = {p.get("class"): p.get("d") or "" for p in svg.iter(f"{SVG}path")}
    assert set(paths) == {"base", "rows", "held", "fail"}
    assert paths["rows"].count("M") == 19 and paths["fail"].count("M") == 3
    assert svg.get("data-quiet") == "true" and svg.find(f"{SVG}rect") is not None


def test_hostile_source_id_is_inert_text() -> None:
    series = daily_series([run("2026-11-22T12:00:00+00:00", {HOSTILE: (1, 0, False)})], NOW)
    section = render_history_section(series)
    assert "<script>" not in section and "&lt;script&gt;" in section and "\x01" not in section
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", section, re.S).group(0))  # type: ignore[union-attr]
    cleaned = HOSTILE.replace("\x01", "\ufffd")
    assert svg.get("data-source") == cleaned
    assert (svg.findtext(f"{SVG}title") or "").startswith(cleaned + ": 1 rows")


def test_history_is_read_from_the_lake_by_window(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "lake"))
    old = run("2026-09-01T12:00:00+00:00", {"a": (5, 0, False)})
    new = run("2026-11-22T12:00:00+00:00", {"a": (6, 0, False)})
    for document in (old, new):
        store.put(validation_key(document["run_id"]), json.dumps(document).encode())
        store.put(validation_key(document["run_id"], "html"), b"<html></html>")
    keys = store.list("_validation/")
    assert history_keys(keys, NOW) == [validation_key(new["run_id"])]
    assert history_keys(["_validation/no-stamp.json"], NOW) == ["_validation/no-stamp.json"]
    assert [d["run_id"] for d in read_history(store, NOW)] == [new["run_id"]]
    assert read_history(store, NOW + timedelta(days=90)) == []


AT = '"validated_at": "2026-11-22T12:00:04+00:00"'
DAMAGED = {
    "20261122T120001Z-notjson": b"{not json",
    "20261122T120002Z-notutf8": b'{"run_id": "\xff\xfe"}',
    "20261122T120003Z-alist": b"[1, 2, 3]",
    "20261122T120004Z-sources": ('{"run_id": "x", ' + AT + ', "sources": "abc"}').encode(),
    "20261122T120005Z-items": ('{"run_id": "y", ' + AT + ', "sources": [1]}').encode(),
    "20261122T120006Z-unreach": ('{"run_id": "z", ' + AT + ', "unreachable": 7}').encode(),
    "20261122T120007Z-deep": b"[" * 100_000,
}


def test_damaged_documents_are_skipped_and_named(tmp_path: Path, caplog) -> None:
    store = open_store(str(tmp_path / "lake"))
    good = run("2026-11-22T12:00:00+00:00", {"a": (6, 1, False)})
    store.put(validation_key(good["run_id"]), json.dumps(good).encode())
    for run_id, raw in DAMAGED.items():
        store.put(validation_key(run_id), raw)
    with caplog.at_level("WARNING", logger="feedlake.tasks.quality.charts"):
        history = read_history(store, NOW)
    assert [d["run_id"] for d in history] == [good["run_id"]]
    warned = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    for run_id in DAMAGED:
        assert validation_key(run_id) in warned
    keys = [k for k in store.list("_validation/") if k.endswith(".json")]
    assert read_documents(store, keys) == history
    a = by_id(daily_series(history, NOW))["a"]
    assert sum(a.committed) == 6 and sum(a.quarantined) == 1


def test_documents_of_the_wrong_shape_are_left_out_of_the_series(caplog) -> None:
    good = run("2026-11-22T12:00:00+00:00", {"a": (3, 0, False)})
    bad: list[Any] = [
        [good],
        "text",
        {**run("2026-11-22T13:00:00+00:00", {"b": (1, 0, False)}), "sources": 5},
        {**run("2026-11-22T14:00:00+00:00", {"c": (1, 0, False)}), "sources": ["c"]},
        {**run("2026-11-22T15:00:00+00:00", {"d": (1, 0, False)}), "unreachable": ["d", 1]},
    ]
    with caplog.at_level("WARNING", logger="feedlake.tasks.quality.charts"):
        series = daily_series([*bad, good], NOW)
    assert [s.source_id for s in series] == ["a"] and sum(series[0].committed) == 3
    assert len([r for r in caplog.records if r.levelname == "WARNING"]) == len(bad)
