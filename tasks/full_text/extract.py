"""Article extraction from a page: trafilatura, guided by the feed item's title and teaser.

Input: an ``ExtractionJob`` (the page's raw bytes, its URL after redirects, its Content-Type, and
what the feed said about the item: title and teaser). Output: a ``PageArticle`` with the article's
body as plain text (paragraphs separated by exactly one blank line) and as sanitized HTML, plus the
page's metadata (title, authors, UTC publication time, canonical URL, language, lead image).

How the body is chosen:

1. The page is cut to ``MAX_PAGE_BYTES``, decoded (BOM, then the Content-Type charset, then a
   ``<meta>`` charset, then trafilatura's own detection), its nesting bounded
   (``flatten_deep_markup``) and parsed once; elements past ``MAX_ELEMENTS`` are dropped, since
   trafilatura's time grows with them (a hostile 5 MB page: about 4 s instead of 25 s).
2. trafilatura extracts the body (comments off). The feed knows what the article says, so the body
   must fit the item's teaser: hold at least ``ON_TOPIC_COVERAGE`` of its content words
   (``teaser_coverage``) and, where it repeats the teaser word for word, go on for at least
   ``CONTINUATION_WORDS`` after it. A body that does not (or no body at all) sends the page to
   trafilatura's recall mode and its baseline extractor (which also reads schema.org
   ``articleBody``); the fitting candidate that covers the teaser best wins, else the first one on
   the teaser's topic. A page none of whose candidates is on the topic is ``not_an_article``: it is
   not the item's article (a home page, a login wall). The title takes no part in the choice:
   measured on the bundled pages, the share of a headline's words in the true body runs from 0.3
   to 1.0, too loose to tell bodies apart.
3. The chosen body is flattened into blocks; a leading heading that repeats the title and a leading
   byline ("By ..., Public Affairs / Published ...") are dropped, since the title and authors are
   fields of their own. Text and HTML are rendered from the same blocks: HTML through
   ``sanitize_html``, text through ``html_to_text`` (``feedlake.tasks.normalize.html_text``).

Written here rather than taken from a library: the teaser-guided choice between extractors and the
title/byline trimming (trafilatura knows nothing of the feed), the charset precedence (trafilatura
ignores the HTTP header), and the block flattening that gives text and HTML the same paragraphs.

``extract_articles`` runs many jobs, in order, inline or in a spawn-context process pool (never
fork: a Rust library loaded in the parent panics in forked children). A job that raises becomes
``not_an_article``; it never fails the batch.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from copy import deepcopy
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import urljoin, urlsplit

import trafilatura
from lxml import etree
from trafilatura.deduplication import LRUCache
from trafilatura.htmlprocessing import convert_to_html
from trafilatura.metadata import extract_metadata
from trafilatura.settings import Document
from trafilatura.utils import decode_file, load_html

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.normalize.html_text import flatten_deep_markup, html_to_text, sanitize_html
from feedlake.tasks.worker_process import KeptPools, spawned_pool

log = logging.getLogger(__name__)

# The process's extraction pools, by worker count (see extraction_pool).
_POOLS = KeptPools(
    # One process means one thread, so that extraction still never runs on the caller's event loop.
    lambda n: (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="feedlake-extract")
        if n == 1
        else spawned_pool(n)
    )
)

OK = "ok"
NOT_AN_ARTICLE = "not_an_article"

# Real article pages are well under 1 MB; anything past this is cut before parsing, so a hostile
# or broken page costs bounded memory.
MAX_PAGE_BYTES = 5_000_000
# trafilatura's time grows with the number of elements (about 20 microseconds each, several passes);
# the bundled real pages have 77 to 1,500. Elements past this many, in document order, are dropped.
MAX_ELEMENTS = 25_000
# A teaser guides the choice of body when it has at least this many content words (see
# ``teaser_coverage``).
MIN_TEASER_WORDS = 4
# A body is about the teaser when it holds at least this share of the teaser's content words. On the
# bundled pages, with the page's og:description as teaser, the body trafilatura extracts holds 0.5
# to 1.0 of its own page's teaser (0.5 where the teaser is a standfirst the body leaves out), and
# 4.5% of the 538 pairings of a reference body with another page's teaser reach 0.4...
ON_TOPIC_COVERAGE = 0.4
# ...and, where it repeats the teaser word for word, goes on for this many words after it: a body
# that is the teaser plus a caption is the page's summary block, not its article.
CONTINUATION_WORDS = 100
_OPENING_WORDS = 8
# The least an article body has: this many characters, and one line of this many words.
MIN_ARTICLE_CHARS = 100
MIN_PROSE_WORDS = 12

DEFAULT_METHOD = "trafilatura"
RECALL_METHOD = "trafilatura-recall"
BASELINE_METHOD = "baseline"
NO_METHOD = "none"
ERROR_METHOD = "error"

_WORDS = re.compile(r"\w+")
_SPACE_RUNS = re.compile(r"\s+")
_CHARSET_PARAM = re.compile(r"charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
_META_CHARSET = re.compile(rb"<meta\b[^>]*?charset\s*=\s*[\"']?\s*([\w.:-]+)", re.IGNORECASE)
# The HTML standard looks for a <meta> charset in the first 1024 bytes; pages in the wild put it a
# little later (after long comments or scripts), so look a bit further.
_PRESCAN_BYTES = 4096
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))
# Labels browsers decode with a wider encoding than the label says (the Encoding Standard).
_WIDER_CODEC = {
    "ascii": "cp1252",
    "iso8859-1": "cp1252",
    "iso8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "euc_kr": "cp949",
    "shift_jis": "cp932",
}
_BYLINE = re.compile(r"^(?:by|von|par|por|door|di|av)\s+(\S[^,/|]*)", re.IGNORECASE)
_BYLINE_MAX_CHARS = 200
_SENTENCE_END = ".!?\"'”’»"

# What a body is flattened into: blocks, the containers they sit in, and what is never body text.
_BLOCK_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "blockquote", "pre", "table", "hr"}
)
_CONTAINER_TAGS = frozenset(
    {"html", "body", "div", "section", "article", "main", "header", "footer", "center", "details", "summary"}
)
_DROPPED_TAGS = frozenset(
    {
        "figure",
        "figcaption",
        "img",
        "picture",
        "source",
        "video",
        "audio",
        "iframe",
        "svg",
        "nav",
        "aside",
        "form",
        "button",
        "input",
        "select",
        "textarea",
        "script",
        "style",
        "noscript",
        "template",
    }
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})


@dataclass(frozen=True)
class PageArticle:
    """The article extracted from a page, with the page's metadata."""

    status: str  # "ok" | "not_an_article" (no article body could be found)
    text: str | None  # plain text; paragraphs separated by exactly one blank line
    html: str | None  # the same body as sanitized HTML
    title: str | None
    authors: tuple[str, ...]
    published_at: datetime | None  # UTC-aware, from the page's metadata (trafilatura/htmldate)
    canonical_url: str | None
    language: str | None
    image: str | None  # lead image URL (og:image etc.)
    method: str  # which extraction won: "trafilatura", "trafilatura-recall", "baseline" (or "none")
    teaser_coverage: float | None  # share of the teaser's words found in the chosen body


