"""Add entries to a sources file without disturbing what a person wrote in it.

New entries are appended as YAML text after the last item of the ``sources:`` list, indented like
the items already there; the rest of the file (comments, order, quoting) is left byte for byte.
The result is written beside the file, checked with ``check_sources``, and only then moved over
the original (an atomic rename), so a failed edit never leaves a broken or half-written file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.sources.catalog import (
    KINDS,
    SOURCE_ID,
    VARIABLE,
    Source,
    check_sources,
    check_sources_text,
    url_problem,
)

log = logging.getLogger(__name__)

MAX_SLUG = 56  # leaves room for a "-NNN" suffix within the 64 characters an id may have
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class NewSource:
    """A source to add: ``id`` is the one asked for, or None to derive one from the name."""

    url: str
    name: str
    publisher: str
    kind: str
    tags: tuple[str, ...] = ()
    id: str | None = None


@dataclass(frozen=True)
class AddResult:
    """What adding to a sources file did: the entries written and the candidates left out."""

    path: str
    added: tuple[Source, ...]
    duplicates: tuple[str, ...]
    invalid: tuple[str, ...]


def slugify(text: str) -> str:
    """A source id made from a title: ASCII, lowercase, words joined by '-'."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:MAX_SLUG].strip("-")
    return slug or "feed"


def url_key(url: str) -> tuple[str, int | None, str, str]:
    """What makes two feed URLs the same subscription: host, port, path, query (not scheme)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        port = None
    return ((parts.hostname or "").lower(), port, parts.path.rstrip("/") or "/", parts.query)


def add_sources(
    path: str | Path, candidates: Sequence[NewSource], variables: Mapping[str, str] | None = None
) -> AddResult:
    """Append the candidates not already in the file (by URL) to it, atomically, checked.

    Raises ConfigError if the file has problems already, if an id asked for is taken or malformed,
    or if the edited file would not check clean.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    existing: tuple[Source, ...] = ()
    if not _is_blank(text):
        checked = check_sources_text(text, str(path), variables)
        if checked.problems:
            listing = "; ".join(str(p) for p in checked.problems)
            raise ConfigError(f"sources file {path} has errors; fix them first: {listing}")
        existing = checked.sources
    taken_ids = {s.id for s in existing}
    known_urls = {url_key(s.url): s.id for s in existing}
    entries: list[NewSource] = []
    duplicates: list[str] = []
    invalid: list[str] = []
    for candidate in candidates:
        problem = _candidate_problem(candidate)
        if problem is not None:
            invalid.append(f"{candidate.url}: {problem}")
            continue
        key = url_key(candidate.url)
        if key in known_urls:
            duplicates.append(f"{candidate.url} (already there as {known_urls[key]!r})")
            continue
        source_id = _pick_id(candidate, taken_ids)
        taken_ids.add(source_id)
        known_urls[key] = source_id
        entries.append(dataclasses.replace(candidate, id=source_id))
    if not entries:
        return AddResult(str(path), (), tuple(duplicates), tuple(invalid))
    edited = append_entries(text, entries)
    written = _replace_checked(path, edited, variables, len(existing) + len(entries))
    new_ids = {e.id for e in entries}
    added = tuple(s for s in written if s.id in new_ids)
    log.info(
        "sources: %d added to %s, %d already there, %d invalid",
        len(added),
        path,
        len(duplicates),
        len(invalid),
    )
    return AddResult(str(path), added, tuple(duplicates), tuple(invalid))


