"""flows.log_filter: what the console shows of Prefect's and asyncio's own logging."""

from __future__ import annotations

import logging

from feedlake.flows.log_filter import PrefectChatterFilter


def record(name: str, level: int, message: str, error: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error is not None else None
    return logging.LogRecord(name, level, __file__, 1, message, None, exc_info)


def test_a_runner_observer_failing_while_the_api_is_away_is_one_warning_line() -> None:
    outage = record(
        "asyncio",
        logging.ERROR,
        "Exception in callback FlowRunSuspendingObserver._handle_polling_task_done(<Task cancelled>)\n"
        "handle: <Handle FlowRunSuspendingObserver._handle_polling_task_done(<Task cancelled>)>",
        ConnectionRefusedError(111, "Connect call failed"),
    )
    assert PrefectChatterFilter().filter(outage)
    assert outage.levelname == "WARNING" and outage.exc_info is None
    assert "ConnectionRefusedError" in outage.getMessage()


def test_the_cancellation_observer_giving_up_while_the_api_is_away_is_one_warning_line() -> None:
    gave_up = record(
        "prefect.FlowRunCancellingObserver",
        logging.ERROR,
        "Cancellation polling task failed. Execution will continue, but flow run cancellation will fail.",
        RuntimeError("Service exceeded error threshold."),
    )
    assert PrefectChatterFilter().filter(gave_up)
    assert gave_up.levelname == "WARNING" and gave_up.exc_info is None
    assert "Service exceeded error threshold" in gave_up.getMessage()


def test_any_other_error_keeps_its_traceback() -> None:
    other = record("asyncio", logging.ERROR, "Exception in callback something_else()", ValueError("x"))
    ours = record("feedlake.tasks.pipeline", logging.WARNING, "a source failed", ValueError("y"))
    assert PrefectChatterFilter().filter(other) and PrefectChatterFilter().filter(ours)
    assert other.levelname == "ERROR" and other.exc_info is not None
    assert ours.exc_info is not None
