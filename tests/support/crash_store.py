"""An ObjectStore wrapper that dies at the N-th write, like a process killed between two steps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from feedlake.tasks.lake import commit
from feedlake.tasks.lake.storage import ObjectStore


class Killed(BaseException):
    """Raised in place of the N-th write: a BaseException, so no `except Exception` swallows it."""


class CrashingStore:
    """Delegates to a real store; the write numbered ``crash_at`` (0-based) never happens."""

    def __init__(self, inner: ObjectStore, crash_at: int | None = None) -> None:
        self.inner = inner
        self.crash_at = crash_at
        self.writes = 0
        # Commits write data files from several threads: count each write exactly once.
        self._counting = threading.Lock()

    def _write(self) -> None:
        with self._counting:
            if self.crash_at is not None and self.writes == self.crash_at:
                self.crash_at = None  # one kill; writes already started elsewhere still land
                raise Killed(f"killed before write {self.writes}")
            self.writes += 1

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        return self.inner.get_versioned(key)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def uri(self, key: str = "") -> str:
        return self.inner.uri(key)

    def delta_options(self) -> dict[str, str]:
        return self.inner.delta_options()

    def put(self, key: str, data: bytes) -> None:
        self._write()
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._write()
        return self.inner.put_if_absent(key, data)

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> bool:
        self._write()
        return self.inner.put_if_match(key, data, etag)

    def delete(self, key: str) -> None:
        self._write()
        self.inner.delete(key)


@contextmanager
def table_commits_counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Count each Delta table commit as a write of the CrashingStore it goes to, so a kill can land
    just before it too (delta-rs writes the commit itself, past the store's methods)."""
    real = commit.commit_files

    def counted(store: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(store, CrashingStore):
            store._write()
        return real(store, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(commit, "commit_files", counted)
        yield
