"""Session fixtures: a real Prefect API, a real HTTP server for the captured feeds, corpus helpers."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.moto_server import free_port, moto_server
from tests.support.paths import CASES

__all__ = ["free_port"]  # imported by flow tests from here

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# Every feed in these tests is served on loopback, which the SSRF guard refuses by default.
os.environ.setdefault("FEEDLAKE_ALLOW_PRIVATE_NETWORKS", "true")
# All test feeds share one host (the loopback server); politeness gaps are tested on their own.
os.environ.setdefault("FEEDLAKE_PER_HOST_MIN_GAP_SECONDS", "0")

CORPUS = CASES / "corpus"
CENTCOM_FIXTURE = CASES / "centcom" / "centcom-press-releases.RSS.ashx.xml"


@dataclass(frozen=True)
class CorpusFile:
    """One row of the corpus manifest."""

    path: str
    items: int | None
    what: str

    @property
    def source_id(self) -> str:
        """A source id derived from the file path."""
        return re.sub(r"[^a-z0-9]+", "-", self.path.lower()).strip("-")[:64]


def read_manifest() -> list[CorpusFile]:
    """Every captured feed in tests/cases/corpus, with the item count the manifest states."""
    with (CORPUS / "MANIFEST.tsv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    files = []
    for row in rows:
        match = re.search(r"items=(\d+)", row["what_it_is"])
        files.append(CorpusFile(row["saved_path"], int(match.group(1)) if match else None, row["what_it_is"]))
    return files


@pytest.fixture(scope="session")
def manifest() -> list[CorpusFile]:
    """The corpus manifest."""
    return read_manifest()


@pytest.fixture(scope="session")
def snapshot_base_url() -> Iterator[str]:
    """A real HTTP server on loopback serving tests/cases (corpus and fixtures)."""
    from feedlake.tasks.demo.snapshot_server import serve_snapshots

    with serve_snapshots(CASES) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect server for the whole session (it takes 10-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def write_sources(path: Path, entries: list[tuple[str, str]], full_text: str = "never") -> Path:
    """Write a sources file with one news source per (id, url).

    ``full_text`` defaults to never: the captured feeds' items link to sites this machine cannot
    reach, and these tests are about the feeds; the full-text tests say ``auto`` or ``always``.
    """
    lines = ["sources:"]
    for source_id, url in entries:
        lines += [
            f"  - id: {source_id}",
            f'    url: "{url}"',
            f"    name: {source_id}",
            "    publisher: test",
            "    kind: news",
            f"    full_text: {full_text}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# Fake credentials for the local S3 server: they must never show up in logs, errors or the lake.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "feedlake-test-key-id",
    "AWS_SECRET_ACCESS_KEY": "feedlake-test-secret-DO-NOT-LEAK",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's standalone S3 server in its own process, speaking HTTP on loopback."""
    with moto_server() as endpoint:
        saved = {k: os.environ.get(k) for k in S3_ENV}
        os.environ.update(S3_ENV)
        try:
            yield endpoint
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


_BUCKETS = iter(range(1_000_000))


@pytest.fixture
def s3_lake(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the S3 server; returns the lake URL s3://<bucket>/lake."""
    import boto3

    bucket = f"feedlake-test-{next(_BUCKETS)}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    return f"s3://{bucket}/lake"
