"""normalize.html_text: sanitized markup and plain text with paragraphs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedlake.tasks.normalize.html_text import (
    _BLANK_LINES,
    _CONTROL,
    _SPACES,
    clean_text,
    html_to_text,
    sanitize_html,
)

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>One</p><p>Two</p>", "One\n\nTwo"),
        ("<p>One</p>\n\n\n<p>Two</p>\n<p>Three</p>", "One\n\nTwo\n\nThree"),
        ("<div>x</div><div>y</div>", "x\n\ny"),
        ("<h1>Title</h1>Body text", "Title\n\nBody text"),
        ("<p>a</p>  <p>  b   c </p>", "a\n\nb c"),
        ("<P CLASS='lead'>Upper</P><p>lower</p>", "Upper\n\nlower"),
        ("<ul><li>first</li><li>second</li></ul>", "first\n\nsecond"),
        ("Intro<blockquote>Quoted</blockquote>After", "Intro\n\nQuoted\n\nAfter"),
    ],
)
def test_block_elements_become_blank_line_separated_paragraphs(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("a<br>b<br/>c<BR />d", "a\nb\nc\nd"),
        ("<p>line one<br />line two</p><p>next</p>", "line one\nline two\n\nnext"),
        ("above<hr>below", "above\nbelow"),
    ],
)
def test_line_breaks_become_newlines(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("AT&amp;T &lt;tag&gt;", "AT&T <tag>"),
        ("&#8220;quoted&#8221; &#x2019;s &#39;", "\u201cquoted\u201d \u2019s '"),
        ("caf&eacute; &copy; &hellip;", "caf\u00e9 \u00a9 \u2026"),
        ("a&nbsp;b", "a b"),
        ("<p>1 &lt; 2 &amp;&amp; 3 &gt; 2</p>", "1 < 2 && 3 > 2"),
        # Escaped markup is text, not markup: it survives as the characters it stands for.
        ("&lt;script&gt;x()&lt;/script&gt;", "<script>x()</script>"),
        # Windows-1252 numeric references, as many feeds emit them.
        ("&#147;smart&#148; &#150; dash", "\u201csmart\u201d \u2013 dash"),
    ],
)
def test_entities_are_decoded(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<script>alert(1)</script>keep<style>p{color:red}</style> this", "keep this"),
        ('<SCRIPT type="text/javascript">\nbad();\n</SCRIPT>ok', "ok"),
        ("<noscript>enable js</noscript>visible", "visible"),
        ("<p>a</p><script>var s = '<p>fake</p>';</script><p>b</p>", "a\n\nb"),
        ("<template><p>hidden</p></template>shown", "shown"),
    ],
)
def test_invisible_content_is_dropped(markup: str, text: str) -> None:
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ("plain \x00text\x07 here\x1b", "plain text here"),
        ("a\x85b\x9fc\x7fd", "abcd"),
        ("A\r\nB\rC", "A\nB\nC"),
        ("  spaced\t\tout  \u00a0 words \u3000", "spaced out words"),
        ("p1\n\n\n\n  \n p2", "p1\n\np2"),
        ("<b>bold</b>\x0bvertical\x0ctab", "boldverticaltab"),
        ("&#1;&#x7f;control refs", "control refs"),
    ],
)
def test_control_characters_and_whitespace(raw: str, text: str) -> None:
    assert html_to_text(raw) == text


def test_clean_text_keeps_tabs_out_and_paragraphs_in() -> None:
    assert clean_text("one\ttwo\n\n\nthree\x00") == "one two\n\nthree"
    assert clean_text("") == ""


def test_sanitize_removes_script_and_style_elements() -> None:
    cleaned = sanitize_html("<p>ok</p><script>evil()</script><style>p{}</style><SCRIPT>x</SCRIPT>")
    assert cleaned == "<p>ok</p>"


def test_sanitize_removes_event_handlers() -> None:
    cleaned = sanitize_html('<p onclick="x()">hi</p><img src="https://ex.org/i.png" onerror="x()" alt="i">')
    assert "onclick" not in cleaned and "onerror" not in cleaned
    assert cleaned == '<p>hi</p><img src="https://ex.org/i.png" alt="i">'


@pytest.mark.parametrize(
    "markup",
    [
        '<a href="javascript:alert(1)">x</a>',
        '<a href="JaVaScRiPt:alert(1)">x</a>',
        '<a href="  javascript:alert(1)">x</a>',
        '<a href="vbscript:msgbox(1)">x</a>',
        '<a href="data:text/html;base64,PHNjcmlwdD4=">x</a>',
    ],
)
def test_sanitize_drops_non_web_links(markup: str) -> None:
    assert sanitize_html(markup) == "<a>x</a>"


def test_sanitize_drops_data_images_and_css_urls() -> None:
    cleaned = sanitize_html(
        '<img src="data:image/png;base64,AAAA" alt="d"><div style="background:url(javascript:x)">s</div>'
    )
    assert "data:" not in cleaned and "javascript" not in cleaned
    assert cleaned == '<img alt="d"><div>s</div>'


def test_sanitize_keeps_safe_markup() -> None:
    markup = (
        '<p>Read <a href="https://ex.org/a?x=1&amp;y=2" title="t">this</a> and '
        '<a href="mailto:press@ex.org">write</a>.</p>'
        "<ul><li><b>bold</b> <em>em</em></li></ul><blockquote>quote</blockquote>"
        '<img src="https://ex.org/i.png" alt="pic"><br>'
    )
    assert sanitize_html(markup) == markup


def test_sanitize_drops_iframes_and_control_characters() -> None:
    assert sanitize_html('a\x00b<iframe src="https://ex.org/"></iframe>\x1bc') == "abc"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=20),
            st.sampled_from(["<p>", "</p>", "<br>", "<script>", "</script>", "&amp;", "&#8220;", "<b>", "<"]),
        ),
        max_size=12,
    ).map("".join)
)
def test_text_has_no_tags_or_control_characters(markup: str) -> None:
    text = html_to_text(markup)
    assert not CONTROL.search(text)
    if "&" not in markup:
        # Without entities, every tag-looking sequence in the markup was a tag: none survives.
        assert not re.search(r"</?(?:p|br|b|script)>", text)
    assert text == text.strip()
    assert "\n\n\n" not in text
    sanitized = sanitize_html(markup)
    assert "<script" not in sanitized.lower()
    assert not CONTROL.search(sanitized)


def _clean_text_line_by_line(text: str) -> str:
    # The original definition: collapse and strip each line on its own.
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    joined = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", joined).strip()


@settings(max_examples=3000, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("ab \t\n\r\x0b\x0c\x85\xa0\u1680\u2002\u2028\u2029\u3000\x1c<>&")))
)
def test_clean_text_in_one_pass_equals_line_by_line(text: str) -> None:
    # Its output feeds content_hash: any change would make every stored article look edited.
    assert clean_text(text) == _clean_text_line_by_line(text)
