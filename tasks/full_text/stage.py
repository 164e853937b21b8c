"""Full-text stage: a source's new rows, with the article's body from its page where the feed has a teaser.

Input: the new rows of one source (after dedup, so a page is fetched once per new item version),
its ``full_text`` mode, and what fetching and extracting the pages gave. Output: the same rows, with

- ``content_text`` / ``content_html``: the page's body when one was extracted and it is longer than
  the feed's text (a page that yields less than the teaser is not trusted), else the feed's;
- ``summary_text``: the feed's own text is kept here (its summary, else the content it replaced);
- ``content_source`` (``feed`` | ``page``), ``page_url`` (after redirects), ``page_status``
  (``ok``, ``not_modified``, ``robots_disallowed``, ``http_<code>``, ``timeout``, ``too_large``,
  ``refused``, ``not_an_article``, ``error``, or ``skipped`` when the rule fetched no page) and
  ``page_fetched_at``;
- ``published_at``: a date only the page gives fills a missing one, with ``date_source = page``.

``content_hash`` is left as the feed's: it identifies the feed's version of the item, which is what
dedup compares on the next poll, so a page never makes the same item new again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date

import pyarrow as pa

from feedlake.schemas.article import PAGE_DATE_SOURCE
from feedlake.tasks.fetch.pages import PageRequest, PageResult
from feedlake.tasks.full_text.extract import PageArticle
from feedlake.tasks.full_text.teaser import wants_page

SKIPPED = "skipped"


@dataclass(frozen=True)
class PageOutcome:
    """What fetching and extracting one item's page gave."""

    result: PageResult
    article: PageArticle | None  # None when the page was not fetched with a body


def page_requests(rows: pa.RecordBatch | pa.Table, mode: str) -> list[PageRequest]:
    """The pages to fetch for a source's new rows under ``full_text: mode`` (in row order)."""
    if mode == "never" or rows.num_rows == 0:
        return []
    columns = rows.select(["source_id", "article_id", "url", "title", "summary_text", "content_text"])
    requests = []
    for row in columns.to_pylist():
        text = row["content_text"] or row["summary_text"]
        if row["url"] and wants_page(mode, row["title"], text):
            requests.append(PageRequest(row["source_id"], row["article_id"], row["url"]))
    return requests


def with_pages(rows: pa.RecordBatch, outcomes: Mapping[str, PageOutcome]) -> pa.RecordBatch:
    """``rows`` with each row's page outcome applied (rows without one are marked ``skipped``)."""
    data = rows.to_pydict()
    for position, article_id in enumerate(data["article_id"]):
        outcome = outcomes.get(article_id)
        if outcome is None:
            data["content_source"][position] = "feed"
            data["page_status"][position] = SKIPPED
            continue
        _apply(data, position, outcome)
    return pa.RecordBatch.from_pydict(data, schema=rows.schema)


def _apply(data: dict[str, list[object]], position: int, outcome: PageOutcome) -> None:
    result, article = outcome.result, outcome.article
    data["page_url"][position] = result.final_url or result.request.url
    data["page_fetched_at"][position] = result.fetched_at
    feed_text = data["content_text"][position] or data["summary_text"][position]
    if article is None:
        data["content_source"][position] = "feed"
        data["page_status"][position] = result.status
        return
    if article.status != "ok" or not article.text:
        data["content_source"][position] = "feed"
        data["page_status"][position] = article.status
        return
    data["page_status"][position] = result.status
    if len(article.text) > len(str(feed_text or "")):
        if data["summary_text"][position] is None:
            data["summary_text"][position] = feed_text
        data["content_text"][position] = article.text
        data["content_html"][position] = article.html
        data["content_source"][position] = "page"
    else:
        data["content_source"][position] = "feed"
    if data["published_at"][position] is None and article.published_at is not None:
        published = article.published_at.astimezone(UTC)
        data["published_at"][position] = published
        data["date_source"][position] = PAGE_DATE_SOURCE
        data["published_date"][position] = date(published.year, published.month, published.day)
