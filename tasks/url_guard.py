"""SSRF guard: a feed URL, and every redirect hop, must be a well-formed http(s) URL to a public address.

The URL is checked whole (scheme, host, IDNA, port range) and its host resolved once; the fetch
then connects to exactly the addresses vetted here (``tasks.pinned_transport``), so a DNS answer
that changes between check and connect cannot reach a refused address. A host that does not
resolve is an error naming it.

Loopback, private, link-local, multicast and reserved addresses are refused unless the setting
``allow_private_networks`` allows them (the demo and tests serve feeds on loopback). Cloud
metadata endpoints stay refused even then: a feed URL has no business there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from tasks.errors import FetchTerminalError, FetchTransientError

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS label after IDNA encoding (underscore tolerated: some real feed hosts use it).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")

# Resolves (host, port) to the addresses a connection may go to; swappable for tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class VettedUrl:
    """A URL that passed the guard, with the only addresses the fetch may connect to."""

    url: httpx.URL
    host: str  # ASCII (IDNA) form, as the HTTP client names the connection's host
    addresses: tuple[str, ...]


def refusal(address: IpAddress, allow_private: bool) -> str | None:
    """Why a request to ``address`` is refused, or None if it is allowed."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if allow_private:
        return None
    if address.is_loopback or address.is_private or address.is_link_local:
        return f"{address} is a loopback, private or link-local address"
    if address.is_multicast or address.is_reserved or address.is_unspecified:
        return f"{address} is not a public unicast address"
    return None


async def resolve_host(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (raises OSError if none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_fetch_url(url: str, source_id: str) -> tuple[httpx.URL, str, int]:
    """Parse ``url`` completely (scheme, host, IDNA, port); return it, its ASCII host and port."""

    def refuse(reason: str) -> FetchTerminalError:
        return FetchTerminalError(reason, source_id=source_id, url=url)

    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise refuse(f"invalid URL ({exc})") from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise refuse(f"refused scheme {parsed.scheme!r}: only http and https")
    if not host:
        raise refuse("URL has no host")
    port = parsed.port if parsed.port is not None else DEFAULT_PORTS[parsed.scheme]
    if not 0 < port <= 65535:
        raise refuse(f"port {port} is out of range (1-65535)")
    if not _is_ip(host) and not _is_host_name(host):
        raise refuse(f"invalid host name {host!r}")
    return parsed, host, port


async def check_fetch_url(
    url: str, allow_private: bool, source_id: str, resolve: Resolver = resolve_host
) -> VettedUrl:
    """Vet ``url``: well-formed http(s), and every address of its host allowed; raise otherwise."""
    parsed, host, port = parse_fetch_url(url, source_id)
    if _is_ip(host):
        addresses = [host]
    else:
        try:
            addresses = await resolve(host, port)
        except (OSError, UnicodeError) as exc:
            # Transient: most lookup failures are a resolver or network hiccup; health backs off.
            raise FetchTransientError(
                f"could not resolve host {host} ({exc})", source_id=source_id, url=url
            ) from None
        if not addresses:
            raise FetchTransientError(f"host {host} resolved to no address", source_id=source_id, url=url)
    for text in addresses:
        address = ipaddress.ip_address(text)
        reason = refusal(address, allow_private)
        if reason is not None:
            hint = (
                "" if address in METADATA_ADDRESSES else " (FEEDLAKE_ALLOW_PRIVATE_NETWORKS=true allows it)"
            )
            raise FetchTerminalError(
                f"refused: {host} resolves to {reason}{hint}", source_id=source_id, url=url
            )
    return VettedUrl(url=parsed, host=host, addresses=tuple(dict.fromkeys(addresses)))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _is_host_name(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_LABEL.fullmatch(label) for label in name.split("."))
