"""pipeline.hooks: plain stages retry transient errors only, after the configured delays."""

from __future__ import annotations

import pytest

from feedlake.tasks.errors import ParseError, StoreTransientError
from feedlake.tasks.pipeline.hooks import PipelineHooks


class Flaky:
    """Fails with ``error`` the first ``failures`` calls, then returns how many calls it took."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error, self.failures, self.calls = error, failures, 0

    def __call__(self, value: int) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return value * self.calls


def test_a_transient_error_is_retried_until_the_stage_succeeds() -> None:
    flaky = Flaky(StoreTransientError("503 SlowDown"), failures=2)
    assert PipelineHooks().stage("write-commit", flaky, retries=2, delays=[0, 0])(10) == 30
    assert flaky.calls == 3


def test_retries_run_out() -> None:
    flaky = Flaky(StoreTransientError("503 SlowDown"), failures=5)
    with pytest.raises(StoreTransientError):
        PipelineHooks().stage("write-commit", flaky, retries=2, delays=[0])(1)
    assert flaky.calls == 3


def test_a_terminal_error_is_never_retried() -> None:
    flaky = Flaky(ParseError("not a feed"), failures=1)
    with pytest.raises(ParseError):
        PipelineHooks().stage("parse", flaky, retries=3, delays=[0])(1)
    assert flaky.calls == 1


def test_no_retries_by_default() -> None:
    flaky = Flaky(StoreTransientError("503"), failures=1)
    with pytest.raises(StoreTransientError):
        PipelineHooks().stage("dedup", flaky)(1)
    assert flaky.calls == 1
