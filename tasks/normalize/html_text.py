"""HTML for the lake: sanitize markup once with nh3, and turn it into plain text with paragraphs.

Both go through one HTML parser, html5ever (inside nh3), with the HTML standard's tokenizer rules: a
comment ends where the standard ends it (so a ``<script>`` inside a comment hides nothing after
it), ``<!DOCTYPE>``, ``<?...>`` and other bogus comments drop and the text after them stays, and a
``<script>`` or ``<style>`` ends where a browser ends it. No pattern decides what is text: the
paragraph breaks are read off nh3's own serialization, where every ``<`` opens a tag (text and
attribute values come back escaped). The text keeps what a browser shows: no scripts,
styles, templates, ``<noscript>`` (browsers run scripts), fallback content of ``<iframe>``,
``<video>``, ``<audio>``, ``<canvas>`` and the like (browsers support them), nor the ``<title>`` of
a whole document; inline MathML keeps its formula text and inline SVG its ``<text>`` and
``<title>``. The sanitized HTML drops the same elements whole (never as escaped tags), keeps MathML
presentation markup without attributes, and turns SVG into its text, since SVG can run script.

nh3 (html5ever) builds the whole HTML tree, and some of its steps walk the stack of open elements,
so its time grows with the square of the nesting depth: 100,000 nested ``<div>`` take about a
minute. ``flatten_deep_markup`` bounds that before nh3 sees the markup. No maintained library caps
HTML nesting without building the tree it is protecting, so this module keeps a small model of the
HTML tree builder's stack: it follows start and end tags with the parser's scope rules, erring
towards counting too deep (never too shallow), and drops the tags that would open an element past
``MAX_NESTING``, keeping their text. Markup that never gets that deep is returned unchanged.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

import nh3

# Elements whose end starts a new paragraph (or line) when HTML becomes text.
_BLOCK_END = re.compile(
    r"</(?:p|div|h[1-6]|li|blockquote|pre|tr|table|section|article|header|footer|figure|ul|ol|dl|dd|dt)\s*>"
    r"|<(?:p|div|h[1-6]|blockquote|pre|table|section|article|figure|ul|ol|dl)(?:\s[^>]*)?>",
    re.IGNORECASE,
)
_LINE_BREAK = re.compile(r"<br\s*/?>|<li(?:\s[^>]*)?>|<hr\s*/?>", re.IGNORECASE)
# Elements whose content a browser does not show: dropped whole, from the text and the sanitized
# HTML alike. Raw-text ones (iframe, noscript, noembed, noframes) would otherwise come back as
# escaped tags. The last ones are MathML and SVG parts that are never drawn (annotations hold the
# formula's TeX source; desc, metadata and definitions are not painted where they stand).
_HIDDEN = frozenset(
    ["script", "style", "template", "noscript", "iframe", "noembed", "noframes", "video", "audio"]
    + ["canvas", "annotation", "annotation-xml", "mphantom", "desc", "metadata", "defs", "symbol"]
    + ["clipPath", "mask", "pattern", "marker"]
)
# MathML presentation elements: no script can run in them, and nh3 allows them no attribute but
# lang and title, so no link or handler either. A foreign element it does not allow, nh3 drops
# whole, formula text included.
_MATHML = frozenset(
    ["math", "mi", "mo", "mn", "ms", "mtext", "mspace", "mrow", "msup", "msub", "msubsup", "mfrac"]
    + ["msqrt", "mroot", "mover", "munder", "munderover", "mtable", "mtr", "mtd", "mstyle", "mpadded"]
    + ["menclose", "merror", "mfenced", "mmultiscripts", "mprescripts", "none", "semantics", "maction"]
)
# SVG may only come in to be read: allowing its root keeps its content from being dropped whole (nh3
# unwraps the other SVG elements inside it), <text> and <title> mark where one label ends, and the
# HTML inside a <foreignObject> would be dropped with it if that element were not allowed.
_SVG_TEXT = frozenset(["svg", "text", "title", "foreignObject"])
_TEXT_TAGS = frozenset(
    ["p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "blockquote", "pre", "tr", "table"]
    + ["section", "article", "header", "footer", "figure", "ul", "ol", "dl", "dd", "dt", "br", "hr"]
)
# No attributes at all (not even nh3's default lang and title): every "<" of its output opens a tag.
_TEXT_CLEANER = nh3.Cleaner(
    tags=_TEXT_TAGS | _MATHML | _SVG_TEXT,
    clean_content_tags=_HIDDEN,
    attributes={"*": set()},
    link_rel=None,
)
# C0/C1 control characters other than tab and newline never belong in text fields.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
# What str.strip() would still remove from a line's ends once _SPACES has made runs one space.
_LINE_EDGES = re.compile("[ \u1680\u2028\u2029]*\n[ \u1680\u2028\u2029]*")
_BLANK_LINES = re.compile(r"\n\s*\n+")

# Links may only point at the web or mail; javascript:, data:, vbscript: and the like are dropped.
_URL_SCHEMES = {"http", "https", "mailto"}
_SANITIZER = nh3.Cleaner(
    tags=nh3.ALLOWED_TAGS | _MATHML | _SVG_TEXT,
    clean_content_tags=_HIDDEN,
    url_schemes=_URL_SCHEMES,
    link_rel=None,
)
# For nh3's output only, where text and attribute values hold no "<" or ">": a match is a whole tag.
_SVG_PART = re.compile(r"<(/?)(svg|text|title|foreignObject)(?:\s[^>]*)?>")
_FOREIGN_PART = re.compile(r"<(/?)(svg|text|title|foreignObject|math|mi|mo|mn|ms|mtext)(?:\s[^>]*)?>")
_ANY_TAG = re.compile(r"<[^>]*>")
# Where the text between two tags is shown: SVG draws only the characters inside its <text> (and
# the HTML of a <foreignObject>), MathML only those of its token elements (<mi>, <mo>, ...); SVG's
# <title> names the drawing; a page's <title> is not shown.
_SHOWN = dict.fromkeys(["svg", "math", "page-title"], False) | dict.fromkeys(
    ["text", "svg-title", "foreignObject", "mi", "mo", "mn", "ms", "mtext"], True
)
# Labels of a drawing stand apart; the tokens of a formula are read together ("E=mc2").
_LABELS = frozenset(["text", "svg-title", "foreignObject"])

# Real articles nest a few dozen elements deep; at this depth nh3 costs about a microsecond a tag.
MAX_NESTING = 256
# The parser reopens every unclosed formatting element (<b>, <font>, ...) in each new paragraph.
MAX_FORMATTING = 16
# A comment (with HTML's abrupt "<!-->" and "--!>" endings), a bogus comment, or a tag whose quoted
# attribute values may hold ">". Possessive and atomic groups keep matching linear.
_TOKEN = re.compile(
    r"<!--(?>>|->|.*?--!?>|.*+)"
    r"|<[!?][^>]*+>?"
    r"|</[^A-Za-z][^>]*+>?"
    r"|<(/?)([A-Za-z][^\t\n\f\r />]*+)"
    r"(?>[^>\"'=]++|=[\t\n\f\r ]*+(?>\"[^\"]*+\"|'[^']*+'|)|[\"'])*+>",
    re.DOTALL,
)
_VOID = frozenset(
    [
        "area",
        "base",
        "basefont",
        "bgsound",
        "br",
        "col",
        "embed",
        "frame",
        "hr",
        "img",
        "input",
        "keygen",
        "link",
        "meta",
        "param",
        "source",
        "track",
        "wbr",
    ]
)
_FORMATTING = frozenset(
    ["a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"]
)
# Elements whose text is not markup: a "</div>" inside a <script> closes nothing.
_RAW_TEXT = frozenset(
    ["script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes", "noscript", "plaintext"]
)
_SCOPE = frozenset(["applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"])
_SPECIAL = _SCOPE | frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "button",
        "center",
        "dd",
        "details",
        "dialog",
        "dir",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "frameset",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "head",
        "header",
        "hgroup",
        "li",
        "listing",
        "main",
        "menu",
        "nav",
        "ol",
        "p",
        "pre",
        "search",
        "section",
        "select",
        "summary",
        "tbody",
        "textarea",
        "tfoot",
        "thead",
        "tr",
        "ul",
        "xmp",
    ]
)
_LI_SCOPE = _SCOPE | {"ul", "ol"}
_BUTTON_SCOPE = _SCOPE | {"button"}
_HEADINGS = frozenset(["h1", "h2", "h3", "h4", "h5", "h6"])
# A start tag that closes the current node while it is one of these (<p> after an open <p>, <tr>
# after an open cell, ...): what the parser always does in that case, so the model may too.
_CLOSES_CURRENT = {
    "p": frozenset({"p"}),
    "li": frozenset({"li", "p"}),
    "dd": frozenset({"dd", "dt", "p"}),
    "dt": frozenset({"dd", "dt", "p"}),
    "option": frozenset({"option"}),
    "td": frozenset({"td", "th"}),
    "th": frozenset({"td", "th"}),
    "tr": frozenset({"td", "th", "tr"}),
    **dict.fromkeys(_HEADINGS, _HEADINGS),
}


@dataclass(frozen=True)
class FlattenedMarkup:
    """Markup with its nesting bounded, and how many tags were dropped to bound it."""

    markup: str
    dropped_tags: int


def flatten_deep_markup(markup: str, max_nesting: int = MAX_NESTING) -> FlattenedMarkup:
    """Drop the tags that would nest elements deeper than ``max_nesting``; their text stays."""
    if markup.count("<") <= max_nesting:
        return FlattenedMarkup(markup, 0)  # too few tags to get that deep
    model = _OpenElements()
    dropped: dict[str, int] = {}
    pieces: list[str] = []
    kept_until = 0
    for token in _TOKEN.finditer(markup):
        name = token.group(2)
        if name is None:
            continue  # a comment or a bogus comment
        name = name.lower()
        if token.group(1):  # an end tag
            if not dropped.get(name):
                model.end(name)
                continue
            dropped[name] -= 1
        elif name in _VOID or model.start(name, max_nesting):
            continue
        else:
            dropped[name] = dropped.get(name, 0) + 1
        pieces.append(markup[kept_until : token.start()])
        pieces.append(" ")  # a dropped tag still separates words
        kept_until = token.end()
    if not pieces:
        return FlattenedMarkup(markup, 0)
    pieces.append(markup[kept_until:])
    return FlattenedMarkup("".join(pieces), len(pieces) // 2)


class _OpenElements:
    """A pessimistic model of the HTML parser's open elements: never shallower than the parser's."""

    def __init__(self) -> None:
        self.stack: list[str] = []
        # Formatting elements the parser keeps in its list and reopens at the next text, so each
        # one costs depth (and, reopened in every paragraph, work) even when it is off the stack.
        self.formatting = 0
        self.raw_text: str | None = None

    def start(self, name: str, max_nesting: int) -> bool:
        """Open an element, or return False when it would nest too deep."""
        stack = self.stack
        closes = _CLOSES_CURRENT.get(name, ())
        while stack and stack[-1] in closes:
            stack.pop()
        if name in _RAW_TEXT and self.raw_text is None:
            # Always kept: its content is text, so it nests one level at most, and without its tag
            # a script's code, a style sheet or an iframe's fallback markup would become text.
            stack.append(name)
            self.raw_text = name
            return True
        if name in _FORMATTING:
            if self.formatting >= MAX_FORMATTING or len(stack) + self.formatting >= max_nesting:
                return False
            self.formatting += 1
        elif len(stack) + self.formatting >= max_nesting:
            return False
        stack.append(name)
        # Inside raw text a start tag is text to the parser, but it is counted all the same: a
        # "<!--" there can hide the raw text's real end from this model.
        if name in _RAW_TEXT and self.raw_text is None:
            self.raw_text = name
        return True

    def end(self, name: str) -> None:
        """Close elements as the parser's end-tag rules would; when unsure, close nothing."""
        if self.raw_text is not None:
            if name != self.raw_text or name == "plaintext":
                return  # text to the parser: closes nothing
            self.raw_text = None
        stack = self.stack
        position = len(stack) - 1
        while position >= 0 and stack[position] != name:
            position -= 1
        if position < 0:
            return
        above = stack[position + 1 :]
        if name in _FORMATTING:
            if above:
                return  # the adoption agency algorithm moves elements: assume nothing is closed
            self.formatting -= 1  # closing it also takes it off the parser's list
        elif name in _SPECIAL:
            boundaries = _LI_SCOPE if name == "li" else _BUTTON_SCOPE if name == "p" else _SCOPE
            if any(element in boundaries for element in above):
                return
        elif any(element in _SPECIAL for element in above):
            return
        # Formatting elements closed by another end tag stay on the parser's list: still counted.
        del stack[position:]


