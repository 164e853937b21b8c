"""normalize.html_text against the HTML standard's parsing rules and a real browser (issue 18).

Each case follows a rule of the HTML standard (comments, bogus comments, raw text, foreign
content); headless Chromium then checks that the text is what a reader sees, with every fragment
set through innerHTML, as a reader would insert ``content_html``.
"""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedlake.tasks.normalize.html_text import html_to_text, sanitize_html
from tests.support.browser import rendered_dom

DEEP = 300  # past MAX_NESTING, so flatten_deep_markup drops tags before the parser sees them

RULES = {
    # A comment ends at "-->" (or "--!>", "<!-->", "<!--->"), whatever tags it holds.
    "script-in-comment": ("a<!-- <script> -->b<script>x()</script>c", "abc"),
    "scripts-in-comments": (
        "<!-- <script>x</script> -->one<!-- <script> -->two<script>y()</script>three",
        "onetwothree",
    ),
    "style-in-comment": ("<!-- <style> -->kept<style>p{}</style> tail", "kept tail"),
    "paragraph-in-comment": ("<p>one</p><!-- <p>hidden</p> --><p>two</p>", "one\n\ntwo"),
    "conditional-comment": ("<!--[if IE]><p>old browsers</p><![endif]-->everyone", "everyone"),
    "downlevel-revealed": ("<!--[if !IE]>--><p>not IE</p><!--<![endif]-->", "not IE"),
    "unterminated-comment": ("kept<!-- never closed <p>lost</p>", "kept"),
    "abrupt-comment-ends": ("<!-->a<!--->b<!---->c<!--x--!>d", "abcd"),
    # A script ends at its "</script>", except inside "<!--<script>" (the escaped states).
    "comment-opener-in-script": ("<script>var a = '<!--';</script>shown", "shown"),
    "double-escaped-script": ("<script><!--<script></script>still code</script>shown", "shown"),
    "tags-in-attribute": ("<a title='<script>'>x</a>y<script>z()</script>w", "xyw"),
    "xmp-shows-its-markup": ("<xmp><b>as typed</b></xmp>", "<b>as typed</b>"),
    # "<!" and "<?" open a doctype or a bogus comment, which ends at the first ">"; the text stays.
    "doctype": ("<!DOCTYPE html><p>Hello</p>", "Hello"),
    "whole-page": (
        "<!doctype html>\n<html><head><title>Page name</title><style>b{}</style></head>"
        "<body><p>Body</p></body></html>",
        "Body",
    ),
    "page-title-in-body": ("a<title>hidden</title>b", "ab"),
    "declaration": ("<!ELEMENT x>shown", "shown"),
    "processing-instruction": ("<?php echo 1 ?>shown", "shown"),
    "end-tag-not-a-name": ("</ 3>shown", "shown"),
    "cdata-in-html": ("<![CDATA[a > b]]>c", "b]]>c"),
    "not-a-doctype": ('<!\' <a href="foo">x', "x"),
    "bang-mid-text": ("a <!b> c", "a c"),
    "less-than-as-text": ("x < y and y <3", "x < y and y <3"),
    # Inline MathML and SVG keep the text they show.
    "mathml": (
        "<p>Energy: <math><mi>E</mi><mo>=</mo><mi>m</mi><msup><mi>c</mi><mn>2</mn></msup></math>.</p>",
        "Energy: E=mc2.",
    ),
    "mathml-annotation": (
        "<math><semantics><mi>xy</mi><annotation encoding='TeX'>xy^2</annotation></semantics></math>",
        "xy",
    ),
    "mathml-words": ("<math><mi>sin</mi><mo>(</mo><mi>xy</mi><mo>)</mo></math>", "sin(xy)"),
    "svg-labels": ("<svg><text x='1' y='9'>Alpha</text><text x='50' y='9'>Beta</text></svg>", "Alpha Beta"),
    "svg-title": (
        "<p>Chart <svg><title>Sales</title><desc>long</desc><text y='9'>42%</text></svg> end</p>",
        "Chart Sales 42% end",
    ),
    "svg-hidden-parts": (
        "<svg><style>t{}</style><script>x()</script>stray<g><text y='9'>label</text></g></svg>",
        "label",
    ),
    "svg-defs": ("<svg><defs><text>unused</text></defs><text y='9'>drawn</text></svg>", "drawn"),
    "cdata-in-svg": ("<svg><text y='9'><![CDATA[x < y]]></text></svg>", "x < y"),
    "svg-foreign-object": (
        "<svg><foreignObject width='99' height='99'><p>inside</p></foreignObject></svg>",
        "inside",
    ),
    # Fallback content is for browsers without the feature: not article text, nor escaped markup.
    "iframe-fallback": ("<iframe src='https://ex.org/v'><p>No iframes here.</p></iframe>After", "After"),
    "iframe-unclosed": ("Before<iframe src='https://ex.org/v'><p>never closed", "Before"),
    "noscript": ("<noscript><img src='x.png'><p>enable js</p></noscript>x", "x"),
    "noembed-noframes": ("<noembed><b>n</b></noembed><noframes><p>f</p></noframes>x", "x"),
    "media-fallback": (
        "<video src='v.mp4'><a href='v.mp4'>get it</a></video><audio>none</audio><canvas>c</canvas>x",
        "x",
    ),
    # What the parser makes of sloppy markup, as a browser does.
    "end-tag-br": ("stopped</br>next<br class='x'>last", "stopped\nnext\nlast"),
    "implied-row-ends": ("<table><tr><td>a<tr><td>b</table>", "a\n\nb"),
    "deep-raw-text": (
        "<div>" * DEEP + "<script>code()</script><iframe><p>fallback</p></iframe>text" + "</div>" * DEEP,
        "text",
    ),
}
# Where Chromium's innerText is not the text we keep, on purpose.
NOT_AS_CHROMIUM = {
    "mathml": "Chromium reads a one-letter <mi> as its italic letter (U+1D438 for E)",
    "svg-title": "Chromium's innerText leaves out SVG's <title>, which names the drawing",
    "svg-defs": "Chromium's innerText reads text inside <defs>, which is never drawn where it stands",
}
# Known sanitizer bypasses (mutation XSS) from DOMPurify's and ammonia's advisories.
ATTACKS = [
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<math><mtext><h1><a><mglyph><malignmark><style><img src onerror=alert(1)>",
    '<svg></p><style><a id="</style><img src=1 onerror=alert(1)>">',
    '<math><annotation-xml encoding="text/html"><style><img src onerror=alert(1)>',
    "<form><math><mtext></form><form><mglyph><style></math><img src onerror=alert(1)>",
    "<svg><title><style><img src=x onerror=alert(1)></style></title></svg>",
    '<math href="javascript:alert(1)"><mi xlink:href="javascript:alert(1)">x</mi></math>',
    '<svg><a href="javascript:alert(1)"><text>t</text></a><set attributeName="href" to="javascript:x"/>',
    '<svg><foreignObject><iframe srcdoc="<script>x()</script>"></iframe><p onclick="x()">f</p></svg>',
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>"></noscript>',
]
# Pieces of hostile HTML: random strings of them reach parser states no list of cases names.
PIECES = (
    ["<!--", "-->", "--!>", "<!", "<?", "</", ">", "<![CDATA[", "]]>", "<!DOCTYPE html>", "<script>"]
    + ["</script>", "<style>", "</style>", "<template>", "</template>", "<noscript>", "</noscript>"]
    + ["<iframe>", "</iframe>", "<noembed>", "<p>", "</p>", "<br>", "<li>", "<b>", "</b>", "<xmp>"]
    + ["</xmp>", '<a title="', '">', "</a>", "&lt;", "&amp;", "alpha", " beta ", "gamma", "<div>"]
    + ["</div>", "<table>", "<td>", "<video>", "</video>"]
)
SHUFFLED = ["".join(random.Random(seed).choices(PIECES, k=1 + seed % 12)) for seed in range(1500)]

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'">
</head><body><pre id="out"></pre><script>
const found = [];
for (const fragment of FRAGMENTS) {
  const holder = document.createElement("div");
  document.body.appendChild(holder);
  holder.innerHTML = fragment;
  let active = 0;
  for (const e of holder.querySelectorAll("*")) {
    if (/^(script|style|iframe|object|embed|link|meta|base|form|svg|noscript)$/i.test(e.localName)) active++;
    for (const a of e.attributes) {
      // A URL with a scheme other than the web's or mail's (browsers ignore blanks and controls in it).
      const scheme = /^(href|src|action|formaction|xlink:href)$/.test(a.name)
        && /^[a-z][a-z0-9+.-]*:/i.test(a.value.replace(/[\\x00-\\x20]/g, ""));
      const web = /^(https?|mailto):/i.test(a.value.replace(/[\\x00-\\x20]/g, ""));
      if (a.name.startsWith("on") || a.name === "style" || (scheme && !web)) active++;
    }
  }
  found.push([holder.innerText, active]);
  holder.remove();
}
document.getElementById("out").textContent = JSON.stringify(found);
</script></body></html>"""


def squashed(text: str) -> str:
    """The characters shown, in order: innerText's line and tab layout is not ours."""
    return re.sub(r"\s+", "", text)


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, int]]:
    """What Chromium shows, and how many active parts it builds, for every fragment of this file."""
    markups = [markup for markup, _ in RULES.values()] + SHUFFLED
    fragments = sorted({*markups, *map(sanitize_html, markups), *map(sanitize_html, ATTACKS)})
    page = Path(tmp_path_factory.mktemp("chromium")) / "fragments.html"
    # As JSON inside <script>, "<" could open "<!--" or "</script>": escaped, it opens nothing.
    page.write_text(
        PAGE.replace("FRAGMENTS", json.dumps(fragments).replace("<", "\\u003c")), encoding="utf-8"
    )
    out = re.search(r'<pre id="out">(.*?)</pre>', rendered_dom(page), re.DOTALL)
    assert out is not None
    shown = json.loads(html.unescape(out.group(1)))
    return {fragment: (text, active) for fragment, (text, active) in zip(fragments, shown, strict=True)}