def append_entries(text: str, entries: Sequence[NewSource]) -> str:
    """``text`` with ``entries`` (ids set) added at the end of its ``sources:`` list."""
    newline = "\r\n" if "\r\n" in text else "\n"
    if _is_blank(text):
        head = text if not text or text.endswith(("\n", "\r")) else text + newline
        return head + "sources:" + newline + _render(entries, "  ", "    ", False, newline)
    root = yaml.compose(text, Loader=yaml.SafeLoader)  # already checked: plain data, small
    if not isinstance(root, yaml.MappingNode):
        raise ConfigError("expected a mapping with a 'sources:' list")
    sequence = next(v for k, v in root.value if isinstance(k, yaml.ScalarNode) and k.value == "sources")
    lines = text.splitlines(keepends=True)
    if sequence.flow_style:
        if sequence.value or sequence.start_mark.line != sequence.end_mark.line:
            raise ConfigError(
                "the sources list is written in flow style ([...]); write it as a block list "
                "('- id: ...' lines) so entries can be added"
            )
        # "sources: []": drop the brackets, keep whatever follows them (a comment) on that line.
        row = sequence.start_mark.line
        line = lines[row]
        line = line[: sequence.start_mark.column].rstrip() + line[sequence.end_mark.column :]
        lines[row] = line if line.endswith(("\n", "\r")) else line + newline
        return (
            "".join(lines[: row + 1])
            + _render(entries, "  ", "    ", False, newline)
            + "".join(lines[row + 1 :])
        )
    items = sequence.value
    dash = " " * sequence.start_mark.column
    keys = " " * items[0].start_mark.column
    separated = len(items) > 1 and not lines[items[1].start_mark.line - 1].strip()
    end = _last_end(items[-1])
    row = end.line + 1 if end.column > 0 else end.line
    before = "".join(lines[:row])
    if before and not before.endswith(("\n", "\r")):
        before += newline
    return before + _render(entries, dash, keys, separated, newline) + "".join(lines[row:])


def _is_blank(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())


def _candidate_problem(candidate: NewSource) -> str | None:
    if VARIABLE.search(candidate.url):
        return "the URL holds a ${...} placeholder"
    if candidate.kind not in KINDS:
        return f"kind must be one of {', '.join(KINDS)}"
    return url_problem(candidate.url)


def _pick_id(candidate: NewSource, taken: set[str]) -> str:
    if candidate.id is not None:
        if not SOURCE_ID.fullmatch(candidate.id):
            raise ConfigError(f"id {candidate.id!r} must be a lowercase slug (a-z, 0-9, '-', '_')")
        if candidate.id in taken:
            raise ConfigError(f"id {candidate.id!r} is already used in the sources file; pick another")
        return candidate.id
    base = slugify(candidate.name or (urlsplit(candidate.url).hostname or ""))
    source_id, number = base, 1
    while source_id in taken:
        number += 1
        source_id = f"{base}-{number}"
    return source_id


def _last_end(node: yaml.Node) -> yaml.Mark:
    # Block collections end where the next token starts (past comments and blank lines); the last
    # scalar or flow collection inside ends exactly where its text does.
    while isinstance(node, yaml.CollectionNode) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node.end_mark


def _render(entries: Sequence[NewSource], dash: str, keys: str, separated: bool, newline: str) -> str:
    out: list[str] = []
    for entry in entries:
        if separated:
            out.append(newline)
        out.append(f"{dash}- id: {entry.id}{newline}")
        out.append(f"{keys}url: {_quoted(entry.url)}{newline}")
        out.append(f"{keys}name: {_quoted(entry.name)}{newline}")
        out.append(f"{keys}publisher: {_quoted(entry.publisher)}{newline}")
        out.append(f"{keys}kind: {entry.kind}{newline}")
        if entry.tags:
            out.append(f"{keys}tags: [{', '.join(_quoted(t) for t in entry.tags)}]{newline}")
    return "".join(out)


def _quoted(value: str) -> str:
    # YAML's own emitter, double-quoted on one line: every character escaped the way YAML reads it.
    dumped = yaml.safe_dump(value, default_style='"', allow_unicode=True, width=2**31)
    return str(dumped).rstrip("\n")


def _replace_checked(
    path: Path, text: str, variables: Mapping[str, str] | None, expected: int
) -> tuple[Source, ...]:
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        checked = check_sources(temp, variables)
        if checked.problems or len(checked.sources) != expected:
            listing = "; ".join(str(p) for p in checked.problems) or f"{len(checked.sources)} sources"
            raise ConfigError(
                f"the edited sources file would not check clean, left {path} as it was: {listing}"
            )
        if path.exists():
            shutil.copymode(path, temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return checked.sources
