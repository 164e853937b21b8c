"""A poll over a lake whose state objects hold garbage: named, set aside, rebuilt; others land."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import write_sources

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

GARBAGE = b"\xff\xfe\x00 not what anyone wrote \x80"


def test_damaged_state_objects_are_set_aside_and_the_run_goes_on(
    tmp_path: Path, snapshot_base_url: str
) -> None:
    from feedlake.flows.poll import poll_flow

    lake = tmp_path / "lake"
    feeds = {
        "a": f"{snapshot_base_url}/centcom/centcom-press-releases.RSS.ashx.xml",
        "b": f"{snapshot_base_url}/corpus/RSParser/DaringFireball.rss",
        "c": f"{snapshot_base_url}/corpus/RSParser/inessential.json",
    }
    first = poll_flow(
        sources=str(write_sources(tmp_path / "1.yaml", list(feeds.items())[:2])), lake=str(lake)
    )
    assert {r.source_id: r.status for r in first.reports} == {"a": "ok", "b": "ok"}
    damaged = {
        "_state/feeds/a.json": GARBAGE,
        "_state/seen/a.parquet": GARBAGE,
        "_state/health.json": b'{"a": 1',
        "_txn/20200101T000000Z-deadbeef/intent.json": GARBAGE,
    }
    for key, body in damaged.items():
        (lake / key).parent.mkdir(parents=True, exist_ok=True)
        (lake / key).write_bytes(body)
    second = poll_flow(sources=str(write_sources(tmp_path / "2.yaml", list(feeds.items()))), lake=str(lake))
    reports = {r.source_id: r for r in second.reports}
    # The new source lands; the untouched one answers 304.
    assert reports["c"].status == "ok" and reports["c"].new > 0
    assert reports["b"].status == "not_modified"
    # a: validators gone, so fetched in full; the rebuilt index knows every row: nothing twice.
    a = reports["a"]
    assert a.status == "ok" and a.new == 0 and a.duplicate == first.reports[0].new == 3
    warnings = " ".join(a.warnings)
    assert (
        "damaged object _state/feeds/a.json" in warnings
        and "damaged object _state/seen/a.parquet" in warnings
    )
    assert any("damaged object _state/health.json" in w for w in second.warnings)
    assert any("_txn/20200101T000000Z-deadbeef/intent.json" in r for r in second.recovered)
    for key, body in damaged.items():
        copies = list((lake / "_state" / "damaged" / key).parent.glob(Path(key).name + ".*"))
        assert [c.read_bytes() for c in copies] == [body], key
    health = json.loads((lake / "_state" / "health.json").read_text())
    assert set(health) == {"a", "b", "c"}
    assert second.rows_committed == reports["c"].new
