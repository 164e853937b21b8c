"""SSRF guard: a feed URL, and every redirect hop, must be http(s) to a public address.

Loopback, private, link-local, multicast and reserved addresses are refused unless the setting
``allow_private_networks`` allows them (the demo and tests serve feeds on loopback). Cloud
metadata endpoints stay refused even then: a feed URL has no business there.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from tasks.errors import FetchTerminalError

METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200")
)
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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


async def check_fetch_url(url: str, allow_private: bool, source_id: str) -> None:
    """Raise FetchTerminalError unless ``url`` is http(s) and every address of its host is allowed."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise FetchTerminalError(
            f"refused scheme {parts.scheme!r}: only http and https", source_id=source_id, url=url
        )
    host = parts.hostname
    if not host:
        raise FetchTerminalError("URL has no host", source_id=source_id, url=url)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or 443, type=socket.SOCK_STREAM
            )
        except OSError:
            return  # unresolvable: let the HTTP client report the connection error (transient)
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        reason = refusal(address, allow_private)
        if reason is not None:
            hint = (
                "" if address in METADATA_ADDRESSES else " (FEEDLAKE_ALLOW_PRIVATE_NETWORKS=true allows it)"
            )
            raise FetchTerminalError(
                f"refused: {host} resolves to {reason}{hint}", source_id=source_id, url=url
            )