@dataclass(frozen=True)
class ExtractionJob:
    """One page to extract, with what the feed said about its item."""

    page: bytes  # the raw response body
    url: str  # the page URL after redirects
    content_type: str | None = None  # the response Content-Type (charset hint)
    title: str | None = None  # the feed item's title
    teaser: str | None = None  # the feed item's own text (plain)


@dataclass(frozen=True)
class _Body:
    """One candidate body, rendered."""

    method: str
    text: str
    html: str
    byline: str | None  # the author named in a dropped leading byline


_FAILED = PageArticle(NOT_AN_ARTICLE, None, None, None, (), None, None, None, None, ERROR_METHOD, None)


def extract_article(job: ExtractionJob) -> PageArticle:
    """The article body and metadata of one page, guided by the feed item's title and teaser."""
    markup = flatten_deep_markup(decode_page(job.page[:MAX_PAGE_BYTES], job.content_type)).markup
    tree = load_html(markup) if markup.strip() else None
    if tree is None:
        return replace(_FAILED, method=NO_METHOD)
    _truncate(tree, MAX_ELEMENTS)
    metadata = _metadata(tree, job.url)
    titles = [title for title in (job.title, metadata.title) if title]
    body = _choose_body(tree, job, titles)
    authors = _authors(metadata.author)
    if not authors and body is not None and body.byline:
        authors = (body.byline,)
    return PageArticle(
        status=OK if body is not None else NOT_AN_ARTICLE,
        text=body.text if body is not None else None,
        html=body.html if body is not None else None,
        title=_clean(metadata.title),
        authors=authors,
        published_at=_published_at(metadata.date),
        canonical_url=_canonical_url(tree, job.url),
        language=_language(tree),
        image=_absolute_url(job.url, metadata.image),
        method=body.method if body is not None else NO_METHOD,
        teaser_coverage=teaser_coverage(job.teaser, body.text) if body is not None else None,
    )


