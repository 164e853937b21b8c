"""sources.catalog: checking the YAML catalog of feeds, every problem reported on its own line."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.tasks.errors import ConfigError, FetchTerminalError
from feedlake.tasks.fetch.url_guard import parse_fetch_url
from feedlake.tasks.sources.catalog import (
    Source,
    check_sources,
    load_sources,
    parse_interval,
    redact,
    url_problem,
)
from tests.support.paths import REPO

GOOD = """\
sources:
  - id: good-one
    url: https://example.org/a.xml
    name: Good One
    publisher: Example
    kind: news
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based number of the line holding the nth occurrence of needle."""
    hits = [number for number, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(hits) >= nth, f"{needle!r} occurs {len(hits)} times"
    return hits[nth - 1]


def test_valid_file_loads_every_field(tmp_path: Path) -> None:
    text = GOOD + (
        "  - id: second_2\n"
        "    url: 'http://example.com/feed?x=1&y=2'\n"
        "    name: Second\n"
        "    publisher: Someone\n"
        "    kind: official\n"
        "    country: us\n"
        "    language: en\n"
        "    tags: [a, b]\n"
        "    enabled: false\n"
        "    poll_interval: 15m\n"
    )
    checked = check_sources(write(tmp_path, text))
    assert checked.problems == ()
    assert checked.sources == (
        Source(
            id="good-one", url="https://example.org/a.xml", name="Good One", publisher="Example", kind="news"
        ),
        Source(
            id="second_2",
            url="http://example.com/feed?x=1&y=2",
            name="Second",
            publisher="Someone",
            kind="official",
            country="us",
            language="en",
            tags=("a", "b"),
            enabled=False,
            poll_interval_seconds=15 * 60,
        ),
    )
    assert load_sources(write(tmp_path, text)) == checked.sources


def entry(source_id: str = "bad", url: str = "https://x.org/", kind: str = "news", extra: str = "") -> str:
    """One source entry of a sources file, with the given values and extra lines."""
    head = f"  - id: {source_id}\n    url: {url}\n    name: B\n    publisher: P\n    kind: {kind}\n"
    return head + "".join(f"    {line}\n" for line in extra.splitlines())


# Each case appends one broken source after GOOD: (YAML of the entry, text on the faulty line, message).
BROKEN = {
    "unknown key": (entry(extra="colour: red"), "colour:", "unknown key 'colour'"),
    "missing key": (
        "  - id: bad\n    url: https://x.org/\n    name: B\n    kind: news\n",
        "id: bad",
        "'publisher'",
    ),
    "bad id": (entry("Bad_ID"), "id: Bad_ID", "lowercase slug"),
    "non-http url": (entry(url="ftp://x.org/feed"), "url: ftp", "absolute http(s) URL"),
    "relative url": (entry(url="/feed.xml"), "url: /feed", "absolute http(s) URL"),
    "bad kind": (entry(kind="tabloid"), "kind: tabloid", "kind must be one of official, news, blog"),
    "bad poll_interval": (entry(extra="poll_interval: 5x"), "poll_interval", "poll_interval '5x'"),
    "zero poll_interval": (entry(extra="poll_interval: 0m"), "poll_interval", "poll_interval '0m'"),
    "bad enabled": (entry(extra="enabled: maybe"), "enabled:", "enabled must be true or false"),
    "bad tags": (entry(extra="tags: [a, [b]]"), "tags:", "tags must be a list of strings"),
    # The second "id: good-one" is the faulty line (nth=2 below).
    "duplicate id": (
        entry("good-one", kind="blog"),
        "id: good-one",
        "duplicate id 'good-one' (first on line 2)",
    ),
    "unset variable": (
        entry(url="${FEEDLAKE_VAR_NOT_SET}/feed.xml"),
        "url: ${FEEDLAKE_VAR_NOT_SET}",
        "${FEEDLAKE_VAR_NOT_SET}, which is not set",
    ),
    "variable outside the prefix": (
        entry(url="https://x.org/?key=${AWS_SECRET_ACCESS_KEY}"),
        "AWS_SECRET",
        "placeholders are read only from FEEDLAKE_VAR_*",
    ),
    "id with a trailing newline": (entry('"bad-id\\n"'), "bad-id", "lowercase slug"),
    "port out of range": (entry(url="http://x.org:99999/feed"), "99999", "port 99999 is out of range"),
    "port zero": (entry(url="http://x.org:0/feed"), "x.org:0", "port 0 is out of range"),
    "port not a number": (entry(url="http://x.org:http/feed"), "x.org:http", "Invalid port: 'http'"),
    "no host": (entry(url="http:///feed.xml"), "http:///", "has no host"),
    "empty host": (entry(url="http://:80/feed.xml"), "http://:80", "has no host"),
    "bad IDNA host": (entry(url="http://\u2603.com/feed"), "\u2603", "Invalid IDNA hostname"),
    "empty label": (entry(url="http://a..b/feed"), "a..b", "not a valid host name"),
    "control character in url": (entry(url='"http://x.org/a\\tb"'), "a\\tb", "non-printable"),
    "poll_interval beyond 30 days": (
        entry(extra="poll_interval: 99999999999999999999d"),
        "poll_interval",
        "out of range: it must be between 1s and 30d",
    ),
    "bad date value": (entry(extra="country: 2024-13-45"), "2024-13-45", "month must be in 1..12"),
    "repeated key": (entry(extra="kind: blog"), "kind: blog", "key 'kind' appears twice"),
    "unknown full_text mode": (
        entry(extra="full_text: sometimes"),
        "full_text:",
        "full_text must be one of auto, always, never",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_error_is_reported_on_its_line(tmp_path: Path, case: str) -> None:
    broken, needle, message = BROKEN[case]
    text = GOOD + broken
    checked = check_sources(write(tmp_path, text))
    expected_line = line_of(text, needle, nth=2 if case == "duplicate id" else 1)
    assert [(p.line, message in p.message) for p in checked.problems] == [(expected_line, True)]
    assert [s.id for s in checked.sources] == ["good-one"]
    with pytest.raises(ConfigError, match=rf"1 error\(s\): line {expected_line}: "):
        load_sources(write(tmp_path, text))


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD + "".join(BROKEN[case][0] for case in ("unknown key", "bad kind", "unset variable"))
    checked = check_sources(write(tmp_path, text))
    assert [p.line for p in checked.problems] == [
        line_of(text, "colour:"),
        line_of(text, "kind: tabloid"),
        line_of(text, "url: ${FEEDLAKE_VAR_NOT_SET}"),
    ]
    with pytest.raises(ConfigError) as raised:
        load_sources(write(tmp_path, text))
    assert "3 error(s)" in str(raised.value)
    assert all(str(p) in str(raised.value) for p in checked.problems)


def test_missing_keys_are_each_named_on_the_entry_line(tmp_path: Path) -> None:
    text = GOOD + "  - id: lonely\n    name: Only a name\n"
    checked = check_sources(write(tmp_path, text))
    entry_line = line_of(text, "id: lonely")
    assert [(p.line, p.message) for p in checked.problems] == [
        (entry_line, "missing required key 'url'"),
        (entry_line, "missing required key 'publisher'"),
        (entry_line, "missing required key 'kind'"),
    ]


@pytest.mark.parametrize(
    ("text", "bad_line"),
    [
        # A flow list never closed: the parser trips on the next key.
        ("sources:\n  - id: a\n    tags: [x, y\n    name: A\n    publisher: P\n", 4),
        # A tab where indentation was expected.
        ("sources:\n  - id: a\n\tname: x\n", 3),
        # A quote never closed: the parser runs to the end of the file; report where the quote opened.
        ('sources:\n  - id: a\n    url: "https://x.org/\n    name: A\n    kind: news\n', 3),
    ],
)
def test_invalid_yaml_is_one_problem_on_the_offending_line(tmp_path: Path, text: str, bad_line: int) -> None:
    checked = check_sources(write(tmp_path, text))
    assert checked.sources == ()
    assert len(checked.problems) == 1
    assert checked.problems[0].line == bad_line
    assert checked.problems[0].message.startswith("not valid YAML")
    assert checked.problems[0].line <= len(text.splitlines())


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_empty_file_is_a_problem_on_line_1(tmp_path: Path, text: str) -> None:
    checked = check_sources(write(tmp_path, text))
    assert checked.sources == ()
    assert [(p.line, "empty" in p.message) for p in checked.problems] == [(1, True)]


def test_wrong_top_level_shapes(tmp_path: Path) -> None:
    assert "missing the top-level 'sources:'" in str(
        check_sources(write(tmp_path, "feeds: []\n")).problems[0]
    )
    assert "must be a list" in str(check_sources(write(tmp_path, "sources: {}\n")).problems[0])
    checked = check_sources(write(tmp_path, "sources:\n  - just-a-string\n"))
    assert [(p.line, p.message) for p in checked.problems] == [(2, "each source must be a mapping")]


def test_unreadable_file_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read sources file"):
        check_sources(tmp_path / "absent.yaml")


def test_variables_are_expanded_in_urls(tmp_path: Path) -> None:
    text = (
        "sources:\n  - id: a\n    url: ${FEEDLAKE_VAR_BASE}/x/${FEEDLAKE_VAR_NAME}.xml\n"
        "    name: A\n    publisher: P\n    kind: blog\n"
    )
    variables = {"FEEDLAKE_VAR_BASE": "http://127.0.0.1:8080", "FEEDLAKE_VAR_NAME": "feed"}
    (source,) = load_sources(write(tmp_path, text), variables)
    assert source.url == "http://127.0.0.1:8080/x/feed.xml"
    assert source.display_url == "${FEEDLAKE_VAR_BASE}/x/${FEEDLAKE_VAR_NAME}.xml"
    # The variable must yield an http(s) URL, not just be set; the message shows the placeholder.
    checked = check_sources(
        write(tmp_path, text), {"FEEDLAKE_VAR_BASE": "file:///tmp", "FEEDLAKE_VAR_NAME": "f"}
    )
    assert [p.line for p in checked.problems] == [3]
    assert "${FEEDLAKE_VAR_BASE}/x/${FEEDLAKE_VAR_NAME}.xml" in checked.problems[0].message
    assert "file:///tmp" not in checked.problems[0].message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("2d", 172800), ("1s", 1), ("30d", 30 * 86400)],
)
def test_parse_interval(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["0s", "31d", "2592001s", "99999999999999999999d", "9" * 5000 + "s"])
def test_parse_interval_refuses_intervals_outside_one_second_to_thirty_days(text: str) -> None:
    # Anything it accepts must fit the scheduler's timedelta (flows/deployments.py).
    with pytest.raises(ValueError, match="between 1s and 30d"):
        parse_interval(text)


@pytest.mark.parametrize("text", ["\u0661\u0665m", "15", "m", "1.5h", "-1m"])
def test_parse_interval_refuses_what_is_not_an_interval(text: str) -> None:
    with pytest.raises(ValueError, match="is not like 30s"):
        parse_interval(text)


def test_default_catalog_checks_clean() -> None:
    checked = check_sources(REPO / "infra/sources/default.yaml")
    assert checked.problems == ()
    text = (REPO / "infra/sources/default.yaml").read_text(encoding="utf-8")
    assert len(checked.sources) == text.count("\n  - id: ")
    assert len({s.id for s in checked.sources}) == len(checked.sources)
    assert all(s.url.startswith("https://") for s in checked.sources)


def test_demo_catalog_checks_clean_with_snapshot_base() -> None:
    path = REPO / "infra/sources/demo.yaml"
    checked = check_sources(path, {"FEEDLAKE_VAR_SNAPSHOTS": "http://127.0.0.1:8765"})
    assert checked.problems == ()
    assert len(checked.sources) == path.read_text(encoding="utf-8").count("\n  - id: ")
    for source in checked.sources:
        assert source.url.startswith("http://127.0.0.1:8765/")
        # Every demo URL points at a capture that exists in tests/cases/.
        assert (REPO / "tests/cases" / source.url.removeprefix("http://127.0.0.1:8765/")).is_file()


def test_demo_catalog_without_the_variable_flags_every_source() -> None:
    checked = check_sources(REPO / "infra/sources/demo.yaml")
    assert checked.sources == ()
    assert checked.problems
    assert all("${FEEDLAKE_VAR_SNAPSHOTS}, which is not set" in p.message for p in checked.problems)
    text = (REPO / "infra/sources/demo.yaml").read_text(encoding="utf-8").splitlines()
    assert all("${FEEDLAKE_VAR_SNAPSHOTS}" in text[p.line - 1] for p in checked.problems)


@pytest.mark.parametrize(
    ("construct", "message"),
    [
        ("    country: !!python/object/apply:os.system ['echo owned']\n", "YAML tags"),
        ("    country: !custom us\n", "YAML tags"),
        ("    country: !!str us\n", "YAML tags"),
        ("    country: &c us\n", "YAML anchors (&c)"),
    ],
)
def test_tags_and_anchors_are_refused_on_their_line(tmp_path: Path, construct: str, message: str) -> None:
    text = GOOD + entry() + construct
    checked = check_sources(write(tmp_path, text))
    assert [(p.line, message in p.message) for p in checked.problems] == [(len(text.splitlines()), True)]
    assert checked.sources == ()
    with pytest.raises(ConfigError, match=f"line {len(text.splitlines())}: YAML"):
        load_sources(write(tmp_path, text))


def test_alias_bomb_as_mapping_key_is_refused_quickly_and_small(tmp_path: Path) -> None:
    # Each level doubles the previous one: expanded, the unknown-key message would be 2**20 long.
    levels = ["a0: &a0 [x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 21)]
    text = "bomb:\n" + "".join(f"  {line}\n" for line in levels)
    text += "sources:\n  - id: a\n    ? *a20\n    : boom\n"
    assert len(text) < 1000
    checked = check_sources(write(tmp_path, text))
    assert checked.sources == ()
    assert checked.problems[0] == check_sources(write(tmp_path, text)).problems[0]
    assert all(p.message.startswith("YAML a") for p in checked.problems)
    assert line_of(text, "*a20") in [p.line for p in checked.problems]
    assert sum(len(p.message) for p in checked.problems) < 10_000


@pytest.mark.parametrize("depth", [20, 100_000])
def test_deep_nesting_is_refused_without_recursion(tmp_path: Path, depth: int) -> None:
    text = "sources:\n  - id: a\n    tags: " + "[" * depth + "]" * depth + "\n"
    checked = check_sources(write(tmp_path, text))
    # Ours refuses past 8 levels; libyaml itself stops at 1000 ("exceeded maximum nesting depth").
    assert [(p.line, "nest" in p.message) for p in checked.problems] == [(3, True)]


def test_non_scalar_key_is_a_problem_not_a_giant_message(tmp_path: Path) -> None:
    text = GOOD + entry() + "    ? [" + ", ".join(["long-key"] * 2000) + "]\n    : x\n"
    checked = check_sources(write(tmp_path, text))
    assert [(p.line, p.message) for p in checked.problems] == [
        (len(text.splitlines()) - 1, "keys must be plain words like 'url'")
    ]


def test_placeholders_never_read_outside_the_prefix(tmp_path: Path) -> None:
    text = GOOD.replace("https://example.org/a.xml", "https://example.org/a.xml?k=${AWS_SECRET_ACCESS_KEY}")
    environ = {"AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI-secret", "FEEDLAKE_VAR_AWS_SECRET_ACCESS_KEY": ""}
    checked = check_sources(write(tmp_path, text), environ)
    assert checked.sources == ()
    (problem,) = checked.problems
    assert problem.line == 3
    assert "write ${FEEDLAKE_VAR_AWS_SECRET_ACCESS_KEY}" in problem.message
    assert "wJalr" not in problem.message


def test_substituted_values_are_redacted_wherever_the_url_is_shown(tmp_path: Path) -> None:
    text = GOOD.replace("https://example.org/a.xml", "https://example.org/a.xml?token=${FEEDLAKE_VAR_TOKEN}")
    secret = "s3cr3t/value+x"
    (source,) = load_sources(write(tmp_path, text), {"FEEDLAKE_VAR_TOKEN": secret, "OTHER": "x"})
    assert source.url == f"https://example.org/a.xml?token={secret}"
    assert source.substitutions == (("FEEDLAKE_VAR_TOKEN", secret),)
    assert source.display_url == "https://example.org/a.xml?token=${FEEDLAKE_VAR_TOKEN}"
    assert secret not in repr(source) and "${FEEDLAKE_VAR_TOKEN}" in repr(source)
    # A client or server may quote the URL back percent-encoded.
    message = f"GET {source.url} failed; server said /a.xml?token=s3cr3t%2Fvalue%2Bx is gone"
    cleaned = redact(message, [source])
    assert cleaned == (
        "GET https://example.org/a.xml?token=${FEEDLAKE_VAR_TOKEN} failed; "
        "server said /a.xml?token=${FEEDLAKE_VAR_TOKEN} is gone"
    )
    assert source.redact(message) == cleaned
    assert redact(message, []) == message


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/feed",
        "http://127.0.0.1:8080/feed.xml",
        "http://[::1]:8080/feed.xml",
        "https://bücher.de/feed",
        "https://xn--bcher-kva.de/feed",
        "https://my_blog.example.org/rss",
        "HTTPS://EXAMPLE.ORG:443/?a=1&b=2",
        "https://user:pw@example.org/feed",
    ],
)
def test_url_problem_accepts_real_feed_urls(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://x.org:65536/", "port"),
        ("http://[::1/", "malformed"),
        ("mailto:x@example.org", "absolute http(s) URL"),
        ("http://-bad.example/", "not a valid host name"),
        ("http://" + "a" * 64 + ".example/", "not a valid host name"),
        ("http://x.org/\x00", "non-printable"),
    ],
)
def test_url_problem_names_what_is_wrong(url: str, message: str) -> None:
    problem = url_problem(url)
    assert problem is not None and message in problem


@pytest.mark.parametrize(
    "url",
    [
        # Valid under UTS 46 mapping (XII, ff), but the fetch's IDNA encoding refuses them.
        "http://\u216b.example/f",
        "http://\ufb00.example/",
        # An A-label that decodes to nothing valid: looks like a host name, is not one.
        "http://xn--abc.example/",
    ],
)
def test_the_check_and_the_fetch_refuse_the_same_urls(url: str, tmp_path: Path) -> None:
    text = GOOD + entry(url=f'"{url}"')
    checked = check_sources(write(tmp_path, text))
    assert [p.line for p in checked.problems] == [line_of(text, "url:", nth=2)]
    problem = url_problem(url)
    assert problem is not None and problem in checked.problems[0].message
    with pytest.raises(FetchTerminalError) as refused:
        parse_fetch_url(url, "s")
    assert refused.value.reason == problem


@pytest.mark.parametrize(
    "url",
    ["https://xn--bcher-kva.de/feed", "https://b\u00fccher.de/feed", "http://x.org/a b", "http://x.org:1/"],
)
def test_what_the_fetch_accepts_passes_the_check(url: str) -> None:
    assert parse_fetch_url(url, "s")
    assert url_problem(url) is None


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
def test_full_text_is_read_per_source_and_defaults_to_auto(tmp_path: Path, mode: str) -> None:
    text = GOOD + entry("other", extra=f"full_text: {mode}")
    by_id = {s.id: s for s in load_sources(write(tmp_path, text))}
    assert (by_id["good-one"].full_text, by_id["other"].full_text) == ("auto", mode)
