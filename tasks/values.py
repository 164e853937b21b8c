"""Values passed between the stages: a fetched document, its HTTP validators, and parsed entries.

A ``SourceReport`` is what one source did in a run (the pipeline fills it in, the summary shows it).
A ``FetchResult`` is what the fetch stage hands to parse (and what a backfill capture or a WebSub
push becomes); ``ParsedFeed`` is what parse hands to normalize: the feed's metadata and its
``FeedEntry`` values, with raw markup and dates.

Every text value is made storable where it is created: lone surrogates (a JSON ``"\\ud800"`` or an
XML ``&#xD800;`` read by feedparser) cannot be encoded as UTF-8, so Arrow and Parquet would refuse
the whole batch, and U+FFFE/U+FFFF are not characters at all. Both become U+FFFD, the replacement
character, so one bad character costs one character, not the feed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from feedlake.tasks.errors import FeedlakeError

# Surrogates (never valid alone in text) and the two non-characters XML 1.0 excludes. C0 controls
# are left to the normalize stage, which drops them from text as it always has.
_UNSTORABLE = re.compile("[\ud800-\udfff\ufffe\uffff]")
REPLACEMENT = "\ufffd"
# Enclosure lengths land in an int64 column.
MAX_LENGTH = 2**63 - 1


def storable_text(text: str) -> str:
    """Return text with lone surrogates and U+FFFE/U+FFFF replaced by U+FFFD."""
    if text.isascii() or _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(REPLACEMENT, text)


def storable_length(value: object) -> int | None:
    """A byte length as an int64, or None when it is not a whole number in range."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not value.is_integer():  # NaN and infinities included
        return None
    length = int(value)
    return length if 0 <= length <= MAX_LENGTH else None


@dataclass(frozen=True)
class Enclosure:
    """A media file attached to an entry."""

    url: str
    type: str | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", storable_text(self.url))
        if self.type is not None:
            object.__setattr__(self, "type", storable_text(self.type))
        if self.length is not None:
            object.__setattr__(self, "length", storable_length(self.length))


@dataclass(frozen=True)
class FeedEntry:
    """One entry as the feed gave it: markup and date strings are still raw."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    title_is_html: bool = False
    summary: str | None = None
    summary_is_html: bool = True
    content: str | None = None
    content_is_html: bool = True
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    enclosures: tuple[Enclosure, ...] = ()
    published_raw: str | None = None
    updated_raw: str | None = None
    published_parsed: datetime | None = None
    updated_parsed: datetime | None = None
    language: str | None = None
    # The guid as article ids were made from it before guids were kept as written (up to commit
    # 2ece2fe): a permalink guid resolved like a relative URI against the base those releases used
    # (their XML readers did; their JSON Feed reader never did). None when that is ``guid`` itself, ""
    # when they read no guid (the join failed). The id's input only, never stored: ids of lakes stay.
    guid_key: str | None = None

    @property
    def guid_for_id(self) -> str | None:
        """The guid article ids are made from: ``guid_key`` when a reader set one, else ``guid``."""
        return self.guid if self.guid_key is None else self.guid_key or None

    def __post_init__(self) -> None:
        # Every reader (lxml, feedparser, JSON Feed) builds entries here, so this is the one place
        # text is made storable.
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, storable_text(value))
        for name in ("authors", "categories"):
            object.__setattr__(self, name, tuple(storable_text(v) for v in getattr(self, name)))


_TEXT_FIELDS = (
    "guid",
    "link",
    "title",
    "summary",
    "content",
    "published_raw",
    "updated_raw",
    "language",
    "guid_key",
)


@dataclass(frozen=True)
class FeedValidators:
    """What a server told us last time, sent back for a conditional GET."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """The outcome of fetching one source: a body, a 304, or an error."""

    source_id: str
    url: str
    fetched_at: datetime
    final_url: str | None = None
    status: int | None = None
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    validators: FeedValidators = field(default_factory=FeedValidators)
    not_modified: bool = False
    moved_to: str | None = None
    error: FeedlakeError | None = None
    attempts: int = 0
    elapsed_seconds: float = 0.0
    capture_source: str = "live"
    captured_at: datetime | None = None
    # The exchange as it happened, for the run's raw capture: what the last request sent (no
    # credentials) and every response header kept with the decoded body (``headers`` is the subset
    # the parser reads, with ``content-location`` its base URL).
    request_headers: Mapping[str, str] = field(default_factory=dict)
    response_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class SourceReport:
    """What one source did in one run; the poll summary has one of these per source."""

    source_id: str
    status: str = "pending"
    http_status: int | None = None
    fetched: int = 0
    new: int = 0
    duplicate: int = 0
    rejected: int = 0
    warned: int = 0
    # Article pages tried for new items (full text), and how many gave the row its body.
    pages_tried: int = 0
    pages_used: int = 0
    error: str | None = None
    error_kind: str | None = None
    moved_to: str | None = None
    warnings: list[str] = field(default_factory=list)
    stage: str | None = None

    def fail(self, error: FeedlakeError, stage: str | None = None) -> None:
        """Record a terminal problem for this source (at ``stage``: fetch, parse, normalize, ...)."""
        self.status = "error"
        # The source is this report's key already; the reason is what a reader needs.
        self.error = error.reason if error.url is None else f"{error.reason} ({error.url})"
        self.error_kind = error.kind
        self.stage = stage or self.stage


@dataclass(frozen=True)
class FeedDocument:
    """What a reader (lxml fast path, feedparser, JSON Feed) found in one feed document."""

    format: str
    title: str | None
    link: str | None
    language: str | None
    entries: tuple[FeedEntry, ...]
    links: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedFeed:
    """A parsed feed: its metadata, its entries and any warnings about its form."""

    source_id: str
    feed_url: str
    fetched_at: datetime
    format: str
    title: str | None
    link: str | None
    language: str | None
    entries: tuple[FeedEntry, ...]
    warnings: tuple[str, ...] = field(default=())
    links: tuple[tuple[str, str], ...] = field(default=())
    capture_source: str = "live"
    captured_at: datetime | None = None

    def __post_init__(self) -> None:
        # Entries make their own text storable (above); the feed's own values get the same.
        for name in ("title", "link", "language"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, storable_text(value))
        links = tuple((storable_text(rel), storable_text(href)) for rel, href in self.links)
        object.__setattr__(self, "links", links)

    def link_to(self, rel: str) -> str | None:
        """The absolute URL of the feed-level link with relation ``rel`` (prev-archive, next, ...)."""
        return next((href for r, href in self.links if r == rel), None)