def extract_articles(jobs: Sequence[ExtractionJob], processes: int) -> list[PageArticle]:
    """Extract every job's article, in order; ``processes > 1`` uses the shared process pool."""
    if processes < 1:
        raise ConfigError(f"full text extraction needs at least 1 process, not {processes}: set 1 or more")
    if processes == 1 or len(jobs) < 2:
        articles = [_extract_or_fail(job) for job in jobs]
    else:
        pool = extraction_pool(processes)
        futures = [pool.submit(_extract_or_fail, job) for job in jobs]
        articles = [article_or_failed(future, job) for future, job in zip(futures, jobs, strict=True)]
    methods = Counter(article.method for article in articles)
    log.info(
        "full text: extracted %d pages (%d ok, %d not an article) on %d process(es); methods %s",
        len(articles),
        sum(article.status == OK for article in articles),
        sum(article.status != OK for article in articles),
        processes,
        dict(sorted(methods.items())),
    )
    return articles


def extraction_pool(processes: int) -> Executor:
    """The process's extraction pool for ``processes`` workers, started on first use and kept.

    Spawned, never forked (a Rust library loaded in the parent panics in forked children). Kept
    for the life of the process: ``feedlake serve`` and a library user's loop pay the workers'
    start (about a second: Python and trafilatura's import) once, not once per run, and a
    one-shot poll starts it while its feeds are still on the wire. One process means one thread,
    so that extraction still never runs on the caller's event loop. A pool whose worker died is
    replaced on the next call.
    """
    return _POOLS.get(processes)


def shutdown_extraction_pools() -> None:
    """Stop the process's extraction pools and wait for their workers (a later job starts one again)."""
    _POOLS.shutdown()


def extract_in_pool(job: ExtractionJob, processes: int) -> Future[PageArticle]:
    """Start extracting one job in the shared pool; the future's result is never an exception's."""
    try:
        return extraction_pool(processes).submit(_extract_or_fail, job)
    except BrokenExecutor:
        # A worker died since the last job: one fresh pool, then this job goes to it.
        _POOLS.drop(processes)
        return extraction_pool(processes).submit(_extract_or_fail, job)


def teaser_coverage(teaser: str | None, text: str | None) -> float | None:
    """Share of the teaser's content words found in ``text`` (case-folded), or None without any."""
    words = _content_words(teaser or "")
    if not words:
        return None
    present = set(_words(text or ""))
    found = sum(word in present for word in words)
    # A teaser cut to a length ends in a fragment ("... Smart Power seri"): a prefix of a body word.
    last = words[-1]
    if last not in present and any(word.startswith(last) for word in present):
        found += 1
    return found / len(words)


def decode_page(page: bytes, content_type: str | None = None) -> str:
    """The page as text: its BOM, else the Content-Type charset, else a <meta> charset, else detection."""
    for bom, encoding in _BOMS:
        if page.startswith(bom):
            return page[len(bom) :].decode(encoding, "replace")
    meta = _META_CHARSET.search(page[:_PRESCAN_BYTES])
    for label in (_header_charset(content_type), meta.group(1).decode("ascii") if meta else None):
        codec = _codec(label)
        if codec is not None:
            return page.decode(codec, "replace")
    # trafilatura's detection: valid UTF-8 first, then a statistical guess.
    return decode_file(page)


