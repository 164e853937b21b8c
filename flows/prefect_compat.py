"""Mends for Prefect 3.8.8 defects that reach feedlake's operators; remove when Prefect is upgraded.

- After an API outage the runner's cancellation observers fall back to polling; at shutdown their
  polling task is cancelled and its done-callback calls ``task.exception()`` on it, which raises
  ``CancelledError`` inside asyncio's callback machinery: an ERROR and a traceback on every stop
  of a serve that once lost its API. A cancelled polling task is a normal end, not a failure.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any


def _ignoring_cancelled(done: Callable[[Any, asyncio.Task[None]], None]) -> Callable[..., None]:
    @functools.wraps(done)
    def handle(self: Any, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        done(self, task)

    return handle


def mend_prefect() -> None:
    """Apply the mends above (idempotent)."""
    from prefect._internal import observers

    for name in ("FlowRunCancellingObserver", "FlowRunSuspendingObserver"):
        observer: Any = getattr(observers, name, None)
        handler = getattr(observer, "_handle_polling_task_done", None)
        if observer is None or handler is None or getattr(handler, "__feedlake_mended__", False):
            continue
        mended = _ignoring_cancelled(handler)
        mended.__feedlake_mended__ = True  # type: ignore[attr-defined]
        observer._handle_polling_task_done = mended
