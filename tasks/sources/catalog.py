"""Sources file: load and check the YAML catalog of feeds, reporting every error with its line.

The file is read by a YAML parser that accepts plain data only: tags (``!!python/object``,
``!foo``), anchors and aliases are refused, and so is nesting deeper than any catalog needs, so
a hostile file can neither run code nor expand exponentially. Every problem carries its line.

``${FEEDLAKE_VAR_NAME}`` placeholders in URLs are filled from environment variables of that
prefix only (never the rest of the environment); each substituted value is kept on the Source so
that ``Source.display_url`` and ``redact`` can hide it wherever a URL is shown or stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import quote

import yaml

from feedlake.tasks.errors import ConfigError, FetchTerminalError
from feedlake.tasks.fetch.url_guard import parse_fetch_url

_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
KINDS = ("official", "news", "blog")
INTERVAL = re.compile(r"([0-9]+)([smhd])")
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
VARIABLE_PREFIX = "FEEDLAKE_VAR_"
# A catalog is a mapping > list > mapping > tag list: four levels. Deeper nesting is refused
# before composing, so no recursion depth or node count is ever at an attacker's choice.
MAX_DEPTH = 8
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
        "full_text",
    }
)
# full_text: auto fetches an item's page when the feed's text is a teaser (tasks/full_text/teaser.py),
# always for every new item, never not at all.
FULL_TEXT_MODES = ("auto", "always", "never")
REQUIRED_KEYS = ("id", "url", "name", "publisher", "kind")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A poll interval between one second and thirty days: longer is a typo or a disabled feed (say
# ``enabled: false``), and the scheduler's timedelta overflows on values far beyond it.
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 30 * 86400
_INTERVAL_DIGITS = 8
_SHOWN_CHARS = 80


@dataclass(frozen=True, repr=False)
class Source:
    """One feed to poll, as declared in the sources file.

    ``url`` is the URL to fetch, placeholders filled in; show ``display_url`` instead, and pass
    any message that may quote the URL through ``redact``.
    """

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
    full_text: str = "auto"
    # (placeholder name, value) of every ${FEEDLAKE_VAR_*} substituted into ``url``.
    substitutions: tuple[tuple[str, str], ...] = ()

    @property
    def display_url(self) -> str:
        """The URL with every substituted value shown as its ``${NAME}`` placeholder."""
        return self.redact(self.url)

    def redact(self, text: str) -> str:
        """``text`` with every value substituted into this source's URL replaced by ``${NAME}``."""
        return redact_values(text, self.substitutions)

    def __repr__(self) -> str:
        shown = []
        for item in fields(self):
            if item.name == "substitutions":
                continue
            value = self.display_url if item.name == "url" else getattr(self, item.name)
            shown.append(f"{item.name}={value!r}")
        return f"Source({', '.join(shown)})"


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
    """Turn ``15m`` / ``1h`` / ``30s`` / ``1d`` into seconds, between 1 second and 30 days."""
    match = INTERVAL.fullmatch(text.strip())
    if not match:
        raise ValueError(f"poll_interval {_shown(text)} is not like 30s, 15m, 1h or 1d")
    digits, unit = match.groups()
    # Bounded before int(): the check never builds a huge number from a long digit string.
    seconds = int(digits) * _SECONDS[unit] if len(digits.lstrip("0")) <= _INTERVAL_DIGITS else None
    if seconds is None or not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise ValueError(f"poll_interval {_shown(text)} is out of range: it must be between 1s and 30d")
    return seconds