def _extract_or_fail(job: ExtractionJob) -> PageArticle:
    try:
        return extract_article(job)
    except Exception as exc:  # noqa: BLE001 - one bad page must not fail the batch
        log.warning("full text: extraction failed for %s: %s: %s", job.url, type(exc).__name__, exc)
        return _FAILED


def article_or_failed(future: Future[PageArticle], job: ExtractionJob) -> PageArticle:
    """A finished extraction's article, or ``not_an_article`` when its worker failed."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - a dead worker takes its jobs with it, not the batch
        log.warning("full text: extraction worker failed for %s: %s: %s", job.url, type(exc).__name__, exc)
        return _FAILED


def _truncate(tree: Any, limit: int) -> None:
    """Drop every element after the first ``limit`` (in document order), keeping the tree well-formed."""
    element = next(islice(tree.iter(), limit, None), None)
    if element is None:
        return
    log.info("full text: page cut to its first %d elements", limit)
    node = element
    while node is not tree:
        parent = node.getparent()
        for sibling in list(node.itersiblings()):
            parent.remove(sibling)
        node = parent
    element.getparent().remove(element)


def _choose_body(tree: Any, job: ExtractionJob, titles: list[str]) -> _Body | None:
    teaser = job.teaser if len(_content_words(job.teaser or "")) >= MIN_TEASER_WORDS else None
    default = _article_or_none(_render(_trafilatura_body(tree, job.url), DEFAULT_METHOD, titles))
    if default is not None and _fits_teaser(default.text, teaser):
        return default
    recall = _article_or_none(
        _render(_trafilatura_body(tree, job.url, favor_recall=True), RECALL_METHOD, titles)
    )
    baseline = _article_or_none(_render(_baseline_body(tree), BASELINE_METHOD, titles))
    candidates = [body for body in (default, recall, baseline) if body is not None]
    fitting = [body for body in candidates if _fits_teaser(body.text, teaser)]
    if fitting:
        # The first of the best: recall mode before the baseline when they cover the teaser alike.
        return max(fitting, key=lambda body: teaser_coverage(teaser, body.text) or 0.0)
    # Nothing goes on after the teaser: the body that repeats it is still the page's best. A page
    # that none of the candidates is about is not the item's article (a home page, a login wall).
    return next((body for body in candidates if _on_topic(body.text, teaser)), None)


def _fits_teaser(text: str, teaser: str | None) -> bool:
    """Whether a body is about the teaser and, where it repeats the teaser, goes on after it."""
    if not _on_topic(text, teaser):
        return False
    words, body = _words(teaser or ""), _words(text)
    opening = words[:_OPENING_WORDS]
    for start in range(len(body) - len(opening) + 1):
        if opening and body[start] == opening[0] and body[start : start + len(opening)] == opening:
            return len(body) - (start + len(words)) >= CONTINUATION_WORDS
    # The teaser is no passage of the body (a summary, or a lead the extractor left out).
    return True


def _on_topic(text: str, teaser: str | None) -> bool:
    coverage = teaser_coverage(teaser, text)
    return coverage is None or coverage >= ON_TOPIC_COVERAGE


def _trafilatura_body(tree: Any, url: str, *, favor_recall: bool = False) -> Any:
    document = trafilatura.bare_extraction(
        tree,
        url=url,
        favor_recall=favor_recall,
        include_comments=False,
        include_tables=True,
        include_images=False,
        include_links=False,
        # Repeated boilerplate (share bars, "Advertisement") is dropped after two occurrences; a
        # fresh cache per page keeps one page's text from making another page's look repeated.
        deduplicate=LRUCache(maxsize=1024),
        with_metadata=False,
    )
    return document.body if isinstance(document, Document) else None


def _baseline_body(tree: Any) -> Any:
    body, _, length = trafilatura.baseline(tree)
    # The baseline's last resort is the whole page's text joined by newlines in one <p>; its real
    # finds (schema.org articleBody, <article>, paragraphs) are trimmed to single lines.
    if not length or any("\n" in (p.text or "") for p in body.iter("p")):
        return None
    return body


def _render(body: Any, method: str, titles: list[str]) -> _Body | None:
    """The body's blocks (minus a repeated title and a byline) as sanitized HTML and plain text."""
    if body is None:
        return None
    root = convert_to_html(_lines_as_breaks(deepcopy(body)))
    blocks = _flatten(root)
    blocks, byline = _trim_lead(blocks, titles)
    if not blocks:
        return None
    for block in blocks:
        # Media and scripts inside a paragraph of a raw-HTML fallback: the text has none either.
        etree.strip_elements(block, *_DROPPED_TAGS, with_tail=False)
        _collapse_whitespace(block)
        block.text = (block.text or "").lstrip() or None
    markup = "".join(
        etree.tostring(block, method="html", encoding="unicode", with_tail=False) for block in blocks
    )
    html = sanitize_html(markup).strip()
    text = html_to_text(html)
    if not text:
        return None
    return _Body(method, text, html, byline)


