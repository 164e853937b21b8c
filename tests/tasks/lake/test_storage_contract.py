"""The ObjectStore contract, run against both implementations: a folder and a real S3 server."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.tasks.lake.storage import ObjectStore, open_store


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(str(tmp_path / "lake"))
    return open_store(request.getfixturevalue("s3_lake"))


def test_round_trip_and_listing(store: ObjectStore) -> None:
    store.put("a/b/one.json", b"1")
    store.put("a/two.json", b"2")
    store.put("ab.json", b"3")
    assert store.get("a/b/one.json") == b"1"
    assert store.get("missing") is None
    assert store.list("a/") == ["a/b/one.json", "a/two.json"]
    assert store.list("a") == ["a/b/one.json", "a/two.json", "ab.json"]
    store.delete("a/two.json")
    store.delete("a/two.json")
    assert store.list("a/") == ["a/b/one.json"]


def test_put_if_absent_is_write_once(store: ObjectStore) -> None:
    assert store.put_if_absent("k", b"first")
    assert not store.put_if_absent("k", b"second")
    assert store.get("k") == b"first"


def test_put_if_match_is_compare_and_swap(store: ObjectStore) -> None:
    assert store.put_if_match("state", b"v1", None)
    assert not store.put_if_match("state", b"again", None)
    data, etag = store.get_versioned("state") or (b"", "")
    assert data == b"v1"
    assert store.put_if_match("state", b"v2", etag)
    # The ETag read before the last write is stale now: the write must be refused.
    assert not store.put_if_match("state", b"v3", etag)
    assert store.get("state") == b"v2"


def test_listing_pages_past_one_thousand_keys(store: ObjectStore) -> None:
    for i in range(1005):
        store.put(f"many/{i:05d}", b"")
    listed = store.list("many/")
    assert len(listed) == 1005 and listed[0] == "many/00000" and listed[-1] == "many/01004"


def test_uri_names_the_lake(store: ObjectStore) -> None:
    assert store.uri("articles").endswith("/lake/articles")
