"""The one error hierarchy of feedlake.

Every error names what failed and, where there is one, the source and URL. Retries key off the
transient/terminal marker, never off the concrete class::

    FeedlakeError
    ├── TransientError            (retry may help: timeouts, resets, 5xx, 429, store hiccups)
    │   ├── FetchTransientError
    │   └── StoreTransientError
    └── TerminalError             (retry will not help until someone changes something)
        ├── ConfigError           (bad settings or sources file; the run cannot start)
        ├── FetchTerminalError    (404, 410, refused URL, body too large)
        ├── ParseError            (not a feed, ill-formed beyond recovery, unsupported format)
        ├── StoreError            (lake unwritable, missing bucket, bad lake URL)
        │   └── DamagedObjectError (a lake object whose bytes cannot be read: named by its key)
        ├── LakeBusyError         (another run holds the lake's lease)
        └── UnexpectedError       (kind ``bug``: any other exception, caught at a source's boundary)

Anything else a source's stages raise is a bug: the run records it on that source as kind ``bug``
(``bug_reason`` names the exception) and goes on with the others.
"""

from __future__ import annotations


class FeedlakeError(Exception):
    """Base of every error feedlake raises on purpose."""

    transient: bool = False
    kind: str = "error"

    def __init__(
        self,
        reason: str,
        *,
        source_id: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        self.reason = reason
        self.source_id = source_id
        self.url = url
        self.status = status
        super().__init__(self._message())

    def _message(self) -> str:
        where = []
        if self.source_id:
            where.append(f"source {self.source_id!r}")
        if self.url:
            where.append(f"url {self.url}")
        if self.status is not None:
            where.append(f"HTTP {self.status}")
        prefix = f"{', '.join(where)}: " if where else ""
        return f"{prefix}{self.reason}"


class TransientError(FeedlakeError):
    """A failure that may go away on retry."""

    transient = True
    kind = "transient"


class TerminalError(FeedlakeError):
    """A failure that retrying will not fix."""

    kind = "terminal"


class FetchTransientError(TransientError):
    """Timeout, connection reset, 5xx or 429 while fetching a feed."""

    kind = "fetch_transient"

    def __init__(
        self,
        reason: str,
        *,
        source_id: str | None = None,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(reason, source_id=source_id, url=url, status=status)


class StoreTransientError(TransientError):
    """A retryable failure of the object store."""

    kind = "store_transient"


class ConfigError(TerminalError):
    """Bad settings or a bad sources file: the run cannot start."""

    kind = "config"


class FetchTerminalError(TerminalError):
    """A fetch that will not succeed by retrying (4xx, refused URL, oversize body)."""

    kind = "fetch"


class ParseError(TerminalError):
    """Bytes that are not a readable feed."""

    kind = "parse"


class StoreError(TerminalError):
    """The lake cannot be read or written."""

    kind = "store"


class DamagedObjectError(StoreError):
    """A lake object (state, intent, table log entry) whose bytes cannot be decoded."""

    kind = "damaged"

    def __init__(self, key: str, detail: str, *, source_id: str | None = None) -> None:
        self.key = key
        self.detail = detail
        super().__init__(f"damaged object {key}: {detail}", source_id=source_id)


class LakeBusyError(TerminalError):
    """Another run holds the lake's lease."""

    kind = "lake_busy"


BUG_KIND = "bug"
_BUG_MESSAGE_CHARS = 160


class UnexpectedError(TerminalError):
    """An exception feedlake did not raise on purpose, caught at a source's boundary (kind ``bug``)."""

    kind = BUG_KIND


def bug_reason(exc: BaseException) -> str:
    """``ExceptionType: short message`` for an exception feedlake did not raise on purpose."""
    message = " ".join(str(exc).split())
    if len(message) > _BUG_MESSAGE_CHARS:
        message = message[: _BUG_MESSAGE_CHARS - 1] + "…"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def is_transient(exc: BaseException) -> bool:
    """Tell whether retrying the operation that raised ``exc`` may help."""
    return isinstance(exc, FeedlakeError) and exc.transient
