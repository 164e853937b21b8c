"""An httpx transport that connects only to addresses the SSRF guard vetted for the request.

httpx resolves a host again when it connects; a rebinding DNS server can answer the guard with a
public address and the connection with a private one. This transport's network backend never
resolves names: ``connect_tcp`` dials one of the addresses pinned (by ``pinned_addresses``) for
the host, and refuses a host with no pin. Only the TCP dial changes: the Host header and the TLS
server name still come from the URL, so virtual hosts and certificates work as before.

Written by hand because httpx and httpcore offer no resolver hook; the pin travels in a context
variable, so each request (each asyncio task) sees only its own vetted addresses.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator

import httpcore
import httpx

_PINS: contextvars.ContextVar[tuple[str, tuple[str, ...]] | None] = contextvars.ContextVar(
    "feedlake_pinned_addresses", default=None
)
SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]


@contextlib.contextmanager
def pinned_addresses(host: str, addresses: tuple[str, ...]) -> Iterator[None]:
    """Within this block, connections to ``host`` go to ``addresses`` only (tried in order)."""
    token = _PINS.set((host.lower(), addresses))
    try:
        yield
    finally:
        _PINS.reset(token)


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """A network backend that dials the pinned address of a host instead of resolving it."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Connect to the first reachable address pinned for ``host``; never resolve it here."""
        pin = _PINS.get()
        if pin is None or pin[0] != host.lower():
            raise httpcore.ConnectError(f"no vetted address for host {host}: refusing to resolve it")
        failure: Exception | None = None
        for address in pin[1]:
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # a pin always holds at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refuse: feeds are fetched over TCP only."""
        raise httpcore.ConnectError("unix sockets are not used for feeds")

    async def sleep(self, seconds: float) -> None:
        """Sleep as the wrapped backend does."""
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``httpx.AsyncHTTPTransport`` whose connections dial only pinned, vetted addresses."""

    def __init__(self, limits: httpx.Limits) -> None:
        ssl_context = httpx.create_ssl_context()
        super().__init__(verify=ssl_context, limits=limits)
        # httpx has no parameter for the network backend, so its pool is rebuilt with ours, with
        # the settings httpx gives it. No proxy: a proxy would dial hosts the guard never vetted.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedBackend(),
        )