def placeholder_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables placeholders may read: only those named ``FEEDLAKE_VAR_*``."""
    return {k: v for k, v in environ.items() if k.startswith(VARIABLE_PREFIX)}


def expand_variables(text: str, variables: Mapping[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """Fill ``${FEEDLAKE_VAR_NAME}`` placeholders; return the text and the (name, value) pairs used.

    Raises KeyError naming a placeholder outside the prefix or not set. Only ``FEEDLAKE_VAR_*``
    entries of ``variables`` are read, so passing the whole environment is safe.
    """
    used: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not name.startswith(VARIABLE_PREFIX) or name not in variables:
            raise KeyError(name)
        used[name] = variables[name]
        return variables[name]

    return VARIABLE.sub(replace, text), tuple(used.items())


def redact_values(text: str, substitutions: Iterable[tuple[str, str]]) -> str:
    """Replace each substituted value in ``text`` (raw or percent-encoded) by ``${NAME}``."""
    pairs: list[tuple[str, str]] = []
    for name, value in substitutions:
        if not value:
            continue
        # An HTTP client or server may quote the URL back percent-encoded: hide those forms too.
        for form in {value, quote(value, safe=""), quote(value, safe="/:")}:
            pairs.append((form, f"${{{name}}}"))
    # Longest first, so a value that contains another is replaced whole.
    for form, placeholder in sorted(pairs, key=lambda pair: len(pair[0]), reverse=True):
        text = text.replace(form, placeholder)
    return text


def redact(text: str, sources: Iterable[Source]) -> str:
    """``text`` with every placeholder value of every source replaced by its ``${NAME}``."""
    return redact_values(text, (pair for source in sources for pair in source.substitutions))


def url_problem(url: str) -> str | None:
    """Why the fetch would refuse ``url`` (scheme, host, port, IDNA), or None if it accepts it."""
    try:
        parse_fetch_url(url)
    except FetchTerminalError as exc:
        return exc.reason
    return None


def check_sources(path: str | Path, variables: Mapping[str, str] | None = None) -> SourcesCheck:
    """Read a sources file and return its valid sources plus every problem, each with its line.

    ``variables`` is usually ``os.environ``: only its ``FEEDLAKE_VAR_*`` entries are read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read sources file {path}: {exc}") from exc
    return check_sources_text(text, str(path), variables)


def check_sources_text(
    text: str, path: str = "<sources>", variables: Mapping[str, str] | None = None
) -> SourcesCheck:
    """Check the text of a sources file; ``path`` only names it in the result."""
    try:
        refused = _refused_constructs(text)
        # libyaml's C loader when present: a catalog of a thousand sources loads in milliseconds.
        root = None if refused else yaml.compose(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        return SourcesCheck(path, (), (_syntax_problem(exc, text),))
    if refused:
        return SourcesCheck(path, (), tuple(refused))
    allowed = placeholder_variables(variables or {})
    problems: list[SourceProblem] = []
    entries = _source_nodes(root, problems)
    sources: list[Source] = []
    seen_ids: dict[str, int] = {}
    for node in entries:
        source = _read_source(node, allowed, problems)
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
    return SourcesCheck(path, tuple(sources), tuple(problems))


def load_sources(path: str | Path, variables: Mapping[str, str] | None = None) -> tuple[Source, ...]:
    """Load a sources file, raising ConfigError listing every problem if any."""
    checked = check_sources(path, variables)
    if checked.problems:
        listing = "; ".join(str(p) for p in checked.problems)
        raise ConfigError(f"sources file {checked.path} has {len(checked.problems)} error(s): {listing}")
    return checked.sources


def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS] + "...")


def _syntax_problem(exc: yaml.YAMLError, text: str) -> SourceProblem:
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else 1
    last_line = max(1, len(text.splitlines()))
    if line > last_line:
        # The parser ran off the end (say, an unclosed quote): point where the construct began.
        context = getattr(exc, "context_mark", None)
        line = context.line + 1 if context is not None else last_line
    return SourceProblem(line, f"not valid YAML: {getattr(exc, 'problem', None) or exc}")


def _refused_constructs(text: str) -> list[SourceProblem]:
    """Tags, anchors, aliases and deep nesting, found from the event stream before composing."""
    problems: list[SourceProblem] = []
    depth = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark is not None else 1
        if isinstance(event, yaml.AliasEvent):
            problems.append(SourceProblem(line, f"YAML aliases (*{event.anchor}) are not allowed"))
            continue
        if not isinstance(event, yaml.NodeEvent):
            if isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            continue
        if event.anchor is not None:
            problems.append(SourceProblem(line, f"YAML anchors (&{event.anchor}) are not allowed"))
        tag = getattr(event, "tag", None)
        if tag is not None:
            problems.append(SourceProblem(line, f"YAML tags ({_shown(tag)}) are not allowed"))
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                problems.append(SourceProblem(line, f"nested deeper than {MAX_DEPTH} levels"))
                break
    return problems


