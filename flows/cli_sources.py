"""``feedlake sources`` onboarding subcommands: import-opml, export-opml and add.

``feedlake.flows.cli`` adds these to its ``sources`` subparser group with ``add_sources_subcommands`` and
runs them with ``run_sources_subcommand`` (None for the subcommands it runs itself: check, status).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from feedlake.flows.exit_codes import EXIT_CANNOT_RUN, EXIT_OK
from feedlake.tasks.errors import FeedlakeError
from feedlake.tasks.settings import FeedlakeSettings
from feedlake.tasks.sources.catalog import KINDS, load_sources, url_problem
from feedlake.tasks.sources.edit import AddResult, NewSource, add_sources

OWN_COMMANDS = ("import-opml", "export-opml", "add")


def add_sources_subcommands(sources_commands: argparse._SubParsersAction[Any]) -> None:
    """Add import-opml, export-opml and add to the ``feedlake sources`` subparser group."""
    kind_help = f"kind of the new sources: {' | '.join(KINDS)} (default blog)"
    imports = sources_commands.add_parser(
        "import-opml", help="add the feeds of an OPML file (Miniflux, FreshRSS, any reader) to a sources file"
    )
    imports.add_argument("file", help="OPML file exported by a feed reader")
    imports.add_argument("--to", required=True, help="sources file to add to (created if missing)")
    imports.add_argument("--kind", choices=KINDS, default="blog", help=kind_help)
    exports = sources_commands.add_parser("export-opml", help="write a sources file as OPML 2.0")
    exports.add_argument("file", help="sources file")
    exports.add_argument("--out", help="OPML file to write (default: standard output)")
    add = sources_commands.add_parser(
        "add", help="add a feed, given its URL or a site page that links it, to a sources file"
    )
    add.add_argument("url", help="feed URL or web page URL")
    add.add_argument("--to", required=True, help="sources file to add to (created if missing)")
    add.add_argument("--id", help="source id (default: made from the feed title)")
    add.add_argument("--kind", choices=KINDS, default="blog", help=kind_help)
    add.add_argument("--publisher", help="publisher (default: the site's host name)")


def run_sources_subcommand(args: argparse.Namespace) -> int | None:
    """Run an onboarding subcommand and return its exit status; None if it is not one of these."""
    command = getattr(args, "sources_command", None)
    if command not in OWN_COMMANDS:
        return None
    try:
        if command == "import-opml":
            return import_opml_command(args.file, args.to, args.kind)
        if command == "export-opml":
            return export_opml_command(args.file, args.out)
        return add_command(args.url, args.to, args.id, args.kind, args.publisher)
    except FeedlakeError as exc:
        print(f"feedlake: {command} failed: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN


def import_opml_command(opml_file: str, sources_file: str, kind: str) -> int:
    """Merge an OPML file's feeds into a sources file and print how many were added and skipped."""
    from feedlake.tasks.sources.opml import MAX_OPML_BYTES, read_opml

    try:
        # One byte past the limit is enough for read_opml to refuse it; /dev/zero must not fill memory.
        with Path(opml_file).open("rb") as handle:
            data = handle.read(MAX_OPML_BYTES + 1)
    except OSError as exc:
        print(f"feedlake: cannot read OPML file {opml_file}: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    feeds = read_opml(data, opml_file)
    # A malformed xmlUrl still goes to add_sources, which checks it and lists it as invalid.
    candidates = [
        NewSource(
            url=feed.url,
            name=feed.title or _host(feed.url),
            publisher=_host(feed.site_url, feed.url),
            kind=kind,
            tags=feed.folders,
        )
        for feed in feeds
    ]
    result = add_sources(sources_file, candidates, os.environ)
    _print_result(result)
    return EXIT_OK


def export_opml_command(sources_file: str, out: str | None) -> int:
    """Write every source of a sources file as OPML 2.0, to a file or standard output."""
    from feedlake.tasks.sources.opml import write_opml

    sources = load_sources(sources_file, os.environ)
    data = write_opml(sources, title=f"feedlake sources from {Path(sources_file).name}")
    hidden = sum(1 for s in sources if s.substitutions)
    if out is None:
        sys.stdout.write(data.decode("utf-8"))
    else:
        Path(out).write_bytes(data)
        print(f"{out}: {len(sources)} feeds")
    if hidden:
        print(
            f"feedlake: {hidden} URL(s) use ${{FEEDLAKE_VAR_*}} placeholders and are exported with the "
            "placeholder, not its value",
            file=sys.stderr,
        )
    return EXIT_OK


def add_command(url: str, sources_file: str, source_id: str | None, kind: str, publisher: str | None) -> int:
    """Find the feed behind a URL, check that it parses, and add it to a sources file."""
    # Discovery's HTML parsing is imported by the command that uses it, not by every command.
    from feedlake.tasks.sources.discovery import discover_feed_blocking

    with _quiet_probes():
        found = discover_feed_blocking(url, FeedlakeSettings())
    print(f"found {found.url} ({found.format}, {found.found_by}): {found.title or 'no title'}")
    candidate = NewSource(
        url=found.url,
        name=found.title or _host(found.url),
        publisher=publisher or _host(found.site_url, url),
        kind=kind,
        id=source_id,
    )
    _print_result(add_sources(sources_file, [candidate], os.environ))
    return EXIT_OK


def _print_result(result: AddResult) -> None:
    for source in result.added:
        print(f"added {source.id}: {source.display_url}")
    for line in result.duplicates:
        print(f"skipped, already in the file: {line}")
    for line in result.invalid:
        print(f"skipped, not a usable feed URL: {line}")
    print(
        f"{result.path}: {len(result.added)} added, {len(result.duplicates)} already there, "
        f"{len(result.invalid)} invalid"
    )


def _host(*urls: str | None) -> str:
    # The host of the first usable URL: an OPML file or a feed's <link> may hold anything.
    given = [url for url in urls if url]
    for url in given:
        if url_problem(url) is None:
            host = urlsplit(url).hostname or url
            return host.lower().removeprefix("www.")
    return given[-1] if given else ""


@contextmanager
def _quiet_probes() -> Iterator[None]:
    # Discovery tries candidates that are expected to 404; those are not warnings for the operator.
    fetch_log = logging.getLogger("feedlake.tasks.fetch.client")
    level = fetch_log.level
    fetch_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        fetch_log.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """One onboarding subcommand alone: ``python -m feedlake.flows.cli_sources add URL --to FILE``."""
    parser = argparse.ArgumentParser(prog="feedlake sources")
    add_sources_subcommands(parser.add_subparsers(dest="sources_command", required=True))
    status = run_sources_subcommand(parser.parse_args(argv))
    return EXIT_CANNOT_RUN if status is None else status


if __name__ == "__main__":
    raise SystemExit(main())