@pytest.mark.parametrize(("markup", "text"), RULES.values(), ids=RULES.keys())
def test_text_follows_the_html_parsing_rules(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize("case", [case for case in RULES if case not in NOT_AS_CHROMIUM])
def test_text_is_what_chromium_shows(case: str, chromium: dict[str, tuple[str, int]]) -> None:
    markup, _ = RULES[case]
    assert squashed(html_to_text(markup)) == squashed(chromium[markup][0])


def test_text_of_shuffled_hostile_markup_is_what_chromium_shows(chromium: dict[str, tuple[str, int]]) -> None:
    differ = [m for m in SHUFFLED if squashed(html_to_text(m)) != squashed(chromium[m][0])]
    assert differ == []


def test_sanitized_html_shows_the_text_and_nothing_active(chromium: dict[str, tuple[str, int]]) -> None:
    differ = []
    for markup in [markup for case, (markup, _) in RULES.items() if case not in NOT_AS_CHROMIUM] + SHUFFLED:
        shown, active = chromium[sanitize_html(markup)]
        if squashed(shown) != squashed(html_to_text(markup)) or active:
            differ.append((markup, shown, active))
    assert differ == []


@pytest.mark.parametrize("attack", ATTACKS)
def test_sanitized_attacks_build_nothing_active_in_chromium(
    attack: str, chromium: dict[str, tuple[str, int]]
) -> None:
    assert chromium[sanitize_html(attack)][1] == 0


@pytest.mark.parametrize(
    "markup",
    [
        "<iframe src='https://ex.org/'><p>fallback</p></iframe>a",
        "<noscript><p>enable js</p></noscript>a",
        "<noembed><b>x</b></noembed><noframes><p>y</p></noframes>a",
        "<video><a href='https://ex.org/v.mp4'>download</a></video>a",
    ],
)
def test_sanitized_html_drops_fallback_content_whole(markup: str) -> None:
    assert sanitize_html(markup) == "a"


def test_sanitized_html_keeps_mathml_without_attributes() -> None:
    markup = (
        '<math display="block"><mi mathvariant="bold" onclick="x()" href="javascript:alert(1)">x</mi>'
        "<mo>+</mo><msqrt><mn>2</mn></msqrt><annotation>x+\\sqrt{2}</annotation></math>"
    )
    assert sanitize_html(markup) == "<math><mi>x</mi><mo>+</mo><msqrt><mn>2</mn></msqrt></math>"


def test_sanitized_html_turns_svg_into_its_text() -> None:
    markup = (
        "<p>Chart <svg onload='x()'><title>Sales</title><a href='javascript:x()'><text y='9'>42%</text></a>"
        "<animate attributeName='href' to='javascript:x()'/><script>x()</script></svg> end</p>"
    )
    cleaned = sanitize_html(markup)
    assert "<svg" not in cleaned and "javascript" not in cleaned and "x()" not in cleaned
    assert html_to_text(cleaned) == "Chart Sales 42% end"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([*PIECES, "<svg><text>", "</text></svg>", "<math><mi>", "</mi></math>"])).map(
        "".join
    )
)
def test_sanitized_html_has_the_same_text(markup: str) -> None:
    # content_text and content_html are the same article: the text of one is the other's.
    assert html_to_text(sanitize_html(markup)) == html_to_text(markup)
