"""What feedlake's console shows of Prefect's own logging: the run's facts, not its machinery.

The filter sits on the console handlers only: Prefect's API (the UI) still gets every record.
"""

from __future__ import annotations

import logging

# Lines every healthy run prints and no operator reads: code download, run links, per-task completion.
CHATTER = (
    "Downloading flow code from storage",
    "Beginning flow run",
    "View at ",
    "Created temporary directory",
    # The embedded API of a one-shot command: the README says it starts; the console need not.
    "Starting temporary server on",
    "Stopping temporary server on",
)


class PrefectChatterFilter(logging.Filter):
    """Drop Prefect's per-run boilerplate; shorten third-party warnings to one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record the console should not show (a kept record may lose its traceback)."""
        if record.levelno >= logging.WARNING:
            if _observer_outage(record):
                # Prefect's runner polls the API from asyncio callbacks; during an API restart the
                # callback's task fails and asyncio logs it as an ERROR with a traceback, although
                # the runner goes on (a test restarts the server under `feedlake serve`).
                record.levelno, record.levelname = logging.WARNING, "WARNING"
            if (
                record.levelno == logging.WARNING
                and record.exc_info
                and not record.name.startswith("feedlake")
            ):
                # Prefect warns with a whole traceback when it reconnects after an API outage: the
                # warning is the news, the traceback is noise. Errors keep theirs.
                error = record.exc_info[1]
                record.msg = f"{record.getMessage()} ({type(error).__name__}: {error})"
                record.args = None
                record.exc_info = None
                record.exc_text = None
            return True
        message = record.getMessage()
        if any(message.startswith(prefix) for prefix in CHATTER):
            return False
        return not (record.name == "prefect.task_runs" and message.startswith("Finished in state Completed"))


def _observer_outage(record: logging.LogRecord) -> bool:
    """A Prefect runner observer whose API poll failed (the API was away): asyncio's report of its
    callback, or the cancellation observer's own error once its poll gave up (the runs go on)."""
    if not record.exc_info:
        return False
    message = record.getMessage()
    if record.name == "prefect.FlowRunCancellingObserver":
        return message.startswith("Cancellation polling task failed")
    if record.name != "asyncio":
        return False
    return message.startswith("Exception in callback") and "Observer._handle_polling_task_done" in message


def install_console_filter() -> None:
    """Put the filter on the root logger's handlers (where non-Prefect-configured loggers end up)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, PrefectChatterFilter) for f in handler.filters):
            handler.addFilter(PrefectChatterFilter())