def _lines_as_breaks(body: Any) -> Any:
    """trafilatura's last resort is the page's text nodes in one <p>, a node a line: keep the lines."""
    if len(body) == 1 and body[0].tag == "p" and not len(body[0]) and "\n" in (body[0].text or ""):
        paragraph = body[0]
        lines = [line for line in (paragraph.text or "").split("\n") if line.strip()]
        paragraph.text = lines[0] if lines else None
        for line in lines[1:]:
            etree.SubElement(paragraph, "br").tail = line
    return body


def _flatten(root: Any) -> list[Any]:
    """The body's blocks in order; inline content between blocks becomes a <p> of its own."""
    collector = _BlockCollector()
    _collect(root, collector)
    collector.close()
    return collector.blocks


def _collect(container: Any, collector: _BlockCollector) -> None:
    collector.text(container.text)
    for child in container:
        tag = child.tag.lower() if isinstance(child.tag, str) else None  # None: a comment
        if tag in _BLOCK_TAGS:
            collector.block(child)
        elif tag in _CONTAINER_TAGS:
            collector.close()
            _collect(child, collector)
            collector.close()
        elif tag is not None and tag not in _DROPPED_TAGS:
            collector.inline(child)
        collector.text(child.tail)


class _BlockCollector:
    """Blocks in document order, with inline content between blocks gathered into a new <p>."""

    def __init__(self) -> None:
        self.blocks: list[Any] = []
        self._open: Any = None  # the implicit paragraph being filled

    def block(self, element: Any) -> None:
        self.close()
        if _has_text(element):
            self.blocks.append(element)

    def inline(self, element: Any) -> None:
        inline = deepcopy(element)
        inline.tail = None
        self._paragraph().append(inline)

    def text(self, text: str | None) -> None:
        if not text:
            return
        paragraph = self._paragraph()
        if len(paragraph):
            paragraph[-1].tail = (paragraph[-1].tail or "") + text
        else:
            paragraph.text = (paragraph.text or "") + text

    def close(self) -> None:
        if self._open is not None and _has_text(self._open):
            self.blocks.append(self._open)
        self._open = None

    def _paragraph(self) -> Any:
        if self._open is None:
            self._open = etree.Element("p")
        return self._open


def _has_text(element: Any) -> bool:
    return any(piece.strip() for piece in element.itertext())


def _trim_lead(blocks: list[Any], titles: list[str]) -> tuple[list[Any], str | None]:
    """Drop leading blocks that repeat the title or are a byline; return the byline's author."""
    byline = None
    start = 0
    while start < len(blocks):
        text = " ".join("".join(blocks[start].itertext()).split())
        if _repeats_title(blocks[start].tag, text, titles):
            start += 1
            continue
        match = _BYLINE.match(text)
        if match and len(text) <= _BYLINE_MAX_CHARS and text[-1] not in _SENTENCE_END:
            byline = byline or match.group(1).strip() or None
            start += 1
            continue
        break
    return blocks[start:], byline


