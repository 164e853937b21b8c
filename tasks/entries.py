"""Values handed from the parse stage to the normalize stage: entries with raw markup and dates.

Every text value is made storable where it is created: lone surrogates (a JSON ``"\\ud800"`` or an
XML ``&#xD800;`` read by feedparser) cannot be encoded as UTF-8, so Arrow and Parquet would refuse
the whole batch, and U+FFFE/U+FFFF are not characters at all. Both become U+FFFD, the replacement
character, so one bad character costs one character, not the feed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

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

    def __post_init__(self) -> None:
        # Every reader (lxml, feedparser, JSON Feed) builds entries here, so this is the one place
        # text is made storable.
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, storable_text(value))
        for name in ("authors", "categories"):
            object.__setattr__(self, name, tuple(storable_text(v) for v in getattr(self, name)))


_TEXT_FIELDS = ("guid", "link", "title", "summary", "content", "published_raw", "updated_raw", "language")
