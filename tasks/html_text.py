"""HTML for the lake: sanitize markup once with nh3, and turn it into plain text with paragraphs."""

from __future__ import annotations

import html
import re

import nh3

# Elements whose end starts a new paragraph (or line) when HTML becomes text.
_BLOCK_END = re.compile(
    r"</(?:p|div|h[1-6]|li|blockquote|pre|tr|table|section|article|header|footer|figure|ul|ol|dl|dd|dt)\s*>"
    r"|<(?:p|div|h[1-6]|blockquote|pre|table|section|article|figure|ul|ol|dl)(?:\s[^>]*)?>",
    re.IGNORECASE,
)
_LINE_BREAK = re.compile(r"<br\s*/?>|<li(?:\s[^>]*)?>|<hr\s*/?>", re.IGNORECASE)
_INVISIBLE = re.compile(r"<(script|style|noscript|template)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
# C0/C1 control characters other than tab and newline never belong in text fields.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u2000-\u200b\u202f\u205f\u3000]+")
# What str.strip() would still remove from a line's ends once _SPACES has made runs one space.
_LINE_EDGES = re.compile("[ \u1680\u2028\u2029]*\n[ \u1680\u2028\u2029]*")
_BLANK_LINES = re.compile(r"\n\s*\n+")

# Links may only point at the web or mail; javascript:, data:, vbscript: and the like are dropped.
_URL_SCHEMES = {"http", "https", "mailto"}


def sanitize_html(markup: str) -> str:
    """Return markup with scripts, styles, event handlers and non-web URLs removed."""
    return nh3.clean(_CONTROL.sub("", markup), url_schemes=_URL_SCHEMES, link_rel=None)


def html_to_text(markup: str) -> str:
    """Return the visible text of markup: entities decoded, tags gone, paragraphs on blank lines."""
    if "<" not in markup and "&" not in markup:
        return clean_text(markup)
    marked = _INVISIBLE.sub(" ", markup)
    marked = _BLOCK_END.sub("\n\n", marked)
    marked = _LINE_BREAK.sub("\n", marked)
    # nh3 with no allowed tags strips every tag and escapes text; unescape gives plain text back.
    stripped = nh3.clean(marked, tags=set(), clean_content_tags={"script", "style"})
    return clean_text(html.unescape(stripped))


def clean_text(text: str) -> str:
    """Normalize whitespace, drop control characters, keep paragraph breaks."""
    if text.isprintable() and "  " not in text:
        return text.strip()  # nothing to collapse or drop: most titles, names and categories
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    # One pass over the whole text, not one per line: long bodies have thousands of lines.
    text = _LINE_EDGES.sub("\n", _SPACES.sub(" ", text))
    return _BLANK_LINES.sub("\n\n", text).strip()
