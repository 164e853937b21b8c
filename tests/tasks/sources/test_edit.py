"""sources.edit: adding entries to a sources file while keeping what a person wrote."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.sources.catalog import check_sources
from feedlake.tasks.sources.edit import NewSource, add_sources, append_entries, slugify, url_key
from tests.support.paths import REPO

HAND_WRITTEN = """\
# My feeds. Keep this comment.
sources:
  # --- blogs ---
  - id: rsc
    url: https://research.swtch.com/feed.atom   # trailing comment stays
    name: research!rsc
    publisher: Russ Cox
    kind: blog
    tags:
      - go
      - math

  - id: dfb
    url: "https://daringfireball.net/feeds/main"
    name: Daring Fireball
    publisher: John Gruber
    kind: blog
# end of list: new entries go above this line
settings_note: kept
"""


def new(url: str, name: str, **extra: object) -> NewSource:
    return NewSource(url=url, name=name, publisher="P", kind="news", **extra)  # type: ignore[arg-type]


def test_appends_after_the_last_entry_keeping_every_other_byte(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    result = add_sources(path, [new("https://go.dev/blog/feed.atom", "The Go Blog", tags=("Tech", "Go"))])
    assert [s.id for s in result.added] == ["the-go-blog"]
    text = path.read_text(encoding="utf-8")
    head, tail = HAND_WRITTEN.split("# end of list")
    assert text.startswith(head.rstrip("\n"))
    assert text.endswith("# end of list" + tail)
    added = text[len(head.rstrip("\n")) : -len("# end of list" + tail)]
    # Blank line between entries, as the file already does; indented like the others.
    assert added == (
        "\n\n  - id: the-go-blog\n"
        '    url: "https://go.dev/blog/feed.atom"\n'
        '    name: "The Go Blog"\n'
        '    publisher: "P"\n'
        "    kind: news\n"
        '    tags: ["Tech", "Go"]\n'
    )
    checked = check_sources(path)
    assert checked.problems == ()
    assert [s.id for s in checked.sources] == ["rsc", "dfb", "the-go-blog"]


def test_duplicates_by_url_and_ids_made_unique(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    result = add_sources(
        path,
        [
            new("http://research.swtch.com/feed.atom/", "rsc again"),  # same feed: scheme, slash
            new("https://a.example/feed", "research!rsc"),  # slug of a taken... name, not id
            new("https://b.example/feed", "RSC"),
            new("https://c.example/feed", "rsc"),
            new("https://c.example:443/feed", "same as c"),
            new("ftp://d.example/feed", "not http"),
            new("https://e.example/${FEEDLAKE_VAR_X}", "placeholder"),
        ],
    )
    assert [s.id for s in result.added] == ["research-rsc", "rsc-2", "rsc-3"]
    assert len(result.duplicates) == 2 and "'rsc'" in result.duplicates[0]
    assert [line.split(":")[0] for line in result.invalid] == ["ftp", "https"]
    assert len(check_sources(path).sources) == 5


def test_requested_id_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    with pytest.raises(ConfigError, match="'rsc' is already used"):
        add_sources(path, [new("https://x.example/f", "X", id="rsc")])
    with pytest.raises(ConfigError, match="lowercase slug"):
        add_sources(path, [new("https://x.example/f", "X", id="Bad Id")])
    assert path.read_text(encoding="utf-8") == HAND_WRITTEN


def test_missing_file_is_created_and_a_broken_one_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "new.yaml"
    result = add_sources(path, [new("https://x.example/f", 'Ünïcode: "quoted"\nline')])
    assert [s.name for s in result.added] == ['Ünïcode: "quoted"\nline']
    assert check_sources(path).sources == result.added
    broken = tmp_path / "broken.yaml"
    broken.write_text("sources:\n  - id: x\n    colour: red\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="fix them first: line 3: unknown key 'colour'"):
        add_sources(broken, [new("https://x.example/f", "X")])
    assert broken.read_text(encoding="utf-8") == "sources:\n  - id: x\n    colour: red\n"


def test_a_failed_check_leaves_the_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(HAND_WRITTEN, encoding="utf-8")
    os.chmod(path, 0o640)
    # A kind outside the list is refused up front; a name YAML cannot hold as text is not.
    result = add_sources(path, [NewSource("https://x.example/f", "X", "P", "tabloid")])
    assert result.added == () and "kind must be one of" in result.invalid[0]
    add_sources(path, [new("https://x.example/f", "X")])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sources.yaml"]


@pytest.mark.parametrize(
    ("text", "expected_ids"),
    [
        ("", ["n"]),
        ("# only a comment", ["n"]),
        ("sources: []  # none yet\n", ["n"]),
        ("sources:\n- id: a\n  url: https://a.org/\n  name: A\n  publisher: P\n  kind: blog", ["a", "n"]),
        (
            "sources:\r\n  - id: a\r\n    url: https://a.org/\r\n    publisher: P\r\n    kind: blog\r\n"
            "    name: |\r\n      two\r\n      lines\r\n\r\nother: 1\r\n",
            ["a", "n"],
        ),
    ],
)
def test_append_handles_each_list_shape(text: str, expected_ids: list[str], tmp_path: Path) -> None:
    edited = append_entries(text, [new("https://n.org/feed", "N", id="n")])
    path = tmp_path / "s.yaml"
    path.write_bytes(edited.encode("utf-8"))
    checked = check_sources(path)
    assert checked.problems == ()
    assert [s.id for s in checked.sources] == expected_ids
    if "\r\n" in text:
        assert "\n" not in edited.replace("\r\n", "")
    if text.startswith("# only"):
        assert edited.startswith("# only a comment\nsources:\n")


def test_flow_style_list_with_entries_is_refused() -> None:
    with pytest.raises(ConfigError, match="flow style"):
        append_entries(
            "sources: [{id: a, url: 'https://a.org/', name: A, publisher: P, kind: blog}]\n",
            [new("https://n.org/feed", "N", id="n")],
        )


def test_default_catalog_takes_an_entry(tmp_path: Path) -> None:
    path = tmp_path / "default.yaml"
    original = (REPO / "infra/sources/default.yaml").read_text(encoding="utf-8")
    path.write_text(original, encoding="utf-8")
    add_sources(path, [new("https://go.dev/blog/feed.atom", "The Go Blog")])
    text = path.read_text(encoding="utf-8")
    assert text.startswith(original.rstrip("\n"))
    assert len(check_sources(path).sources) == original.count("\n  - id: ") + 1


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Süddeutsche Zeitung: Politik", "suddeutsche-zeitung-politik"),
        ("日本語", "feed"),
        ("x" * 80, "x" * 56),
    ],
)
def test_slugify(title: str, slug: str) -> None:
    assert slugify(title) == slug


def test_url_key_ignores_scheme_default_port_and_trailing_slash() -> None:
    assert url_key("http://EXAMPLE.org:80/feed/") == url_key("https://example.org/feed")
    assert url_key("https://example.org/feed?a=1") != url_key("https://example.org/feed?a=2")
