"""Object storage behind one narrow protocol: a local folder today, any S3-compatible store next.

``open_store(url)`` picks the implementation from the lake URL (``./path``, ``file:///abs``,
``s3://bucket/prefix``); everything above this module speaks only ``ObjectStore``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from feedlake.tasks.errors import StoreError, StoreTransientError
from feedlake.tasks.settings import FeedlakeSettings

LOCK_NAME = ".feedlake.lock"


class ObjectStore(Protocol):
    """Keys are ``/``-separated paths below the lake root; values are whole objects."""

    def get(self, key: str) -> bytes | None:
        """Return the object's bytes, or None if there is no such key."""
        ...

    def put(self, key: str, data: bytes) -> None:
        """Write an object atomically, replacing any previous one."""
        ...

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write an object only if the key is free; return False if it already existed."""
        ...

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Return the object's bytes and its ETag, or None if there is no such key."""
        ...

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> bool:
        """Replace an object only if its ETag is still ``etag`` (None: only if absent)."""
        ...

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing key is not an error."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Return every key that starts with ``prefix``, sorted."""
        ...

    def uri(self, key: str = "") -> str:
        """Return a URL for ``key`` that readers (DuckDB, pyarrow) understand."""
        ...

    def delta_options(self) -> dict[str, str]:
        """Storage options that let delta-rs reach this store (endpoint, region, credentials)."""
        ...


class LocalStore:
    """An object store in a local folder; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise StoreError(f"key {key!r} escapes the lake root")
        return path

    def get(self, key: str) -> bytes | None:
        """Return the object's bytes, or None if there is no such key."""
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {self.uri(key)}: {exc.strerror}") from exc

    def put(self, key: str, data: bytes) -> None:
        """Write an object atomically, replacing any previous one."""
        path = self._path(key)
        temp = self._write_temp(path, data)
        try:
            os.replace(temp, path)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {self.uri(key)}: {exc.strerror}") from exc

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write an object only if the key is free; return False if it already existed."""
        path = self._path(key)
        temp = self._write_temp(path, data)
        try:
            # link() fails if the target exists, so the create is atomic and never overwrites.
            os.link(temp, path)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise StoreError(f"cannot write {self.uri(key)}: {exc.strerror}") from exc
        finally:
            temp.unlink(missing_ok=True)

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Return the object's bytes and its ETag (a content digest), or None."""
        data = self.get(key)
        return None if data is None else (data, _etag(data))

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> bool:
        """Replace an object only if its ETag is still ``etag`` (None: only if absent)."""
        if etag is None:
            return self.put_if_absent(key, data)
        # Compare-and-swap under a lake-wide lock: other processes on this machine see it too.
        lock_path = self.root / LOCK_NAME
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with lock_path.open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                current = self.get_versioned(key)
                if current is None or current[1] != etag:
                    return False
                self.put(key, data)
                return True
        except OSError as exc:
            raise StoreError(f"cannot write {self.uri(key)}: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing key is not an error."""
        path = self._path(key)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {self.uri(key)}: {exc.strerror}") from exc
        # Object stores have no empty folders; pruning them keeps listings and readers alike.
        for parent in path.parents:
            if parent == self.root or self.root not in parent.parents:
                break
            try:
                parent.rmdir()
            except OSError:
                break

    def list(self, prefix: str) -> list[str]:
        """Return every key that starts with ``prefix``, sorted."""
        folder, _, _ = prefix.rpartition("/")
        start = self._path(folder) if folder else self.root
        if not start.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(start):
            for name in files:
                if name.startswith("."):  # temp files and the lock are not objects
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def uri(self, key: str = "") -> str:
        """Return a URL for ``key`` that readers (DuckDB, pyarrow) understand."""
        return (self.root / key).as_posix() if key else self.root.as_posix()

    def delta_options(self) -> dict[str, str]:
        """A local folder needs no storage options."""
        return {}

    def _write_temp(self, path: Path, data: bytes) -> Path:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            return Path(name)
        except OSError as exc:
            with contextlib.suppress(UnboundLocalError, OSError):
                Path(name).unlink(missing_ok=True)
            raise StoreError(f"cannot write under {self.uri()}: {exc.strerror or exc}") from exc


MAX_CAS_ATTEMPTS = 20


def update_object(
    store: ObjectStore, key: str, change: Callable[[bytes | None], bytes | None], what: str
) -> None:
    """Read-modify-write one object with If-Match, redoing ``change`` on a conflicting write.

    ``change`` gets the current body (None if absent) and returns the new body, or None to leave
    the object as it is.
    """
    for _ in range(MAX_CAS_ATTEMPTS):
        current = store.get_versioned(key)
        body = change(None if current is None else current[0])
        if body is None:
            return
        if replace_if_match(store, key, body, None if current is None else current[1]):
            return
    raise StoreTransientError(f"{what} kept changing under this run; try again")


def replace_if_match(store: ObjectStore, key: str, body: bytes, etag: str | None) -> bool:
    """``put_if_match``, also True when the write landed but only its answer was lost."""
    if store.put_if_match(key, body, etag):
        return True
    # A retried PUT whose first attempt succeeded is answered 412: the body tells them apart.
    return store.get(key) == body


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


def open_store(url: str, settings: FeedlakeSettings | None = None) -> ObjectStore:
    """Open the object store a lake URL names: ``./path``, ``/abs``, ``file:///abs``, ``s3://b/p``."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        path = unquote(parts.path) if parts.scheme == "file" else url
        if not path:
            raise StoreError(f"lake URL {url!r} names no folder")
        return LocalStore(Path(path).expanduser())
    if parts.scheme == "s3":
        from feedlake.tasks.lake.storage_s3 import open_s3_store

        settings = settings or FeedlakeSettings()
        return open_s3_store(
            url,
            endpoint_url=settings.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None,
            region=settings.s3_region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            addressing_style=settings.s3_addressing_style,
            max_attempts=settings.s3_max_attempts,
        )
    raise StoreError(f"lake URL {url!r} has an unknown scheme {parts.scheme!r}; use a path or s3://")


def decode_json_object(raw: bytes) -> dict[str, object] | None:
    """Parse a JSON object, or None if the bytes are not one."""
    try:
        value = json.loads(raw)
    except ValueError:  # not JSON, or not UTF-8 at all (UnicodeDecodeError)
        return None
    return value if isinstance(value, dict) else None
