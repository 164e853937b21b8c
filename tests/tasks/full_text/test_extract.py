"""full_text.extract: the article body of real pages, guided by the feed item's title and teaser."""

from __future__ import annotations

import csv
import html
import re
import time
from collections import Counter
from datetime import UTC, datetime
from functools import cache

import pytest
from lxml import html as lxml_html

from feedlake.tasks.errors import ConfigError
from feedlake.tasks.full_text.extract import (
    MAX_PAGE_BYTES,
    ExtractionJob,
    PageArticle,
    decode_page,
    extract_article,
    extract_articles,
    teaser_coverage,
)
from feedlake.tasks.normalize.articles import normalize_feed
from feedlake.tasks.parse.feed import parse_feed
from feedlake.tasks.sources.catalog import Source
from feedlake.tasks.values import FetchResult
from tests.support.paths import CASES

PAGES = CASES / "pages"
AF_MIL = sorted(path.name for path in (PAGES / "af.mil").glob("*.html"))
AF_FEED = CASES / "corpus" / "af.mil-mirror_TecnologiaNova" / "RSS3a26.ashx.xml"


def read_page(name: str) -> bytes:
    return (PAGES / name).read_bytes()


def reference(name: str) -> list[str]:
    """The paragraphs of a page's reference body (tests/cases/pages/bodies/)."""
    return (PAGES / "bodies" / f"{name}.txt").read_text(encoding="utf-8").strip().split("\n\n")


@cache
def af_feed_rows() -> dict[str, tuple[str, str, str]]:
    """item link -> (link, title, plain text) of every item of the captured af.mil feed."""
    url = "http://feeds.test/RSS3a26.ashx.xml"
    fetched = FetchResult("af-mil", url, datetime.now(UTC), status=200, body=AF_FEED.read_bytes())
    batch = normalize_feed(parse_feed(fetched), Source("af-mil", url, "af-mil", "test", "news"), "run")
    rows = batch.select(["url", "title", "summary_text"]).to_pylist()
    return {row["url"]: (row["url"], row["title"], row["summary_text"]) for row in rows}


@cache
def af_items() -> dict[str, tuple[str, str, str]]:
    """page file -> (item link, title, plain text) of its item in the captured af.mil feed."""
    with (PAGES / "af.mil" / "LINKS.tsv").open(encoding="utf-8") as handle:
        links = {row["page_file"]: row["item_link"] for row in csv.DictReader(handle, delimiter="\t")}
    return {page: af_feed_rows()[link] for page, link in links.items()}


def af_job(page: str) -> ExtractionJob:
    link, title, teaser = af_items()[page]
    return ExtractionJob(read_page(f"af.mil/{page}"), link, "text/html; charset=utf-8", title, teaser)


def assert_in_order(text: str, wanted: list[str]) -> None:
    """Every wanted passage is in the text, each after the one before."""
    positions = [text.index(want) for want in wanted]
    assert positions == sorted(positions) and len(set(positions)) == len(positions), positions


def assert_blank_line_paragraphs(text: str) -> None:
    assert "\n\n\n" not in text
    for paragraph in text.split("\n\n"):
        assert paragraph.strip() == paragraph != ""


def test_links_tsv_pairs_each_af_mil_page_with_the_item_of_its_article_number() -> None:
    assert sorted(af_items()) == AF_MIL
    for page, (link, _, _) in af_items().items():
        number = re.search(r"/Article/(\d+)/", link)
        assert number is not None
        assert f"Article={number.group(1)}".encode() in read_page(f"af.mil/{page}")


