"""normalize.canonical_urls: canonical article URLs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedlake.tasks.normalize.canonical_urls import canonical_url


@pytest.mark.parametrize(
    ("raw", "base", "expected"),
    [
        ("../b/c.html", "https://example.org/a/x/feed.xml", "https://example.org/a/b/c.html"),
        ("c.html", "https://example.org/a/feed.xml", "https://example.org/a/c.html"),
        ("/root?x=1", "https://Example.ORG/a/", "https://example.org/root?x=1"),
        ("//cdn.example.org/x.png", "https://example.org/feed", "https://cdn.example.org/x.png"),
        ("?page=2", "http://example.org/list?page=1", "http://example.org/list?page=2"),
        # An absolute URL ignores the base.
        ("https://other.org/p", "https://example.org/feed", "https://other.org/p"),
    ],
)
def test_relative_urls_resolve_against_base(raw: str, base: str, expected: str) -> None:
    assert canonical_url(raw, base) == expected


def test_relative_url_without_base_is_rejected() -> None:
    assert canonical_url("relative/path.html") is None
    assert canonical_url("/root") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://ex.org/p?utm_source=rss&utm_medium=feed", "https://ex.org/p"),
        ("https://ex.org/p?a=1&fbclid=IwAR0abc&b=2", "https://ex.org/p?a=1&b=2"),
        ("https://ex.org/p?UTM_Campaign=x&id=7", "https://ex.org/p?id=7"),
        ("https://ex.org/p?gclid=1&utm_content=2&_ga=3&mc_eid=4", "https://ex.org/p"),
        # An encoded name is a tracking name all the same.
        ("https://ex.org/p?utm%5Fsource=x&id=7", "https://ex.org/p?id=7"),
    ],
)
def test_tracking_params_are_stripped(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The parameters that stay keep their exact bytes and order, whatever was dropped around them.
        ("https://ex.org/p?b=%20c+d&utm_source=x&a=%2F", "https://ex.org/p?b=%20c+d&a=%2F"),
        ("https://ex.org/p?q=x,y&fbclid=1&r=%E2%9C%93&s=a%2Bb", "https://ex.org/p?q=x,y&r=%E2%9C%93&s=a%2Bb"),
        ("https://ex.org/p?flag&empty=&utm_x=", "https://ex.org/p?flag&empty="),
        ("https://ex.org/p?z=1&a=2&utm_term=3&m=4", "https://ex.org/p?z=1&a=2&m=4"),
        # Nothing dropped: nothing touched.
        ("https://ex.org/p?b=%20c+d&a=1;c=2&&x", "https://ex.org/p?b=%20c+d&a=1;c=2&&x"),
        ("https://ex.org/Path/To/Page.HTML?Q=Mixed", "https://ex.org/Path/To/Page.HTML?Q=Mixed"),
    ],
)
def test_other_params_are_kept_byte_exact(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://ex.org/p#section-2", "https://ex.org/p"),
        ("https://ex.org/p?a=1#frag?b=2", "https://ex.org/p?a=1"),
        ("https://user:secret@ex.org/p", "https://ex.org/p"),
        ("https://user@ex.org:8443/p", "https://ex.org:8443/p"),
        ("https://ex.org:443/p", "https://ex.org/p"),
        ("http://ex.org:80/p", "http://ex.org/p"),
        ("http://ex.org:443/p", "http://ex.org:443/p"),
        ("http://ex.org:8080/p", "http://ex.org:8080/p"),
        ("HTTPS://WWW.EX.ORG", "https://www.ex.org/"),
        ("  https://ex.org/p  ", "https://ex.org/p"),
        ("https://[2001:DB8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
    ],
)
def test_fragment_credentials_and_default_port_dropped(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "data:text/html,<b>x</b>",
        "mailto:someone@example.org",
        "ftp://ex.org/file",
        "file:///etc/passwd",
        "tel:+15555550100",
        "http://ex.org:99999/",
        "http://ex.org:port/",
        "http://[broken/",
    ],
)
def test_unusable_urls_are_none(raw: str | None) -> None:
    assert canonical_url(raw) is None
    assert canonical_url(raw, "https://example.org/feed.xml") is None


def test_a_broken_base_does_not_raise() -> None:
    assert canonical_url("/a", "http://[broken/") is None


def test_url_without_host_is_none() -> None:
    assert canonical_url("https:///no-host") is None
    assert canonical_url("http://:80/") is None


def test_canonical_url_is_idempotent() -> None:
    once = canonical_url("HTTP://User:pw@Ex.org:80/a/b?utm_source=x&k=v%20w#f")
    assert once == "http://ex.org/a/b?k=v%20w"
    assert canonical_url(once) == once


URLISH = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, host, rest: f"{scheme}://{host}{rest}",
        st.sampled_from(["http", "https", "HTTP", "ftp", "javascript", "data", ""]),
        st.text(alphabet="abcXYZ.-:@[]0123456789", max_size=20),
        st.text(alphabet="/?#&=%+;abc_utm.:@ \t", max_size=30),
    ),
)


@settings(max_examples=200, deadline=None)
@given(raw=URLISH, base=st.one_of(st.none(), URLISH))
def test_result_is_none_or_absolute_http_without_fragment(raw: str, base: str | None) -> None:
    result = canonical_url(raw, base)
    if result is not None:
        assert result.startswith(("http://", "https://"))
        assert "#" not in result
