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
from datetime import UTC
from typing import TYPE_CHECKING

import pyarrow as pa

from feedlake.schemas.article import PAGE_DATE_SOURCE
from feedlake.tasks.fetch.pages import PageRequest, PageResult
from feedlake.tasks.full_text.teaser import wants_page

if TYPE_CHECKING:
    # Types only: the extractor (trafilatura) is imported by the first page a run extracts.
    from feedlake.tasks.full_text.extract import PageArticle

SKIPPED = "skipped"
# Statuses of a page that may give its body on a later poll (see page_may_recover).
_PASSING_STATUSES = frozenset({"timeout", "error", "http_408", "http_425", "http_429"})


@dataclass(frozen=True)
class PageOutcome:
    """What fetching and extracting one item's page gave."""

    result: PageResult
    article: PageArticle | None  # None when the page was not fetched with a body


@dataclass(frozen=True)
class PagePlan:
    """A page to fetch, and what its item says of the article (to guide the extraction)."""

    request: PageRequest
    title: str | None
    teaser: str | None


def page_plans(rows: pa.RecordBatch | pa.Table, mode: str) -> list[PagePlan]:
    """The pages to fetch for a source's new rows under ``full_text: mode`` (in row order)."""
    if mode == "never" or rows.num_rows == 0:
        return []
    columns = rows.select(["source_id", "article_id", "url", "title", "summary_text", "content_text"])
    plans = []
    for row in columns.to_pylist():
        teaser = feed_text(row)
        if row["url"] and wants_page(mode, row["title"], teaser):
            request = PageRequest(row["source_id"], row["article_id"], row["url"])
            plans.append(PagePlan(request, row["title"], teaser))
    return plans


def page_may_recover(status: object) -> bool:
    """Whether a page that ended with ``status`` is worth trying on a later poll: a timeout, a
    5xx, 408, 425 or 429 answer, or an unexpected error may pass; a 404, a robots.txt rule, a
    refused address, a page too large or one that is not an article will not."""
    text = str(status or "")
    return text in _PASSING_STATUSES or (text.startswith("http_5") and len(text) == 8)


def feed_text(row: Mapping[str, object]) -> str | None:
    """An item's own text as its feed gave it: the content, else the summary; the summary (where it
    was kept) once a page's body took the content's place."""
    if row.get("content_source") == "page":
        value = row["summary_text"]
    else:
        value = row["content_text"] or row["summary_text"]
    return None if value is None else str(value)


def use_page_body(row: dict[str, object], article: PageArticle) -> bool:
    """Put the extracted body in ``row`` when it beats the feed's own text; whether it did.

    Only a real body longer than the feed's text wins: a page that yields less than the teaser is
    not trusted. The feed's text stays in ``summary_text``.
    """
    feed = feed_text(row)
    if article.status != "ok" or not article.text or len(article.text) <= len(feed or ""):
        return False
    if row["summary_text"] is None:
        row["summary_text"] = feed
    row.update(content_text=article.text, content_html=article.html, content_source="page")
    return True


# The columns a page outcome may change, and those the rules read (feed_text, use_page_body).
_PAGE_COLUMNS = (
    "content_text",
    "content_html",
    "summary_text",
    "content_source",
    "page_url",
    "page_status",
    "page_fetched_at",
    "published_at",
    "date_source",
    "published_date",
)


def with_pages(rows: pa.RecordBatch, outcomes: Mapping[str, PageOutcome]) -> pa.RecordBatch:
    """``rows`` with each row's page outcome applied (rows without one are marked ``skipped``).

    Column-wise: only the page columns and those the rules read are touched, and a source without
    any outcome (``full_text: never``, or no teaser) gets its two constant columns and nothing else.
    """
    if not outcomes:
        rows = _set(rows, "content_source", pa.array(["feed"] * rows.num_rows, pa.string()))
        return _set(rows, "page_status", pa.array([SKIPPED] * rows.num_rows, pa.string()))
    values = {name: rows.column(name).to_pylist() for name in _PAGE_COLUMNS}
    for position, article_id in enumerate(rows.column("article_id").to_pylist()):
        row = {name: column[position] for name, column in values.items()}
        outcome = outcomes.get(str(article_id))
        if outcome is None:
            row.update(content_source="feed", page_status=SKIPPED)
        else:
            _apply(row, outcome)
        for name, column in values.items():
            column[position] = row[name]
    for name, column in values.items():
        rows = _set(rows, name, pa.array(column, rows.schema.field(name).type))
    return rows


def _set(rows: pa.RecordBatch, name: str, values: pa.Array) -> pa.RecordBatch:
    index = rows.schema.get_field_index(name)
    return rows.set_column(index, rows.schema.field(index), values)


def _apply(row: dict[str, object], outcome: PageOutcome) -> None:
    result, article = outcome.result, outcome.article
    row.update(page_url=result.final_url or result.request.url, page_fetched_at=result.fetched_at)
    row["content_source"] = "feed"
    if article is None:
        row["page_status"] = result.status
        return
    if article.status != "ok" or not article.text:
        row["page_status"] = article.status
        return
    row["page_status"] = result.status
    use_page_body(row, article)
    if row["published_at"] is None and article.published_at is not None:
        published = article.published_at.astimezone(UTC)
        row.update(published_at=published, date_source=PAGE_DATE_SOURCE, published_date=published.date())
