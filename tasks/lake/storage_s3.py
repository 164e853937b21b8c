"""S3 (and any S3-compatible store) behind the ``ObjectStore`` protocol, with conditional writes.

Write-once objects use ``If-None-Match: *``; state uses ``If-Match: <etag>``. Credentials come from
the standard AWS chain (environment, profile, instance role) and never pass through feedlake's
settings, logs or errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from feedlake.tasks.errors import StoreError, StoreTransientError

log = logging.getLogger(__name__)

# S3 answers these when the request may succeed if sent again.
TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ConditionalRequestConflict",
        "500",
        "502",
        "503",
        "504",
    }
)
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412"})
MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing slash)."""

    bucket: str
    prefix: str

    def key(self, relative: str) -> str:
        """The full object key of a lake-relative key."""
        return f"{self.prefix}/{relative}" if self.prefix else relative


class S3Store:
    """An object store in an S3 bucket under a prefix."""

    def __init__(self, location: S3Location, client: Any, session: Any = None) -> None:
        self.location = location
        self._client = client
        self._session = session

    def get(self, key: str) -> bytes | None:
        """Return the object's bytes, or None if there is no such key."""
        found = self.get_versioned(key)
        return None if found is None else found[0]

    def get_versioned(self, key: str) -> tuple[bytes, str] | None:
        """Return the object's bytes and ETag, or None if there is no such key."""
        try:
            response = self._call("get", key, "get_object", Key=self.location.key(key))
        except _Missing:
            return None
        return bytes(response["Body"].read()), str(response["ETag"])

    def put(self, key: str, data: bytes) -> None:
        """Write an object, replacing any previous one (S3 PUTs are atomic)."""
        self._call("write", key, "put_object", Key=self.location.key(key), Body=data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Write an object only if the key is free (``If-None-Match: *``)."""
        return self._conditional_put(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, etag: str | None) -> bool:
        """Replace an object only if its ETag is still ``etag`` (None: only if absent)."""
        if etag is None:
            return self.put_if_absent(key, data)
        return self._conditional_put(key, data, IfMatch=etag)

    def delete(self, key: str) -> None:
        """Remove an object; removing a missing key is not an error."""
        try:
            self._call("delete", key, "delete_object", Key=self.location.key(key))
        except _Missing:
            return

    def list(self, prefix: str) -> list[str]:
        """Return every key that starts with ``prefix``, sorted."""
        full = self.location.key(prefix)
        strip = len(self.location.prefix) + 1 if self.location.prefix else 0
        keys: list[str] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            response = self._call("list", prefix, "list_objects_v2", Prefix=full, **extra)
            keys.extend(str(item["Key"])[strip:] for item in response.get("Contents", []))
            if not response.get("IsTruncated"):
                return sorted(keys)
            token = response.get("NextContinuationToken")

    def uri(self, key: str = "") -> str:
        """Return the ``s3://`` URL of ``key``."""
        path = self.location.key(key) if key else self.location.prefix
        return f"s3://{self.location.bucket}/{path}".rstrip("/")

    def delta_options(self) -> dict[str, str]:
        """delta-rs storage options for this bucket: the client's endpoint, region and addressing,
        and the credentials boto3 resolved (environment, profile or role). They are handed to
        delta-rs in memory only: no log, error or object ever holds them."""
        endpoint = str(self._client.meta.endpoint_url)
        config = self._client.meta.config
        addressing = (config.s3 or {}).get("addressing_style", "auto")
        options = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": self._client.meta.region_name or "us-east-1",
            "AWS_ALLOW_HTTP": "true" if endpoint.startswith("http://") else "false",
            # A custom endpoint (MinIO, moto, Ceph) takes paths unless told otherwise.
            "AWS_VIRTUAL_HOSTED_STYLE_REQUEST": "true" if addressing == "virtual" else "false",
        }
        credentials = self._session.get_credentials() if self._session is not None else None
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            options["AWS_ACCESS_KEY_ID"] = frozen.access_key
            options["AWS_SECRET_ACCESS_KEY"] = frozen.secret_key
            if frozen.token:
                options["AWS_SESSION_TOKEN"] = frozen.token
        return options

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> bool:
        try:
            self._call("write", key, "put_object", Key=self.location.key(key), Body=data, **condition)
        except _PreconditionFailed:
            return False
        return True

    def _call(self, action: str, key: str, method: str, **params: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self._client, method)(Bucket=self.location.bucket, **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in MISSING_CODES:
                raise _Missing from None
            if code in PRECONDITION_CODES:
                raise _PreconditionFailed from None
            reason = f"cannot {action} {self.uri(key)}: {code or status}"
            if code in TRANSIENT_CODES or (isinstance(status, int) and status >= 500):
                raise StoreTransientError(reason, status=status) from None
            raise StoreError(f"{reason} ({error.get('Message', 'no message')})", status=status) from None
        except BotoCoreError as exc:
            # Connection resets, timeouts, closed connections: botocore already retried them.
            raise StoreTransientError(f"cannot {action} {self.uri(key)}: {type(exc).__name__}") from None


class _Missing(Exception):
    pass


class _PreconditionFailed(Exception):
    pass


def open_s3_store(
    url: str,
    *,
    endpoint_url: str | None,
    region: str | None,
    addressing_style: str,
    max_attempts: int,
) -> S3Store:
    """Open ``s3://bucket/prefix`` with a boto3 client configured from settings and AWS env."""
    import boto3
    from botocore.config import Config

    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise StoreError(f"lake URL {url!r} names no bucket; use s3://bucket/prefix")
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        s3={"addressing_style": addressing_style},
        connect_timeout=10,
        read_timeout=60,
        # Commits write data files from several threads (feedlake.tasks.lake.commit.WRITE_THREADS) at once.
        max_pool_connections=32,
    )
    session = boto3.session.Session()
    client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    return S3Store(S3Location(bucket, prefix.strip("/")), client, session)