@pytest.mark.parametrize("page", AF_MIL)
def test_af_mil_release_paragraphs_come_in_order_one_blank_line_apart(page: str) -> None:
    article = extract_article(af_job(page))
    assert article.status == "ok" and article.text is not None
    assert_blank_line_paragraphs(article.text)
    paragraphs = article.text.split("\n\n")
    body = reference(f"af.mil/{page}")
    # The dateline opens the release; the first, a middle and the last paragraph, each whole.
    assert paragraphs[0].startswith(("WASHINGTON (AFNS) -- ", "FALLS CHURCH, Va. (AFNS) -- "))
    key = [body[0], body[len(body) // 2], body[-1]]
    assert all(paragraph in paragraphs for paragraph in key)
    assert_in_order(article.text, key)
    assert paragraphs == body
    assert article.teaser_coverage == 1.0


AF_MIL_CHROME = {
    "Print31c8.html": ["By Kevin M. Hymel", "(Courtesy photo)", "DOWNLOAD HI-RES", "PHOTO DETAILS"],
    "Print8fd1.html": ["By Senior Airman Ashley Powell", "Related Biographies", "RICHARD W. LOMBARDI"],
    "Print9e4f.html": ["By Senior Airman Hailey Haux", "U.S. Air Force photo/Jim Varhegyi", "PHOTO DETAILS"],
    "Printcf90.html": [
        "Related Links",
        "More Desert Storm content",
        "U.S. Air Force archive photo",
        "HI-RES",
    ],
}


@pytest.mark.parametrize("page", AF_MIL)
def test_af_mil_print_page_chrome_stays_out(page: str) -> None:
    source = read_page(f"af.mil/{page}").decode("utf-8")
    article = extract_article(af_job(page))
    assert article.text is not None and article.html is not None
    _, title, _ = af_items()[page]
    # The headline is the title field, not the body's first paragraph.
    assert title in source and not article.text.startswith(title)
    for chrome in [*AF_MIL_CHROME[page], "/ Published January 1"]:
        assert chrome in source, chrome  # on the page...
        assert chrome not in article.text and chrome not in article.html, chrome  # ...not in the body
    # The tag links under the release, each with its tag icon.
    assert "Styles/AirForce/tag.png" in source and "tag.png" not in article.html


@pytest.mark.parametrize("page", AF_MIL)
def test_af_mil_metadata_is_the_page_s_where_the_page_has_it(page: str) -> None:
    source = read_page(f"af.mil/{page}")
    article = extract_article(af_job(page))
    heading = re.search(rb'<h1 class="title">(.*?)</h1>', source)
    published = re.search(rb"Published (\w+ \d+, \d{4})", source)
    assert heading is not None and published is not None
    assert article.title == heading.group(1).decode("utf-8")
    day = datetime.strptime(published.group(1).decode(), "%B %d, %Y").replace(tzinfo=UTC)
    assert article.published_at == day
    assert article.published_at is not None and article.published_at.tzinfo is not None
    # The print view declares no canonical URL and no language: none is invented.
    assert b"canonical" not in source and b"og:url" not in source and b"lang=" not in source
    assert article.canonical_url is None and article.language is None
    assert article.authors and article.authors[0] in source.decode("utf-8")


def test_metadata_of_a_page_that_declares_it() -> None:
    article = extract_article(
        ExtractionJob(
            read_page("trafilatura/theguardian.com.academics.html"), "https://www.theguardian.com/x"
        )
    )
    assert article.canonical_url == (
        "https://www.theguardian.com/education/2020/jan/20/thousands-of-uk-academics-treated-as-second-class-citizens"
    )
    assert article.language == "en"
    assert article.published_at is not None and article.published_at.date().isoformat() == "2020-01-20"
    assert article.title is not None and article.title.startswith("Thousands of UK academics")
    assert article.authors == ("Richard Adams",)
    assert article.image is not None and article.image.startswith("https://i.guim.co.uk/")


LEAD = "The Air Force released its budget on Tuesday."
PROSE = (
    "The request adds money for readiness, for the next generation of aircraft and for space systems, "
    "and it trims legacy programs that commanders say no longer fit the mission, officials said."
)


def test_a_heading_that_is_the_title_and_a_byline_go_but_a_lead_sharing_the_title_s_words_stays() -> None:
    page = (
        "<html><head><title>Release</title></head><body><div class='story'>"
        "<h1>Air Force releases budget</h1><p>By Jane Doe, Air Force Public Affairs / Published Feb. 2</p>"
        f"<p>{LEAD}</p><p>{PROSE}</p><p>{PROSE.replace('The request', 'The plan')}</p></div></body></html>"
    )
    job = ExtractionJob(page.encode(), "https://pages.test/budget", title="Air Force releases budget")
    article = extract_article(job)
    assert article.text is not None and article.text.startswith(f"{LEAD}\n\n{PROSE}\n\n")
    assert "Jane Doe" not in article.text and "releases budget" not in article.text
    assert article.authors == ("Jane Doe",)


TRAFILATURA_CASES = [
    (
        "zeit.de.zugverkehr.html",
        ["36 Stunden. So lange dauert", "Kris de Decker kennt das", "Die spanische Bahngesellschaft Renfe"],
        [
            "Nichtmal der Deutsche Bahn Manager",
            "Kommentarseiten",
            "Jetzt teilen auf",
            "Bitte melden Sie sich an",
        ],
    ),
    (
        "threatpost.com.android.html",
        ["Researchers are warning of a new", "The ransomware encrypts various", "Researchers urged Android"],
        [
            "Any md5 or sha256 or virustutal",
            "Write a comment",
            "Share this article:",
            "Security researchers worry that this",
        ],
    ),
    (
        "theguardian.com.academics.html",
        [
            "Thousands of academic staff",
            "Jo Grady, the UCU general secretary",
            "The findings come in the middle",
        ],
        [
            "Third of Cambridge University staff",
            "Share on Facebook",
            "Reuse this content",
            "Temporary work at £9",
        ],
    ),
    (
        "brandenburg.de.homo-brandenburgensis.html",
        ["An milden, sonnigen Herbsttagen", "Schon der Soldatenkönig", "Nach einem Jahr Brandenburg"],
        ["Neuen Kommentar hinzufügen", "Vom Kalauer nach Calau", "Das Brandenbuch bei uns bestellen"],
    ),
    (
        "dw.com.colonial.html",
        [
            "Berlin's relationship with its colonial",
            "The most notorious of the three",
            "The city of Berlin itself",
        ],
        ["DW recommends", "We use cookies", "Racist, ruthless, cruel", "Every day, DW's editors"],
    ),
    (
        "mercurynews.com.2023.01.16.letters-1119.html",
        ["It should not surprise anyone", "The EBMUD plan", "Scientists admittedly can’t predict"],
        ["Join the Conversation", "Miss Manners", "Most Popular", "Report an error"],
    ),
    (
        "sueddeutsche.de.flixtrain.html",
        ["Die Ankündigungen von Deutscher Bahn", "Stengers Plattform", "Nun zieht auch die Busbranche"],
        ["Stellenmarkt", "Meistgelesene Artikel", "Von Markus Balser", "Diskussion zu diesem Artikel"],
    ),
]


@pytest.mark.parametrize(("page", "sentences", "boilerplate"), TRAFILATURA_CASES)
def test_news_page_body_without_comments_navigation_or_related_links(
    page: str, sentences: list[str], boilerplate: list[str]
) -> None:
    source = read_page(f"trafilatura/{page}").decode("utf-8")
    article = extract_article(ExtractionJob(source.encode(), f"https://pages.test/{page}"))
    assert article.status == "ok" and article.text is not None
    assert_blank_line_paragraphs(article.text)
    assert_in_order(article.text, sentences)
    for chrome in boilerplate:
        assert chrome in source, chrome
        assert chrome not in article.text, chrome


SCMP = "trafilatura/scmp.com.playbook.html"
# The page's own summary (og:description), standing in for the item text a feed would give.
SCMP_TEASER = (
    "While both Tsai and Lam faced a challenging year, the Taiwanese leader shrewdly capitalised on the "
    "crisis in Hong Kong to claim herself a massive election win."
)


def test_teaser_guidance_finds_the_article_the_default_mode_misses() -> None:
    data = read_page(SCMP)
    assert f'property="og:description" content="{SCMP_TEASER}"'.encode() in data
    url = "https://www.scmp.com/comment/opinion/article/3046526"
    # Unguided, trafilatura picks the page's summary block: a caption, the byline, the teaser, a bio.
    unguided = extract_article(ExtractionJob(data, url))
    assert unguided.method == "trafilatura" and unguided.text is not None
    assert "spectacular re-election was no easy feat" not in unguided.text
    # The body repeats the teaser and stops short after it: the recall and baseline modes are tried,
    # and the baseline's schema.org articleBody is the article.
    guided = extract_article(
        ExtractionJob(data, url, title="Carrie Lam should study Tsai’s playbook", teaser=SCMP_TEASER)
    )
    assert guided.method == "baseline" and guided.text is not None
    assert_in_order(
        guided.text,
        [
            "Taiwanese President Tsai Ing-wen’s spectacular re-election was no easy feat.",
            "Tsai triumphed using political shrewdness.",
            "Lam staying on as chief executive, despite her record low popularity ratings",
        ],
    )
    # Word for word (as a bag of words), the body is the reference body read off the page.
    got, want = (
        Counter(re.findall(r"\w+", guided.text.lower())),
        Counter(re.findall(r"\w+", " ".join(reference(SCMP)).lower())),
    )
    common = sum((got & want).values())
    assert common / sum(want.values()) > 0.99 and common / sum(got.values()) > 0.9
    assert "Photo: AP" not in guided.text
    assert guided.teaser_coverage is not None and 0.5 <= guided.teaser_coverage < 1.0


def test_teaser_coverage_counts_the_teaser_s_content_words_found_in_the_body() -> None:
    body = "WASHINGTON (AFNS) -- Air Force Secretary Deborah Lee James spoke at the Smart Power series."
    assert teaser_coverage("Air Force Secretary", body) == 1.0
    assert teaser_coverage("Air Force budget hearing", body) == pytest.approx(1 / 3)
    # Short words ("the", "of", "at") are in every body: they do not count; numbers do.
    assert teaser_coverage("Briefing at the Pentagon", body) == 0.0
    assert teaser_coverage("Released in 2016 by the Secretary", body) == pytest.approx(1 / 3)
    # A teaser cut to length ends in a fragment of a body word: it counts.
    assert teaser_coverage("James spoke at the Smart Power seri", body) == 1.0
    assert teaser_coverage("James spoke at the Smart Power semi", body) == pytest.approx(4 / 5)
    assert teaser_coverage("", body) is None and teaser_coverage("of the", body) is None
    assert teaser_coverage("anything", None) == 0.0


def test_a_page_about_another_item_is_not_that_item_s_article() -> None:
    other_link = "http://www.af.mil/News/ArticleDisplay/tabid/223/Article/643354/"
    title, teaser = next(
        (row[1], row[2]) for link, row in af_feed_rows().items() if link.startswith(other_link)
    )
    assert teaser.startswith('"Clean before applying paint"')
    page = read_page("af.mil/Print31c8.html")  # the critical-care release, not the paint-shop one
    article = extract_article(ExtractionJob(page, "http://www.af.mil/x", title=title, teaser=teaser))
    assert article.status == "not_an_article" and article.text is None
    assert article.title == "Gulf War created need for better critical care"  # the page's metadata stays


LINK_LIST = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Site map</title></head><body>"
    "<header><nav><a href='/'>Home</a> | <a href='/about'>About us</a></nav></header>"
    "<main><h1>Site map</h1><ul>"
    + "".join(f"<li><a href='/section/{n}'>Section number {n} of the site</a></li>" for n in range(40))
    + "</ul></main><footer><p>© 2024 Example Agency</p></footer></body></html>"
)


@pytest.mark.parametrize("page", [LINK_LIST.encode(), b"", b"   \n", b"\x00\x01 binary \xff\xfe"])
def test_a_page_without_an_article_is_not_an_article(page: bytes) -> None:
    article = extract_article(ExtractionJob(page, "https://pages.test/sitemap", teaser="Section number one"))
    assert article.status == "not_an_article"
    assert article.text is None and article.html is None and article.method == "none"


HOSTILE_ARTICLE = """<!doctype html><html><head><title>Release</title><style>p {{ color: red }}</style>
<script>document.cookie = "stolen"</script></head><body><article>
<h1>Release</h1>
<p onclick="steal()" onmouseover='steal()' style="x">{para}
<a href="javascript:alert(1)" onfocus="steal()">read</a></p>
<script>alert("in body")</script><style>.hidden {{ display: none }}</style>
<p><img src=x onerror="steal()">{para}</p>
<p><svg onload="steal()"><script>alert(2)</script></svg>{para} <iframe src="https://evil.test/"></iframe></p>
</article></body></html>"""
PARAGRAPH = (
    "The squadron completed its deployment after six months of operations in the region, officials said."
)


def assert_sanitized(markup: str) -> None:
    assert not re.search(r"<\s*(script|style|iframe|svg)", markup, re.IGNORECASE)
    assert "javascript:" not in markup
    for element in lxml_html.fragment_fromstring(markup, create_parent="div").iter():
        assert not [name for name in element.attrib if name.lower().startswith("on")], element.attrib


def test_html_is_sanitized_even_when_the_article_carries_scripts_and_handlers() -> None:
    page = HOSTILE_ARTICLE.format(para=PARAGRAPH).encode()
    article = extract_article(ExtractionJob(page, "https://pages.test/release"))
    assert article.status == "ok" and article.html is not None and article.text is not None
    assert PARAGRAPH in article.html
    assert_sanitized(article.html)
    assert "alert" not in article.text and "steal" not in article.text and "color: red" not in article.text


@pytest.mark.parametrize("page", sorted(str(p.relative_to(PAGES)) for p in PAGES.glob("*/*.html")))
def test_every_real_page_body_is_sanitized_html_with_the_same_words_as_its_text(page: str) -> None:
    article = extract_article(ExtractionJob(read_page(page), f"https://pages.test/{page}"))
    assert article.status == "ok" and article.html is not None and article.text is not None
    assert_sanitized(article.html)
    as_text = html.unescape(re.sub(r"<[^>]*>", " ", article.html))
    assert as_text.split() == article.text.split()


def windows_1252_page() -> bytes:
    """The Print9e4f release re-encoded as windows-1252 (its curly quotes are single bytes there)."""
    source = read_page("af.mil/Print9e4f.html").decode("utf-8")
    return source.replace("charset=utf-8", "charset=windows-1252").encode("cp1252")


@pytest.mark.parametrize(
    ("page", "content_type"),
    [
        (windows_1252_page(), None),  # the <meta> says windows-1252
        (windows_1252_page().replace(b"charset=windows-1252", b"charset=iso-8859-1"), None),  # read as cp1252
        (windows_1252_page().replace(b"charset=windows-1252", b"charset=utf-8"), "text/html; charset=cp1252"),
        (b"\xef\xbb\xbf" + read_page("af.mil/Print9e4f.html"), "text/html; charset=windows-1252"),  # BOM wins
        (read_page("af.mil/Print9e4f.html").replace(b"charset=utf-8", b"charset=nonsense"), None),  # detected
    ],
)
def test_charset_comes_from_bom_then_header_then_meta_then_detection(
    page: bytes, content_type: str | None
) -> None:
    assert "“I would first tell you all, it’s very much a whole of government approach,”" in decode_page(
        page, content_type
    )


def test_a_page_without_any_charset_is_detected_as_utf_8() -> None:
    page = read_page("trafilatura/github.blog.spiceland.html")
    assert b"charset" not in page.lower()
    article = extract_article(ExtractionJob(page, "https://github.blog/spiceland"))
    assert article.text is not None and "What’s the biggest career risk you’ve ever taken?" in article.text


def test_oversized_and_deeply_nested_pages_are_cut_and_extracted_in_bounded_time() -> None:
    release = read_page("af.mil/Print9e4f.html")
    huge = release.replace(b"</body>", b"<div>" + b"<span>filler</span>" * 700_000 + b"</div></body>")
    deep = b"<html><body>" + b"<div>" * 300_000 + b"<p>" + release[5000:6000] + b"</p>" + b"</div>" * 300_000
    assert len(huge) > 2 * MAX_PAGE_BYTES and len(deep) > 3_000_000
    for page in (huge, deep):
        started = time.perf_counter()
        article = extract_article(ExtractionJob(page, "https://pages.test/huge"))
        assert time.perf_counter() - started < 30
        assert article.status in ("ok", "not_an_article")
    article = extract_article(
        ExtractionJob(huge, "https://pages.test/huge", teaser=af_items()["Print9e4f.html"][2])
    )
    assert article.text is not None and article.text.split("\n\n") == reference("af.mil/Print9e4f.html")


def all_jobs() -> list[ExtractionJob]:
    jobs = [af_job(page) for page in AF_MIL]
    for path in sorted((PAGES / "trafilatura").glob("*.html")):
        jobs.append(ExtractionJob(path.read_bytes(), f"https://pages.test/{path.name}"))
    return jobs


def test_a_job_that_raises_becomes_not_an_article_and_the_batch_goes_on() -> None:
    broken = ExtractionJob(page=None, url="https://pages.test/broken")  # type: ignore[arg-type]
    articles = extract_articles([af_job(AF_MIL[0]), broken, af_job(AF_MIL[1])], processes=1)
    assert [article.status for article in articles] == ["ok", "not_an_article", "ok"]
    assert articles[1].text is None and articles[1].method == "error"


def test_two_processes_give_the_same_articles_as_one_in_the_same_order() -> None:
    broken = ExtractionJob(page=None, url="https://pages.test/broken")  # type: ignore[arg-type]
    jobs = [*all_jobs(), broken]
    inline = extract_articles(jobs, processes=1)
    pooled = extract_articles(jobs, processes=2)
    assert pooled == inline
    assert all(isinstance(article, PageArticle) for article in pooled)
    assert [article.status for article in pooled].count("ok") == len(jobs) - 1
    assert pooled[-1].method == "error"


def test_processes_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="at least 1 process"):
        extract_articles([], processes=0)


def test_pages_are_copies_listed_in_the_manifest() -> None:
    with (PAGES / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        listed = {row["saved_path"] for row in csv.DictReader(handle, delimiter="\t")}
    on_disk = {str(path.relative_to(PAGES)) for path in PAGES.glob("*/*.html")}
    assert listed == on_disk
    bodies = {
        str(path.relative_to(PAGES / "bodies"))[: -len(".txt")] for path in (PAGES / "bodies").rglob("*.txt")
    }
    assert bodies <= on_disk and {f"af.mil/{page}" for page in AF_MIL} <= bodies and len(bodies) >= 20