def sanitize_html(markup: str) -> str:
    """Return markup with scripts, styles, event handlers and non-web URLs removed."""
    bounded = flatten_deep_markup(markup).markup
    cleaned = _SANITIZER.clean(_CONTROL.sub("", bounded))
    if not _SVG_PART.search(cleaned):
        return cleaned
    # SVG can run script and draws nothing useful without its attributes: keep its text as text,
    # then parse once more so the result is what a browser would build from it.
    return _SANITIZER.clean(_foreign_as_text(cleaned, _SVG_PART))


def _foreign_as_text(serialized: str, parts: re.Pattern[str]) -> str:
    """Keep of each SVG (or formula) in nh3's output the text it shows; drop each page ``<title>``."""
    pieces: list[str] = []
    open_parts: list[str] = []
    shown_until = 0
    for tag in parts.finditer(serialized):
        if not open_parts or _SHOWN[open_parts[-1]]:
            pieces.append(serialized[shown_until : tag.start()])
        shown_until = tag.end()
        closing, name = tag.groups()
        if closing:
            # nh3's output is well formed: an end tag closes the innermost of these elements.
            if open_parts and open_parts.pop() in _LABELS:
                pieces.append(" ")  # one label ends: the next one is drawn elsewhere
        elif name != "title":
            open_parts.append(name)
        elif open_parts and open_parts[-1] in ("svg", "text"):
            open_parts.append("svg-title")
        else:
            open_parts.append("page-title")  # HTML's, also inside a <foreignObject>
    pieces.append(serialized[shown_until:])
    return "".join(pieces)


def html_to_text(markup: str) -> str:
    """Return the visible text of markup: entities decoded, tags gone, paragraphs on blank lines."""
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    # html5ever parses the markup as a browser would; its output keeps only the tags that mark
    # paragraphs and lines and those of SVG and MathML, has no comments or attributes, and
    # escapes all text.
    serialized = _TEXT_CLEANER.clean(flatten_deep_markup(markup).markup)
    if _FOREIGN_PART.search(serialized):
        serialized = _foreign_as_text(serialized, _FOREIGN_PART)
    marked = _BLOCK_END.sub("\n\n", serialized)
    marked = _LINE_BREAK.sub("\n", marked)
    return clean_text(html.unescape(_ANY_TAG.sub("", marked)))


def clean_text(text: str) -> str:
    """Normalize whitespace, drop control characters, keep paragraph breaks."""
    if text.isprintable() and "  " not in text:
        return text.strip()  # nothing to collapse or drop: most titles, names and categories
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    # One pass over the whole text, not one per line: long bodies have thousands of lines.
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()
