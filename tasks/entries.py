"""Values handed from the parse stage to the normalize stage: entries with raw markup and dates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Enclosure:
    """A media file attached to an entry."""

    url: str
    type: str | None = None
    length: int | None = None


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
