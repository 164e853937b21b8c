"""Fault injection: whatever one source's stage raises, the other source lands and the run goes on."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import feedlake.tasks.pipeline.full_text
import feedlake.tasks.pipeline.poll
import feedlake.tasks.pipeline.stages
from feedlake.tasks.fetch.client import build_client, fetch_feeds
from feedlake.tasks.pipeline import feed_reading
from tests.conftest import write_sources

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_api")]

BAD = "bad"
GOOD_PATH = "centcom/centcom-press-releases.RSS.ashx.xml"
BAD_PATH = "corpus/RSParser/DaringFireball.rss"


class Boom(Exception):
    """An exception class no part of feedlake knows."""


def raising_for_bad(original: Callable[..., Any], exc: BaseException, source_of: Callable[..., str]):
    """``original``, except that it raises ``exc`` when called for the source ``bad``."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if source_of(*args, **kwargs) == BAD:
            raise exc
        return original(*args, **kwargs)

    return wrapper


class ExplodingResult:
    """A fetch result whose HTTP status cannot even be read: breaks the result handling itself."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "status":
            raise RuntimeError("status went missing")
        return getattr(self._inner, name)


def inject_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    original = feedlake.tasks.pipeline.full_text.fetch_feeds

    async def fetch(targets, validators, settings, on_result, **options):
        def arrived(result):
            on_result(ExplodingResult(result) if result.source_id == BAD else result)

        return await original(targets, validators, settings, on_result=arrived, **options)

    monkeypatch.setattr(feedlake.tasks.pipeline.full_text, "fetch_feeds", fetch)


def inject_inside_fetch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The HTTP client raises a ValueError for the bad source's request, inside ``fetch_feed``."""

    async def explode(request: Any) -> None:
        if request.url.path.endswith(BAD_PATH):
            raise ValueError("the client tripped over its own feet")

    async def fetch(targets, validators, settings, on_result, **options):
        async with build_client(settings) as client:
            client.event_hooks = {"request": [explode], "response": []}
            return await fetch_feeds(
                targets, validators, settings, client=client, on_result=on_result, **options
            )

    monkeypatch.setattr(feedlake.tasks.pipeline.full_text, "fetch_feeds", fetch)


def inject_result_handler(monkeypatch: pytest.MonkeyPatch) -> None:
    """The poll's own handler of fetched results raises for the bad source, inside the fetch's loop."""
    original = feedlake.tasks.pipeline.full_text.fetch_feeds

    async def fetch(targets, validators, settings, on_result, **options):
        def arrived(result):
            if result.source_id == BAD and result.error is None:
                raise RuntimeError("the handler dropped it")
            on_result(result)

        return await original(targets, validators, settings, on_result=arrived, **options)

    monkeypatch.setattr(feedlake.tasks.pipeline.full_text, "fetch_feeds", fetch)


def inject_validate(monkeypatch: pytest.MonkeyPatch) -> None:
    original = feedlake.tasks.pipeline.poll.validate_rows

    def validate(normalized, feeds, suite):
        if any(n.source_id == BAD for n in normalized):
            raise ZeroDivisionError("a check divided by zero")
        return original(normalized, feeds, suite)

    monkeypatch.setattr(feedlake.tasks.pipeline.poll, "validate_rows", validate)


def inject(name: str, exc: BaseException, source_of: Callable[..., str], module: Any = None):
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        where = module or feedlake.tasks.pipeline.stages
        monkeypatch.setattr(where, name, raising_for_bad(getattr(where, name), exc, source_of))

    return patch


# Case name (``stage`` or ``stage:where``) -> (how to break it for the bad source, start of its error).
STAGES = {
    "state": (inject("read_source_validators", KeyError("etag"), lambda store, sid: sid), "KeyError"),
    "fetch": (inject_fetch, "RuntimeError: status went missing"),
    "fetch:inside": (
        inject_inside_fetch,
        "unexpected error while fetching (ValueError: the client tripped over its own feet)",
    ),
    "fetch:result-handler": (
        inject_result_handler,
        "handling the fetched result failed (RuntimeError: the handler dropped it)",
    ),
    # A poll of this few feeds reads them in this process (feed_reading.POOL_MIN_FEEDS), so the
    # injection reaches the reader; tests/tasks/pipeline/test_feed_reading.py covers the workers.
    "parse": (
        inject("parse_feed", MemoryError("parser ran out"), lambda r: r.source_id, feed_reading),
        "MemoryError",
    ),
    "normalize": (
        inject("normalize_entries", Boom("unheard of"), lambda p, s, run: s.id, feed_reading),
        "Boom: unheard of",
    ),
    "dedup": (
        inject("read_seen", AttributeError("no index"), lambda store, sid, ids=None: sid),
        "AttributeError: no index",
    ),
    "validate": (inject_validate, "ZeroDivisionError"),
}


@pytest.fixture
def run_log() -> Iterator[list[logging.LogRecord]]:
    """Records the flow run's logger emits (Prefect's loggers do not propagate to caplog)."""
    # Prefect configures its logging (dictConfig) once ``prefect.main`` is imported, which the first
    # flow import does: that would drop a handler added before. Have it done first.
    import prefect.main  # noqa: F401

    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("prefect.flow_runs")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.mark.parametrize("case", list(STAGES))
def test_any_exception_at_any_stage_fails_only_its_source(
    case: str,
    tmp_path: Path,
    snapshot_base_url: str,
    monkeypatch: pytest.MonkeyPatch,
    run_log: list[logging.LogRecord],
) -> None:
    from feedlake.flows.poll import poll_flow

    patch, expected = STAGES[case]
    stage = case.partition(":")[0]
    patch(monkeypatch)
    sources = write_sources(
        tmp_path / "s.yaml",
        [("good", f"{snapshot_base_url}/{GOOD_PATH}"), (BAD, f"{snapshot_base_url}/{BAD_PATH}")],
    )
    lake = tmp_path / "lake"
    summary = poll_flow(sources=str(sources), lake=str(lake))
    reports = {r.source_id: r for r in summary.reports}
    assert reports["good"].status == "ok" and reports["good"].new == 3
    assert summary.rows_committed == 3
    bad = reports[BAD]
    assert bad.status == "error" and bad.error_kind == "bug" and bad.stage == stage
    assert (bad.error or "").startswith(expected), bad.error
    # Health is written: the bad source backs off, the good one is healthy.
    health = json.loads((lake / "_state" / "health.json").read_text())
    assert health[BAD]["consecutive_failures"] == 1 and health[BAD]["last_error_kind"] == "bug"
    assert health[BAD]["next_due_at"] is not None
    assert health["good"]["consecutive_failures"] == 0
    # One WARNING line names the failed source, its stage and its reason.
    lines = [r.getMessage() for r in run_log if r.getMessage().startswith("source ")]
    assert lines == [f"source {BAD} failed ({stage}): {bad.error}"]


def test_the_command_exits_0_when_one_source_has_a_bug(
    tmp_path: Path, snapshot_base_url: str, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from feedlake.flows.cli import main

    STAGES["parse"][0](monkeypatch)
    sources = write_sources(
        tmp_path / "s.yaml",
        [("good", f"{snapshot_base_url}/{GOOD_PATH}"), (BAD, f"{snapshot_base_url}/{BAD_PATH}")],
    )
    assert main(["poll", "--sources", str(sources), "--lake", str(tmp_path / "lake")]) == 0
    out = capsys.readouterr().out
    assert "MemoryError" in out and "Traceback" not in out
