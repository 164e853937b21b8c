"""Feed date strings to UTC datetimes, recording how trustworthy the time zone was.

A date is kept as the publisher wrote it, however implausible (year 2090, 1900, the epoch): judging
it is the data-quality suite's job (``schemas/expectations``), which holds such a row in the
quarantine with the reason, where a reader can see it. Only a string that names no instant Python can
hold as UTC (years 1 to 9999) is ``missing``.
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from feedlake.schemas.article import DATE_SOURCES

# The values of the article schema's date_source column, named once there.
EXPLICIT_OFFSET, NAMED_ZONE, ASSUMED_UTC, MISSING = DATE_SOURCES[:4]

_NUMERIC_OFFSET = re.compile(r"(?:[+-]\d{2}:?\d{2}|\d[zZ])\s*$")
_NAMED_ZONE = re.compile(r"(?<![A-Za-z])([A-Za-z]{1,5})\s*$")
_MONTH_OR_DAY = {
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
    "am",
    "pm",
}
# The zone names email.utils knows; it reads any other name as UTC, so such a time is only assumed.
_KNOWN_ZONES = frozenset(
    {"UT", "UTC", "GMT", "Z", "AST", "ADT", "EST", "EDT", "CST", "CDT", "MST", "MDT", "PST", "PDT"}
)


@dataclass(frozen=True)
class FeedDate:
    """A parsed feed date: the UTC instant (or None) and how its zone was known."""

    value: datetime | None
    source: str


def classify_zone(raw: str) -> str:
    """Say whether a date string carries a numeric offset, a named zone, or no zone at all."""
    text = raw.strip()
    if _NUMERIC_OFFSET.search(text):
        return EXPLICIT_OFFSET
    match = _NAMED_ZONE.search(text)
    if (
        match
        and match.group(1).lower() not in _MONTH_OR_DAY
        and not text[: match.start()].rstrip().endswith(",")
    ):
        return NAMED_ZONE
    return ASSUMED_UTC


def parse_feed_date(raw: str | None, fallback: datetime | None = None) -> FeedDate:
    """Parse an RFC 822 or ISO 8601 date string to UTC; use feedparser's ``fallback`` for the rest."""
    if raw is None or not raw.strip():
        return FeedDate(None, MISSING)
    text = raw.strip()
    own = _parse_iso(text) or _parse_rfc822(text) or _parse_slashed(text)
    parsed = own
    if parsed is None and fallback is not None:
        parsed = fallback if fallback.tzinfo else fallback.replace(tzinfo=UTC)
    if parsed is None:
        return FeedDate(None, MISSING)
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:00-05:00 is past the last instant a datetime holds
        return FeedDate(None, MISSING)
    source = classify_zone(text)
    zone = _NAMED_ZONE.search(text)
    if source == NAMED_ZONE and own is not None and zone and zone.group(1).upper() not in _KNOWN_ZONES:
        source = ASSUMED_UTC
    return FeedDate(instant, source)


_SLASHED = re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


def _parse_slashed(text: str) -> datetime | None:
    # "2020/1/10 14:28:00" (year/month/day, common in Chinese feeds); feedparser reads it as Nov 1.
    match = _SLASHED.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def _parse_iso(text: str) -> datetime | None:
    if len(text) < 10 or not text[:4].isdigit() or text[4] != "-":
        return None
    candidate = text.replace(" ", "T", 1) if len(text) > 10 and text[10] == " " else text
    try:
        value = datetime.fromisoformat(candidate)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _parse_rfc822(text: str) -> datetime | None:
    try:
        parts = email.utils.parsedate_tz(text)
    except (TypeError, ValueError, IndexError):
        return None
    if parts is None:
        return None
    year = parts[0]
    if year < 100:  # two-digit years, as RFC 822 allowed
        year += 2000 if year < 50 else 1900
    try:
        naive = datetime(year, parts[1], parts[2], parts[3], parts[4], parts[5])
    except ValueError:
        return None
    offset = parts[9] or 0
    try:
        return naive.replace(tzinfo=UTC) - timedelta(seconds=offset)
    except OverflowError:  # year 9999 with a negative offset, say
        return None
