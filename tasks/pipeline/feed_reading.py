"""Parse and normalize one fetched feed, here or in a worker process, with the same outcome.

A live poll of many feeds is CPU-bound on parse and normalize (4 s of CPU for the 166 feeds of the
corpus), which a thread cannot spread over a second core. ``FeedReaders`` hands each feed to a
pool of spawned worker processes instead (never forked: delta-rs, loaded in the parent, panics in
forked children), kept for the life of the process like the extraction pool. Whatever a worker
finds comes back as a ``FeedReading``: the rows, the parser's warnings, the log records it made
(emitted again in the parent, so they go through the parent's console filter and, under Prefect,
to the flow run's log), or the stage that failed and its error, which the caller turns into the
source's error exactly as if the stage had failed in this process.
"""

from __future__ import annotations

import logging
import os
import pickle
import traceback
from concurrent.futures import BrokenExecutor, Executor
from dataclasses import dataclass

from feedlake.tasks.errors import FeedlakeError, UnexpectedError, bug_reason
from feedlake.tasks.normalize.articles import NormalizedFeed, normalize_entries
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult
from feedlake.tasks.worker_process import KeptPools, spawned_pool

# Workers are for a poll whose parsing falls behind its network: they start when this many feeds
# that brought a body are waiting to be read (their start costs about half a second of CPU each,
# and every feed then a trip to a worker and back). A poll of slow or few servers, whose feeds
# trickle in, is read here as they come; a poll of a thousand feeds of which three changed never
# starts them. A long-lived process keeps the workers once started.
POOL_MIN_BACKLOG = 16
# And never for a run of fewer due feeds than this.
POOL_MIN_FEEDS = 24

_POOLS = KeptPools(spawned_pool)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedReading:
    """What reading one fetched feed gave: its rows and warnings, or the stage that failed and why."""

    feed: NormalizedFeed | None
    warnings: tuple[str, ...] = ()
    failed_stage: str | None = None
    error: FeedlakeError | None = None
    records: tuple[logging.LogRecord, ...] = ()


def read_feed(result: FetchResult, source: Source, run_id: str) -> FeedReading:
    """Parse and normalize ``result`` in this process; a failure is returned with its stage."""
    stage = "parse"
    try:
        parsed = parse_feed(result)
        stage = "normalize"
        feed = normalize_entries(parsed, source, run_id)
    except Exception as exc:  # noqa: BLE001 - the caller's SourceBoundary gets it back, by stage
        return FeedReading(None, failed_stage=stage, error=_as_feedlake_error(exc, source.id))
    return FeedReading(feed, tuple(parsed.warnings))


def read_feed_in_worker(result: FetchResult, source: Source, run_id: str, level: int) -> FeedReading:
    """``read_feed`` in a worker process, with the log records it made (at ``level`` and above, the
    parent's) carried back to the parent."""
    records: list[logging.LogRecord] = []
    handler = _Collecting(records)
    root = logging.getLogger()
    root.setLevel(level)
    root.addHandler(handler)
    try:
        reading = read_feed(result, source, run_id)
    finally:
        root.removeHandler(handler)
    return FeedReading(reading.feed, reading.warnings, reading.failed_stage, reading.error, tuple(records))


def emit_records(records: tuple[logging.LogRecord, ...]) -> None:
    """Log again, in this process, the records a worker made (where its own handlers are)."""
    for record in records:
        logger = logging.getLogger(record.name)
        if logger.isEnabledFor(record.levelno):
            logger.handle(record)


class FeedReaders:
    """Where a run reads its feeds: in the calling thread, or, once feeds wait to be read faster
    than they are read, in the process's pool of workers."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.waiting = 0
        self.started = False

    @classmethod
    def for_run(cls, feeds: int, processes: int) -> FeedReaders:
        """Readers for a run of ``feeds`` due feeds: workers may start only if there are enough."""
        return cls(processes if processes > 1 and feeds >= POOL_MIN_FEEDS else 1)

    @property
    def in_workers(self) -> bool:
        """Whether this run may read feeds in worker processes."""
        return self.processes > 1

    def body_arrived(self) -> None:
        """A feed brought a body to read; the workers start when ``POOL_MIN_BACKLOG`` are waiting."""
        self.waiting += 1
        if self.in_workers and not self.started and self.waiting >= POOL_MIN_BACKLOG:
            self.start()

    def body_done(self) -> None:
        """A feed that brought a body has been read (or left the run)."""
        self.waiting -= 1

    def start(self) -> None:
        """Start the workers now (they import the parsers while the feeds are still arriving)."""
        if self.in_workers:
            self.started = True
            log.info("reading feeds in %d worker processes (%d waiting)", self.processes, self.waiting)
            pool = reading_pool(self.processes)
            for _ in range(self.processes):
                pool.submit(int)

    def read(self, result: FetchResult, source: Source, run_id: str) -> FeedReading:
        """Read one feed (blocking the calling thread until it is read)."""
        if not self.started:
            return read_feed(result, source, run_id)
        try:
            level = logging.getLogger("feedlake").getEffectiveLevel()
            pool = reading_pool(self.processes)
            reading = pool.submit(read_feed_in_worker, result, source, run_id, level).result()
        except BrokenExecutor:
            # A worker died (killed, out of memory, or it could not start): this feed and the rest
            # of the run are read here; the next run starts a new pool.
            _POOLS.drop(self.processes)
            self.started = False
            self.processes = 1
            return read_feed(result, source, run_id)
        emit_records(reading.records)
        return reading


def usable_cores() -> int:
    """The cores this process may run on (its affinity: taskset, a container's cpuset), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def reading_pool(processes: int) -> Executor:
    """The process's pool of ``processes`` feed-reading workers, started on first use and kept."""
    return _POOLS.get(processes)


def shutdown_reading_pools() -> None:
    """Stop the process's feed-reading workers and wait for them (a later run starts them again)."""
    _POOLS.shutdown()


def _as_feedlake_error(exc: Exception, source_id: str) -> FeedlakeError:
    """``exc`` as the error the source will carry, in a form that survives the trip between processes."""
    if isinstance(exc, FeedlakeError):
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:  # noqa: BLE001 - an error class whose arguments do not pickle
            return UnexpectedError(bug_reason(exc), source_id=source_id)
        return exc
    # As SourceBoundary does in-process: one line for the source, the traceback for debugging.
    logging.getLogger("feedlake.tasks.pipeline.stages").debug(
        "source %s: bug while reading the feed\n%s", source_id, "".join(traceback.format_exception(exc))
    )
    return UnexpectedError(bug_reason(exc), source_id=source_id)


class _Collecting(logging.Handler):
    """Keeps a worker's log records, made ready to be pickled (message formatted, no live objects)."""

    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        self.records.append(record)
