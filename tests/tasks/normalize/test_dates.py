"""normalize.dates: feed date strings to UTC instants, with how far the zone can be trusted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedlake.tasks.normalize.dates import (
    ASSUMED_UTC,
    EXPLICIT_OFFSET,
    MISSING,
    NAMED_ZONE,
    FeedDate,
    classify_zone,
    parse_feed_date,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected", "source"),
    [
        # RFC 822, as RSS 2.0 wants it.
        ("Mon, 09 Dec 2024 01:00:00 GMT", utc(2024, 12, 9, 1, 0), NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00 UT", utc(2024, 12, 9, 1, 0), NAMED_ZONE),
        ("Tue, 10 Jun 2003 04:00:00 gmt", utc(2003, 6, 10, 4, 0), NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00 EST", utc(2024, 12, 9, 6, 0), NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00 PDT", utc(2024, 12, 9, 8, 0), NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00 +0300", utc(2024, 12, 8, 22, 0), EXPLICIT_OFFSET),
        ("Mon, 09 Dec 2024 01:00:00 -0530", utc(2024, 12, 9, 6, 30), EXPLICIT_OFFSET),
        ("9 Dec 2024 01:00 GMT", utc(2024, 12, 9, 1, 0), NAMED_ZONE),
        ("Wed, 21 Mar 18 10:27:32 +0300", utc(2018, 3, 21, 7, 27, 32), EXPLICIT_OFFSET),
        ("Mon, 09 Dec 2024 01:00:00", utc(2024, 12, 9, 1, 0), ASSUMED_UTC),
        # A zone name email.utils does not know is read as UTC: it is an assumption, not a known zone.
        ("Mon, 09 Dec 2024 01:00:00 CEST", utc(2024, 12, 9, 1, 0), ASSUMED_UTC),
        # ISO 8601 / RFC 3339, as Atom and JSON Feed want it.
        ("2024-12-09T01:00:00Z", utc(2024, 12, 9, 1, 0), EXPLICIT_OFFSET),
        ("2024-12-09T01:00:00+02:00", utc(2024, 12, 8, 23, 0), EXPLICIT_OFFSET),
        ("2024-12-09T01:00:00.123456-05:00", utc(2024, 12, 9, 6, 0, 0, 123456), EXPLICIT_OFFSET),
        ("2024-12-09T01:00:00", utc(2024, 12, 9, 1, 0), ASSUMED_UTC),
        ("2024-12-09 01:00:00", utc(2024, 12, 9, 1, 0), ASSUMED_UTC),
        ("  2024-12-09T01:00:00Z\n", utc(2024, 12, 9, 1, 0), EXPLICIT_OFFSET),
        ("2024-12-09", utc(2024, 12, 9), ASSUMED_UTC),
    ],
)
def test_known_formats(raw: str, expected: datetime, source: str) -> None:
    parsed = parse_feed_date(raw)
    assert parsed == FeedDate(expected, source)
    assert parsed.value is not None and parsed.value.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "garbage",
        "yesterday",
        "2024-13-01",
        "2024-02-30",
        "Mon, 31 Feb 2024 01:00:00 GMT",
        "Mon, 01 Jan 2024 25:00:00 GMT",
    ],
)
def test_unreadable_dates_are_missing(raw: str | None) -> None:
    assert parse_feed_date(raw) == FeedDate(None, MISSING)


@pytest.mark.parametrize(
    ("raw", "expected", "source"),
    [
        # Implausible, but what the publisher wrote: kept, and judged by the data-quality suite.
        ("1970-01-01T00:00:00Z", utc(1970, 1, 1), EXPLICIT_OFFSET),  # the epoch: a CMS's zero
        ("1900-01-01T00:00:00Z", utc(1900, 1, 1), EXPLICIT_OFFSET),
        ("Sat, 01 Jan 2090 08:00:00 GMT", utc(2090, 1, 1, 8), NAMED_ZONE),
        ("2999-01-01T00:00:00Z", utc(2999, 1, 1), EXPLICIT_OFFSET),
        ("Mon, 01 Jan 0100 00:00:00 +0100", utc(99, 12, 31, 23), EXPLICIT_OFFSET),
        ("9999-12-31T23:59:59+01:00", utc(9999, 12, 31, 22, 59, 59), EXPLICIT_OFFSET),
        ("0001-01-01T01:00:00+01:00", utc(1, 1, 1), EXPLICIT_OFFSET),
    ],
)
def test_implausible_dates_are_kept_as_written(raw: str, expected: datetime, source: str) -> None:
    assert parse_feed_date(raw) == FeedDate(expected, source)


@pytest.mark.parametrize(
    "raw",
    [
        # No UTC instant a datetime can hold: before year 1 or after 9999 once moved to UTC.
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "Fri, 31 Dec 9999 23:59:59 -0100",
        "0000-01-01T00:00:00Z",
        "Mon, 01 Jan 10000 00:00:00 GMT",
    ],
)
def test_dates_no_instant_can_hold_are_missing(raw: str) -> None:
    assert parse_feed_date(raw) == FeedDate(None, MISSING)


def test_near_future_is_kept() -> None:
    soon = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    assert parse_feed_date(soon.isoformat()).value == soon


def test_fallback_is_used_when_the_string_cannot_be_read() -> None:
    fallback = utc(2020, 1, 2, 3, 4, 5)
    assert parse_feed_date("2020/1/2 03:04:05", fallback) == FeedDate(fallback, ASSUMED_UTC)
    # A naive fallback is taken as UTC.
    assert parse_feed_date("garbage", datetime(2020, 1, 2, 3, 4, 5)).value == fallback
    # A fallback in another zone is converted to UTC.
    plus_two = datetime(2020, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert parse_feed_date("garbage", plus_two).value == fallback


def test_fallback_is_ignored_when_the_string_reads() -> None:
    parsed = parse_feed_date("2024-12-09T01:00:00Z", utc(2020, 1, 1))
    assert parsed == FeedDate(utc(2024, 12, 9, 1), EXPLICIT_OFFSET)


def test_no_string_means_missing_even_with_a_fallback() -> None:
    assert parse_feed_date(None, utc(2020, 1, 1)) == FeedDate(None, MISSING)
    assert parse_feed_date("  ", utc(2020, 1, 1)) == FeedDate(None, MISSING)


def test_implausible_fallback_is_kept() -> None:
    assert parse_feed_date("garbage", utc(1900, 1, 2)) == FeedDate(utc(1900, 1, 2), ASSUMED_UTC)


def test_fallback_that_overflows_utc_is_missing() -> None:
    last = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    assert parse_feed_date("garbage", last) == FeedDate(None, MISSING)


@pytest.mark.parametrize(
    ("raw", "zone"),
    [
        ("2024-12-09T01:00:00Z", EXPLICIT_OFFSET),
        ("2024-12-09T01:00:00z", EXPLICIT_OFFSET),
        ("2024-12-09T01:00:00+02:00", EXPLICIT_OFFSET),
        ("Mon, 09 Dec 2024 01:00:00 -0500", EXPLICIT_OFFSET),
        ("Mon, 09 Dec 2024 01:00:00 +0000 ", EXPLICIT_OFFSET),
        ("Mon, 09 Dec 2024 01:00:00 GMT", NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00 EST", NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00 CEST", NAMED_ZONE),
        ("Mon, 09 Dec 2024 01:00:00", ASSUMED_UTC),
        ("2024-12-09T01:00:00", ASSUMED_UTC),
        ("2024-12-09", ASSUMED_UTC),
        ("09 Dec 2024 01:00 PM", ASSUMED_UTC),  # PM is not a zone
        ("Dec 09 2024, Mon", ASSUMED_UTC),  # a trailing day name is not a zone
        ("2024-12-09, Dec", ASSUMED_UTC),
        ("garbage", ASSUMED_UTC),
    ],
)
def test_classify_zone(raw: str, zone: str) -> None:
    assert classify_zone(raw) == zone


@settings(max_examples=60, deadline=None)
@given(
    instant=st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2035, 1, 1)),
    minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_iso_with_offset_round_trips(instant: datetime, minutes: int) -> None:
    zone = timezone(timedelta(minutes=minutes))
    local = instant.replace(tzinfo=UTC).astimezone(zone)
    assert parse_feed_date(local.isoformat()) == FeedDate(instant.replace(tzinfo=UTC), EXPLICIT_OFFSET)


@settings(max_examples=100, deadline=None)
@given(
    instant=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    minutes=st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_any_year_round_trips(instant: datetime, minutes: int) -> None:
    # Every instant Arrow's timestamp[us] and a datetime can hold is kept, whatever its year.
    local = instant.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes)))
    assert parse_feed_date(local.isoformat()) == FeedDate(instant.replace(tzinfo=UTC), EXPLICIT_OFFSET)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_any_string_gives_utc_or_missing(raw: str) -> None:
    parsed = parse_feed_date(raw)
    if parsed.value is None:
        assert parsed.source == MISSING
    else:
        assert parsed.value.utcoffset() == timedelta(0)
        assert parsed.source in (EXPLICIT_OFFSET, NAMED_ZONE, ASSUMED_UTC)


def test_year_month_day_with_slashes_is_not_misread() -> None:
    # From RSParser/kc0011.rss (gb2312 forum feed): feedparser alone reads it as 2020-11-01.
    parsed = parse_feed_date("2020/1/10 14:28:00", datetime(2020, 11, 1, 14, 28, tzinfo=UTC))
    assert parsed == FeedDate(datetime(2020, 1, 10, 14, 28, tzinfo=UTC), ASSUMED_UTC)