def _source_nodes(root: yaml.Node | None, problems: list[SourceProblem]) -> list[yaml.MappingNode]:
    if root is None:
        problems.append(SourceProblem(1, "file is empty; expected a mapping with a 'sources:' list"))
        return []
    if not isinstance(root, yaml.MappingNode):
        problems.append(SourceProblem(root.start_mark.line + 1, "expected a mapping with a 'sources:' list"))
        return []
    for key, value in root.value:
        if not isinstance(key, yaml.ScalarNode) or key.value != "sources":
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


def _construct(node: yaml.Node) -> object:
    # The safe loader's rules, applied to the node already composed (no re-serializing). With
    # tags refused, what can still fail is an implicit type with a bad value (2024-13-45).
    try:
        return yaml.constructor.SafeConstructor().construct_document(node)
    except (yaml.YAMLError, ValueError, OverflowError) as exc:
        raise _UnreadableValue(str(exc)) from exc


class _UnreadableValue(Exception):
    pass


def _read_source(
    node: yaml.MappingNode, variables: Mapping[str, str], problems: list[SourceProblem]
) -> Source | None:
    start = len(problems)
    values: dict[str, object] = {}
    lines: dict[str, int] = {}
    unreadable: set[str] = set()
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            problems.append(SourceProblem(line, "keys must be plain words like 'url'"))
            continue
        key = str(key_node.value)
        if key not in KNOWN_KEYS:
            problems.append(SourceProblem(line, f"unknown key {_shown(key)}"))
            continue
        if key in values:
            problems.append(SourceProblem(line, f"key {key!r} appears twice (first on line {lines[key]})"))
            continue
        try:
            values[key] = _construct(value_node)
        except _UnreadableValue as exc:
            problems.append(SourceProblem(value_node.start_mark.line + 1, f"{key!r}: {exc}"))
            unreadable.add(key)
            continue
        lines[key] = line
    entry_line = node.start_mark.line + 1
    missing = [key for key in REQUIRED_KEYS if key not in unreadable and values.get(key) in (None, "")]
    for key in missing:
        problems.append(SourceProblem(entry_line, f"missing required key {key!r}"))
    if missing or len(problems) > start:
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
    label = f"source {_shown(source_id)}: "
    if source_id and not SOURCE_ID.fullmatch(source_id):
        problems.append(
            SourceProblem(lines["id"], f"{label}id must be a lowercase slug (a-z, 0-9, '-', '_')")
        )
    url, substitutions = _check_url(text("url") or "", variables, lines["url"], label, problems)
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
    full_text = text("full_text") or "auto"
    if full_text not in FULL_TEXT_MODES:
        problems.append(
            SourceProblem(lines["full_text"], f"{label}full_text must be one of {', '.join(FULL_TEXT_MODES)}")
        )
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
        full_text=full_text,
        substitutions=substitutions,
    )


def _check_url(
    raw: str, variables: Mapping[str, str], line: int, label: str, problems: list[SourceProblem]
) -> tuple[str, tuple[tuple[str, str], ...]]:
    try:
        url, substitutions = expand_variables(raw, variables)
    except KeyError as exc:
        name = str(exc.args[0])
        if name.startswith(VARIABLE_PREFIX):
            reason = f"url uses ${{{name}}}, which is not set"
        else:
            reason = (
                f"url uses ${{{name}}}: placeholders are read only from {VARIABLE_PREFIX}* "
                f"variables (write ${{{VARIABLE_PREFIX}{name}}} and set that variable)"
            )
        problems.append(SourceProblem(line, f"{label}{reason}"))
        return raw, ()
    problem = url_problem(url)
    if problem is not None:
        # The message quotes the URL: never with a placeholder's value in it.
        problems.append(SourceProblem(line, label + redact_values(problem, substitutions)))
    return url, substitutions
