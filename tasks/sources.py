"""Sources file: load and check the YAML catalog of feeds, reporting every error with its line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tasks.errors import ConfigError

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
KINDS = ("official", "news", "blog")
INTERVAL = re.compile(r"^(\d+)([smhd])$")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
KNOWN_KEYS = frozenset(
    {
        "id",
        "url",
        "name",
        "publisher",
        "kind",
        "country",
        "language",
        "tags",
        "enabled",
        "poll_interval",
    }
)
REQUIRED_KEYS = ("id", "url", "name", "publisher", "kind")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Source:
    """One feed to poll, as declared in the sources file."""

    id: str
    url: str
    name: str
    publisher: str
    kind: str
    country: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    enabled: bool = True
    poll_interval_seconds: int | None = None


@dataclass(frozen=True)
class SourceProblem:
    """One error in a sources file, with the 1-based line it was found on."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class SourcesCheck:
    """The outcome of checking a sources file: the valid sources and every problem found."""

    path: str
    sources: tuple[Source, ...]
    problems: tuple[SourceProblem, ...] = field(default=())


def parse_interval(text: str) -> int:
    """Turn ``15m`` / ``1h`` / ``30s`` / ``1d`` into seconds."""
    match = INTERVAL.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"poll_interval {text!r} is not like 30s, 15m, 1h or 1d")
    return int(match.group(1)) * _SECONDS[match.group(2)]


def expand_variables(text: str, variables: Mapping[str, str]) -> str:
    """Replace ``${NAME}`` with its value from ``variables``; raise KeyError naming a missing one."""

    def replace(match: re.Match[str]) -> str:
        return variables[match.group(1)]

    return VARIABLE.sub(replace, text)


def check_sources(path: str | Path, variables: Mapping[str, str] | None = None) -> SourcesCheck:
    """Read a sources file and return its valid sources plus every problem, each with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sources file {path}: {exc}") from exc
    try:
        # libyaml's C loader when present: a catalog of a thousand sources loads in milliseconds.
        root = yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        last_line = max(1, len(text.splitlines()))
        if line > last_line:
            # The parser ran off the end (say, an unclosed quote): point where the construct began.
            context = getattr(exc, "context_mark", None)
            line = context.line + 1 if context is not None else last_line
        problem = SourceProblem(line, f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return SourcesCheck(str(path), (), (problem,))
    problems: list[SourceProblem] = []
    entries = _source_nodes(root, problems)
    sources: list[Source] = []
    seen_ids: dict[str, int] = {}
    for node in entries:
        source = _read_source(node, variables or {}, problems)
        if source is None:
            continue
        line = node.start_mark.line + 1
        if source.id in seen_ids:
            problems.append(
                SourceProblem(line, f"duplicate id {source.id!r} (first on line {seen_ids[source.id]})")
            )
            continue
        seen_ids[source.id] = line
        sources.append(source)
    return SourcesCheck(str(path), tuple(sources), tuple(problems))


def load_sources(path: str | Path, variables: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """Load a sources file, raising ConfigError listing every problem if any."""
    checked = check_sources(path, variables)
    if checked.problems:
        listing = "; ".join(str(p) for p in checked.problems)
        raise ConfigError(f"sources file {checked.path} has {len(checked.problems)} error(s): {listing}")
    return checked.sources


def _source_nodes(root: yaml.Node | None, problems: list[SourceProblem]) -> list[yaml.MappingNode]:
    if root is None:
        problems.append(SourceProblem(1, "file is empty; expected a mapping with a 'sources:' list"))
        return []
    if not isinstance(root, yaml.MappingNode):
        problems.append(SourceProblem(root.start_mark.line + 1, "expected a mapping with a 'sources:' list"))
        return []
    for key, value in root.value:
        if key.value != "sources":
            continue
        if not isinstance(value, yaml.SequenceNode):
            problems.append(SourceProblem(value.start_mark.line + 1, "'sources' must be a list"))
            return []
        nodes: list[yaml.MappingNode] = []
        for item in value.value:
            if isinstance(item, yaml.MappingNode):
                nodes.append(item)
            else:
                problems.append(SourceProblem(item.start_mark.line + 1, "each source must be a mapping"))
        return nodes
    problems.append(SourceProblem(root.start_mark.line + 1, "missing the top-level 'sources:' list"))
    return []


def _read_source(
    node: yaml.MappingNode, variables: Mapping[str, str], problems: list[SourceProblem]
) -> Source | None:
    start = len(problems)
    values: dict[str, object] = {}
    lines: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = str(key_node.value)
        line = key_node.start_mark.line + 1
        if key not in KNOWN_KEYS:
            problems.append(SourceProblem(line, f"unknown key {key!r}"))
            continue
        # The safe loader's rules, applied to the node already composed (no re-serializing).
        values[key] = yaml.constructor.SafeConstructor().construct_document(value_node)
        lines[key] = line
    entry_line = node.start_mark.line + 1
    missing = [key for key in REQUIRED_KEYS if values.get(key) in (None, "")]
    for key in missing:
        problems.append(SourceProblem(entry_line, f"missing required key {key!r}"))
    if missing:
        return None

    def text(key: str) -> str | None:
        value = values.get(key)
        if value is None:
            return None
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            problems.append(SourceProblem(lines[key], f"{key!r} must be a string"))
            return None
        return str(value)

    source_id = text("id") or ""
    label = f"source {source_id!r}: "
    if source_id and not SOURCE_ID.match(source_id):
        problems.append(
            SourceProblem(lines["id"], f"{label}id must be a lowercase slug (a-z, 0-9, '-', '_')")
        )
    url = _check_url(text("url") or "", variables, lines["url"], label, problems)
    kind = text("kind") or ""
    if kind not in KINDS:
        problems.append(SourceProblem(lines["kind"], f"{label}kind must be one of {', '.join(KINDS)}"))
    tags = values.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.append(
            SourceProblem(lines.get("tags", entry_line), f"{label}tags must be a list of strings")
        )
        tags = []
    enabled = values.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(SourceProblem(lines["enabled"], f"{label}enabled must be true or false"))
    interval: int | None = None
    raw_interval = text("poll_interval")
    if raw_interval is not None:
        try:
            interval = parse_interval(raw_interval)
        except ValueError as exc:
            problems.append(SourceProblem(lines["poll_interval"], f"{label}{exc}"))
    if len(problems) > start:
        return None
    return Source(
        id=source_id,
        url=url,
        name=text("name") or "",
        publisher=text("publisher") or "",
        kind=kind,
        country=text("country"),
        language=text("language"),
        tags=tuple(str(t) for t in tags),
        enabled=bool(enabled),
        poll_interval_seconds=interval,
    )


def _check_url(
    raw: str, variables: Mapping[str, str], line: int, label: str, problems: list[SourceProblem]
) -> str:
    try:
        url = expand_variables(raw, variables)
    except KeyError as exc:
        problems.append(SourceProblem(line, f"{label}url uses ${{{exc.args[0]}}}, which is not set"))
        return raw
    if not re.match(r"^https?://[^/\s]+", url, re.IGNORECASE):
        problems.append(SourceProblem(line, f"{label}url must be an absolute http(s) URL, got {url!r}"))
    return url