def _repeats_title(tag: Any, text: str, titles: list[str]) -> bool:
    """A heading that holds most of the title and little else, or a paragraph that is the title."""
    if tag not in _HEADINGS and tag != "p":
        return False
    words = _words(text)
    found = set(words)
    for title in titles:
        title_words = _words(title)
        if not title_words or len(words) > 2 * len(title_words) + 3:
            continue
        title_share = sum(word in found for word in title_words) / len(title_words)
        if tag in _HEADINGS and title_share >= 0.6:
            return True
        # A paragraph must be the title itself: a short lead sentence may share its words.
        in_title = set(title_words)
        if title_share >= 0.8 and sum(word in in_title for word in words) >= 0.8 * len(words):
            return True
    return False


def _collapse_whitespace(block: Any) -> None:
    """Make source line breaks spaces (outside <pre>): only markup breaks lines in the text."""
    if block.tag == "pre":
        return
    for element in block.iter():
        if element.tag == "pre":
            continue
        if any(ancestor.tag == "pre" for ancestor in element.iterancestors()):
            continue
        if element.text:
            element.text = _SPACE_RUNS.sub(" ", element.text)
        if element.tail and element is not block:
            element.tail = _SPACE_RUNS.sub(" ", element.tail)


def _article_or_none(body: _Body | None) -> _Body | None:
    if body is None or len(body.text) < MIN_ARTICLE_CHARS:
        return None
    if any(len(_words(line)) >= MIN_PROSE_WORDS for line in body.text.splitlines()):
        return body
    return None


def _metadata(tree: Any, url: str) -> Document:
    date_params = {
        "original_date": True,
        "extensive_search": True,
        "max_date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "outputformat": "%Y-%m-%dT%H:%M:%S%z",
    }
    try:
        return extract_metadata(tree, default_url=url, date_config=date_params)
    except Exception as exc:  # noqa: BLE001 - metadata is a bonus: its bugs must not lose the body
        log.info("full text: no metadata for %s: %s: %s", url, type(exc).__name__, exc)
        return Document()


def _published_at(value: str | None) -> datetime | None:
    if not value:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            parsed = datetime.strptime(value, layout)
        except ValueError:
            continue
        # A date without a zone is taken as UTC: the page gives no better answer.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None


def _authors(value: str | None) -> tuple[str, ...]:
    return tuple(name for name in (" ".join(part.split()) for part in (value or "").split(";")) if name)


def _canonical_url(tree: Any, url: str) -> str | None:
    for element in tree.iter("link", "meta"):
        attributes = {str(key).lower(): (value or "").strip() for key, value in element.attrib.items()}
        if element.tag == "link" and "canonical" in attributes.get("rel", "").lower().split():
            found = _absolute_url(url, attributes.get("href"))
        elif element.tag == "meta" and attributes.get("property", "").lower() == "og:url":
            found = _absolute_url(url, attributes.get("content"))
        else:
            continue
        if found:
            return found
    return None


def _language(tree: Any) -> str | None:
    candidates = [tree.get("lang"), tree.get("{http://www.w3.org/XML/1998/namespace}lang")]
    for element in tree.iter("meta"):
        kind = (element.get("http-equiv") or element.get("property") or "").lower()
        if kind in ("content-language", "og:locale"):
            candidates.append(element.get("content"))
    for candidate in candidates:
        tag = (candidate or "").strip().split(",")[0].strip().replace("_", "-").lower()
        if re.fullmatch(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*", tag):
            return tag
    return None


def _absolute_url(base: str, href: str | None) -> str | None:
    if not href or not href.strip():
        return None
    try:
        url = urljoin(base, href.strip())
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


def _header_charset(content_type: str | None) -> str | None:
    match = _CHARSET_PARAM.search(content_type or "")
    return match.group(1) if match else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    # A page cannot declare UTF-16 in ASCII-compatible bytes: such a label means UTF-8.
    if name.startswith("utf-16"):
        return "utf-8"
    return _WIDER_CODEC.get(name, name)


def _clean(value: str | None) -> str | None:
    cleaned = " ".join((value or "").split())
    return cleaned or None


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.casefold())


def _content_words(text: str) -> list[str]:
    """Words of four or more characters, or with a digit: "the", "and", "der" are in every body."""
    return [word for word in _words(text) if len(word) >= 4 or any(char.isdigit() for char in word)]
