"""The peer a data engineer would write instead of feedlake: feedparser + dlt's filesystem destination.

Run by bench/peers.py with the Python of its own virtual environment (dlt 1.31, feedparser,
requests; never feedlake's): ``peer_dlt.py URLS_FILE LAKE_DIR WORK_DIR``. Fetches every URL of
URLS_FILE in turn with requests, parses it with ``feedparser.parse``, and loads one row per entry
(a stable id: the guid, else the link, else a hash of title, date and text) into Parquet files
under LAKE_DIR through a dlt pipeline (append), as the dlt docs' RSS examples do. Prints one JSON
line: the rows loaded and the feeds that failed.
"""

from __future__ import annotations

import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt
import feedparser
import requests


def entry_row(feed_url: str, entry: Any) -> dict[str, Any]:
    """One entry as a row: the fields a reader of news feeds wants, and a stable id."""
    published = entry.get("published_parsed") or entry.get("updated_parsed")
    content = entry.get("content") or [{}]
    text = content[0].get("value") or entry.get("summary") or ""
    key = entry.get("id") or entry.get("link") or (entry.get("title", "") + str(published) + text)
    return {
        "id": hashlib.sha256(f"{feed_url}\n{key}".encode()).hexdigest()[:32],
        "feed_url": feed_url,
        "guid": entry.get("id"),
        "link": entry.get("link"),
        "title": entry.get("title"),
        "summary": entry.get("summary"),
        "content": text,
        "author": entry.get("author"),
        "tags": [t.get("term") for t in entry.get("tags") or [] if t.get("term")],
        "published_at": datetime(*published[:6], tzinfo=UTC) if published else None,
    }


def main() -> int:
    """Load every feed of the URLs file into the lake folder."""
    urls = Path(sys.argv[1]).read_text(encoding="utf-8").split()
    lake, work = Path(sys.argv[2]), Path(sys.argv[3])
    failed: list[str] = []
    session = requests.Session()

    @dlt.resource(name="articles", primary_key="id", write_disposition="append")
    def articles() -> Any:
        for url in urls:
            try:
                response = session.get(url, timeout=30)
                response.raise_for_status()
            except requests.RequestException:
                failed.append(url)
                continue
            parsed = feedparser.parse(response.content, response_headers=dict(response.headers))
            for entry in parsed.entries:
                yield entry_row(url, entry)

    pipeline = dlt.pipeline(
        pipeline_name="feeds",
        destination=dlt.destinations.filesystem(bucket_url=lake.as_uri()),
        dataset_name="news",
        pipelines_dir=str(work),
    )
    info = pipeline.run(articles(), loader_file_format="parquet")
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("articles", 0)
    print(json.dumps({"rows": rows, "failed": len(failed), "loads": len(info.loads_ids)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
