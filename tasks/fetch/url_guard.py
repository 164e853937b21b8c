"""SSRF guard: a feed URL, and every redirect hop, must be a well-formed http(s) URL to a public address.

The URL is checked whole (scheme, host, IDNA, port range) and its host resolved once; the fetch
then connects to exactly the addresses vetted here (``fetch.pinned_transport``), so a DNS answer
that changes between check and connect cannot reach a refused address. A host that does not
resolve is an error naming it. ``parse_fetch_url`` is the one rule for a well-formed feed URL: the
sources file check (``sources.catalog.url_problem``) applies it too, so a URL that passes the check is
one the fetch accepts, and the other way round.

Lookups run in a small thread pool of their own: the system resolver cannot be cancelled, so a
host whose DNS hangs keeps a thread until the resolver gives up. The fetch awaits each lookup
inside the source's deadline and walks away at the deadline; the lingering thread then occupies
this pool, never the event loop's default executor, so nothing else the process runs waits on it.

Error messages quote the URL as given, which may hold a placeholder's secret value: the fetch
stage redacts every error it reports (``feedlake.tasks.fetch.client``), this module does not know the sources.

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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import idna

from feedlake.tasks.errors import FetchTerminalError, FetchTransientError

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DEFAULT_PORTS = {"http": 80, "https": 443}
_SHOWN_CHARS = 80
# A DNS label after IDNA encoding (underscore tolerated: some real feed hosts use it).
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")

# Resolves (host, port) to the addresses a connection may go to; swappable for tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]
# Threads for DNS lookups. A source awaits at most one lookup at a time, and the global fetch
# concurrency bounds the sources in flight: room for those plus lookups still hanging after their
# source's deadline, without letting hostile hosts grow the process's threads without limit.
DNS_THREADS = 32
_DNS_POOL = ThreadPoolExecutor(max_workers=DNS_THREADS, thread_name_prefix="feedlake-dns")


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
    """Every address the system resolver gives for ``host`` (raises OSError if none), via the DNS pool."""
    infos = await asyncio.get_running_loop().run_in_executor(
        _DNS_POOL, lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    )
    return [str(info[4][0]) for info in infos]


def parse_fetch_url(url: str, source_id: str | None = None) -> tuple[httpx.URL, str, int]:
    """Parse ``url`` completely (scheme, host, IDNA, port); return it, its ASCII host and port.

    Raises FetchTerminalError whose reason (``url ...``) says what is wrong; the sources file
    check shows that reason as it is.
    """

    def refuse(reason: str) -> FetchTerminalError:
        return FetchTerminalError(f"url {reason}", source_id=source_id, url=url)

    try:
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii").lower()
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise refuse(f"is malformed ({exc})") from None
    if parsed.scheme not in DEFAULT_PORTS:
        shown = url if len(url) <= _SHOWN_CHARS else url[:_SHOWN_CHARS] + "..."
        raise refuse(f"must be an absolute http(s) URL, got {shown!r}")
    if not host:
        raise refuse("has no host")
    port = parsed.port if parsed.port is not None else DEFAULT_PORTS[parsed.scheme]
    if not 0 < port <= 65535:
        raise refuse(f"port {port} is out of range (1-65535)")
    if not _is_ip(host):
        problem = _host_name_problem(host)
        if problem is not None:
            raise refuse(f"host {host[:100]!r} is not a valid host name ({problem})")
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


def _host_name_problem(host: str) -> str | None:
    name = host[:-1] if host.endswith(".") else host
    if not 0 < len(name) <= 253:
        return "a name has 1 to 253 characters"
    for label in name.split("."):
        if not _LABEL.fullmatch(label):
            return f"label {label[:70]!r} is not letters, digits and inner hyphens, 1 to 63 of them"
        if label.startswith("xn--"):
            # An A-label must decode to a valid IDNA name, as a Unicode host must encode to one.
            try:
                idna.decode(label)
            except (idna.IDNAError, UnicodeError) as exc:
                return f"label {label!r} is not valid IDNA: {exc}"
    return None
