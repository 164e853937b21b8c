"""When is a feed item's text a teaser? The rule ``full_text: auto`` applies, in one place.

An item's own text (its content, else its summary, as plain text) is a teaser when:

- it is empty: the feed gives a title and a link only;
- it is the title again (case, spaces and punctuation aside);
- it is cut off: it ends with an ellipsis (``...``, ``…``, ``[…]``, ``[...]``) or a "read more" /
  "continue reading" link text;
- it is short: under ``TEASER_CHARS`` characters (600). The ArticleCS feeds of af.mil, defense.gov
  and centcom.mil give about 300 characters of each release; a whole article under 600 characters
  is rare, and then the page adds nothing but also loses nothing (its text is kept only when it is
  longer than the feed's; see ``tasks/full_text/stage.py``).
"""

from __future__ import annotations

import re

TEASER_CHARS = 600
_CUT_OFF = re.compile(
    r"(?:\.\.\.|…|\[(?:…|\.\.\.)\]|\b(?:read|see) (?:more|the full (?:story|article|release))|"
    r"\bcontinue reading|\bfull story)\W*$",
    re.IGNORECASE,
)
_WORDS = re.compile(r"\w+")


def teaser_reason(title: str | None, text: str | None) -> str | None:
    """Why ``text`` (an item's own plain text) is a teaser of its article, or None when it is not."""
    body = (text or "").strip()
    if not body:
        return "the feed gives no text"
    if _words(body) == _words(title or ""):
        return "the feed's text is the title"
    if _CUT_OFF.search(body[-80:]):
        return "the feed's text is cut off"
    if len(body) < TEASER_CHARS:
        return f"the feed's text is short ({len(body)} characters)"
    return None


def wants_page(mode: str, title: str | None, text: str | None) -> bool:
    """Whether a new item of a source with ``full_text: mode`` has its page fetched."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    return teaser_reason(title, text) is not None


def _words(text: str) -> list[str]:
    return _WORDS.findall(text.lower())
