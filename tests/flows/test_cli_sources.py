"""feedlake sources import-opml / export-opml / add: onboarding from readers' OPML and site pages."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedlake.flows.cli_sources import add_sources_subcommands, run_sources_subcommand
from feedlake.flows.exit_codes import EXIT_CANNOT_RUN, EXIT_OK
from feedlake.tasks.sources.catalog import check_sources
from feedlake.tasks.sources.opml import MAX_OPML_BYTES, read_opml
from tests.support.paths import CASES
from tests.support.threaded_http import QuietHandler, serve_handler

OPML = CASES / "opml"
ATOM = (CASES / "corpus" / "feed-rs" / "atom_example_5.xml").read_bytes()
BAD_SITE_JSON = (
    b'{"version": "https://jsonfeed.org/version/1.1", "title": "Odd site", '
    b'"home_page_url": "http://[bad/", "items": [{"id": "1", "url": "https://odd.example/1", '
    b'"content_text": "hello"}]}'
)

MINE = """\
# Hand-written; this comment must survive every import.
sources:
  - id: rsc
    url: https://research.swtch.com/feed.atom
    name: research!rsc
    publisher: Russ Cox
    kind: blog
"""


def run(argv: list[str]) -> int | None:
    """Parse and run argv the way feedlake.flows.cli does for ``feedlake sources ...``."""
    parser = argparse.ArgumentParser(prog="feedlake")
    commands = parser.add_subparsers(dest="command", required=True)
    sources = commands.add_parser("sources")
    sources_commands = sources.add_subparsers(dest="sources_command", required=True)
    sources_commands.add_parser("check").add_argument("file")
    add_sources_subcommands(sources_commands)
    return run_sources_subcommand(parser.parse_args(argv))


class Site(QuietHandler):
    """A site: its home page links its Atom feed; /bare/ links nothing, and no common feed path exists."""

    def do_GET(self) -> None:
        pages = {
            "/": (
                "text/html",
                b'<html><head><link rel="alternate" type="application/atom+xml" href="/q/all.atom">'
                b"</head></html>",
            ),
            "/q/all.atom": ("application/atom+xml", ATOM),
            "/bare/": ("text/html", b"<html><head><title>bare</title></head></html>"),
            # A feed whose home page link is malformed: the publisher comes from the URL given.
            "/badsite.json": ("application/feed+json", BAD_SITE_JSON),
        }
        kind, body = pages.get(self.path, ("text/plain", b""))
        self.send_body(200 if body else 404, body, {"Content-Type": kind})


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    with serve_handler(Site) as base:
        yield base


@pytest.fixture
def mine(tmp_path: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(MINE, encoding="utf-8")
    return path


def test_import_miniflux_then_freshrss_merges_without_duplicates(mine: Path, capsys) -> None:
    assert run(["sources", "import-opml", str(OPML / "miniflux.opml"), "--to", str(mine)]) == 0
    assert f"{mine}: 5 added, 0 already there, 0 invalid" in capsys.readouterr().out
    assert (
        run(["sources", "import-opml", str(OPML / "freshrss.opml"), "--to", str(mine), "--kind", "news"]) == 0
    )
    out = capsys.readouterr().out
    assert f"{mine}: 3 added, 2 already there, 1 invalid" in out
    assert "ftp://example.org/feed" in out
    text = mine.read_text(encoding="utf-8")
    assert text.startswith(MINE)
    checked = check_sources(mine)
    assert checked.problems == ()
    by_id = {s.id: s for s in checked.sources}
    assert len(by_id) == 9
    assert by_id["suddeutsche-zeitung-politik"].publisher == "sueddeutsche.de"
    assert by_id["suddeutsche-zeitung-politik"].tags == ("News",)
    assert by_id["the-go-blog"].tags == ("Tech", "Go")
    assert by_id["the-go-blog"].kind == "news"
    assert by_id["ars-technica-all-content"].kind == "blog"
    # Importing the same list again adds nothing.
    assert run(["sources", "import-opml", str(OPML / "miniflux.opml"), "--to", str(mine)]) == 0
    assert "0 added, 5 already there" in capsys.readouterr().out
    assert mine.read_text(encoding="utf-8") == text


def test_import_of_a_non_opml_file_fails_cleanly(mine: Path, capsys) -> None:
    assert (
        run(
            [
                "sources",
                "import-opml",
                str(CASES / "corpus" / "feed-rs" / "atom_example_5.xml"),
                "--to",
                str(mine),
            ]
        )
        == 2
    )
    assert "no <opml> root" in capsys.readouterr().err
    assert mine.read_text(encoding="utf-8") == MINE


def test_export_writes_opml_a_reader_imports(mine: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    run(["sources", "import-opml", str(OPML / "miniflux.opml"), "--to", str(mine)])
    with mine.open("a", encoding="utf-8") as handle:
        handle.write(
            "  - id: private\n    url: https://p.example/feed?key=${FEEDLAKE_VAR_KEY}\n"
            "    name: Private\n    publisher: P\n    kind: news\n"
        )
    monkeypatch.setenv("FEEDLAKE_VAR_KEY", "hunter2-secret")
    capsys.readouterr()
    out = tmp_path / "subs.opml"
    assert run(["sources", "export-opml", str(mine), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"{out}: 7 feeds" in captured.out
    assert "1 URL(s) use ${FEEDLAKE_VAR_*} placeholders" in captured.err
    data = out.read_bytes()
    assert b"hunter2" not in data
    feeds = read_opml(data)
    assert {f.url for f in feeds} == {
        s.display_url for s in check_sources(mine, {"FEEDLAKE_VAR_KEY": "hunter2-secret"}).sources
    }
    assert {f.folders for f in feeds} == {("All",), ("News",), ()}
    # To standard output without --out.
    assert run(["sources", "export-opml", str(mine)]) == 0
    assert capsys.readouterr().out.startswith(
        "<?xml version='1.0' encoding='UTF-8'?>\n<opml version=\"2.0\">"
    )


def test_add_a_site_page_discovers_and_writes_a_checked_entry(mine: Path, site: str, capsys) -> None:
    assert run(["sources", "add", f"{site}/", "--to", str(mine), "--kind", "official"]) == 0
    out = capsys.readouterr().out
    assert f"found {site}/q/all.atom (atom10, <link rel=alternate>)" in out
    assert "1 added" in out
    checked = check_sources(mine)
    assert checked.problems == ()
    added = checked.sources[-1]
    assert (added.id, added.url, added.name, added.kind) == (
        "usgs-magnitude-2-5-earthquakes-past-hour",
        f"{site}/q/all.atom",
        "USGS Magnitude 2.5+ Earthquakes, Past Hour",
        "official",
    )
    assert added.publisher == "earthquake.usgs.gov"
    assert mine.read_text(encoding="utf-8").startswith(MINE)
    # The feed URL itself, again, with an id asked for: already there, nothing written.
    assert run(["sources", "add", f"{site}/q/all.atom", "--to", str(mine), "--id", "quakes"]) == 0
    assert "0 added, 1 already there" in capsys.readouterr().out


def test_add_a_page_without_a_feed_fails_naming_the_url(mine: Path, site: str, capsys) -> None:
    assert run(["sources", "add", f"{site}/bare/", "--to", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"url {site}/bare/" in err and "no feed found" in err
    assert mine.read_text(encoding="utf-8") == MINE


def test_subcommands_it_does_not_own_are_left_to_the_caller() -> None:
    assert run(["sources", "check", "x.yaml"]) is None


def test_feedlake_sources_import_opml_through_the_main_cli(mine: Path, capsys) -> None:
    # Passes once feedlake.flows.cli wires add_sources_subcommands / run_sources_subcommand.
    from feedlake.flows.cli import main

    assert main(["sources", "import-opml", str(OPML / "freshrss.opml"), "--to", str(mine)]) == 0
    assert f"{mine}: 4 added, 1 already there, 1 invalid" in capsys.readouterr().out
    assert main(["sources", "check", str(mine)]) == 0


def test_feedlake_sources_add_and_export_through_the_main_cli(tmp_path: Path, site: str, capsys) -> None:
    from feedlake.flows.cli import main

    target = tmp_path / "new.yaml"
    assert main(["sources", "add", f"{site}/", "--to", str(target)]) == 0
    assert main(["sources", "export-opml", str(target), "--out", str(tmp_path / "o.opml")]) == 0
    assert [f.url for f in read_opml((tmp_path / "o.opml").read_bytes())] == [f"{site}/q/all.atom"]
    shutil.rmtree(tmp_path)


def test_import_names_malformed_urls_as_invalid_and_adds_the_rest(mine: Path, tmp_path: Path, capsys) -> None:
    opml = tmp_path / "hostile.opml"
    opml.write_text(
        "<opml><body>"
        '<outline text="Broken" xmlUrl="http://[bad/feed"/>'
        '<outline xmlUrl="http://[::1/feed"/>'
        '<outline text="Good" xmlUrl="https://good.example/feed" htmlUrl="http://[bad/"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    assert run(["sources", "import-opml", str(opml), "--to", str(mine)]) == EXIT_OK
    out = capsys.readouterr().out
    assert f"{mine}: 1 added, 0 already there, 2 invalid" in out
    assert "skipped, not a usable feed URL: http://[bad/feed: " in out
    assert "skipped, not a usable feed URL: http://[::1/feed: " in out
    good = check_sources(mine).sources[-1]
    assert (good.id, good.url, good.publisher) == ("good", "https://good.example/feed", "good.example")


def test_import_of_a_huge_file_is_refused_without_reading_it_all(mine: Path, tmp_path: Path, capsys) -> None:
    big = tmp_path / "big.opml"
    with big.open("wb") as handle:
        handle.write(b"<opml><body>")
        handle.truncate(MAX_OPML_BYTES * 4)
    assert run(["sources", "import-opml", str(big), "--to", str(mine)]) == EXIT_CANNOT_RUN
    assert "larger than" in capsys.readouterr().err
    assert mine.read_text(encoding="utf-8") == MINE


def test_add_a_feed_whose_site_link_is_malformed(mine: Path, site: str, capsys) -> None:
    assert run(["sources", "add", f"{site}/badsite.json", "--to", str(mine)]) == EXIT_OK
    assert "1 added" in capsys.readouterr().out
    added = check_sources(mine).sources[-1]
    assert (added.id, added.url, added.publisher) == ("odd-site", f"{site}/badsite.json", "127.0.0.1")


def test_exit_codes_are_shared_values() -> None:
    assert (EXIT_OK, EXIT_CANNOT_RUN) == (0, 2)
    assert run(["sources", "export-opml", "/nonexistent/sources.yaml"]) == EXIT_CANNOT_RUN
