"""LocalStore: atomic writes, write-once puts, listings, and lake URL parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedlake.tasks.errors import StoreError
from feedlake.tasks.lake.storage import LocalStore, open_store


def test_put_get_list_delete_round_trip(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a/b/one.json", b"1")
    store.put("a/two.json", b"2")
    assert store.get("a/b/one.json") == b"1"
    assert store.list("a/") == ["a/b/one.json", "a/two.json"]
    assert store.list("a/b") == ["a/b/one.json"]
    store.delete("a/b/one.json")
    assert store.get("a/b/one.json") is None
    assert not (tmp_path / "a" / "b").exists(), "empty folders are pruned like in an object store"
    store.delete("a/b/one.json")  # deleting twice is fine


def test_put_if_absent_never_overwrites(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert store.put_if_absent("k", b"first") is True
    assert store.put_if_absent("k", b"second") is False
    assert store.get("k") == b"first"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "lake")
    with pytest.raises(StoreError, match="escapes"):
        store.put("../outside", b"x")


def test_unwritable_lake_is_a_clear_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = open_store(str(blocker / "lake"))
    with pytest.raises(StoreError, match="cannot write"):
        store.put("x", b"1")


@pytest.mark.parametrize("url", ["./lake", "lake", "/abs/lake"])
def test_open_store_paths(url: str) -> None:
    store = open_store(url)
    assert isinstance(store, LocalStore)
    assert store.root == Path(url).resolve()


def test_open_store_file_url(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}/my%20lake")
    assert isinstance(store, LocalStore)
    assert store.root == tmp_path / "my lake"


def test_open_store_rejects_unknown_schemes() -> None:
    with pytest.raises(StoreError, match="unknown scheme"):
        open_store("gs://bucket/x")
