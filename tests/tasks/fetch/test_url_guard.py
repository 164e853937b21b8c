"""Which addresses the SSRF guard refuses, with and without allow_private_networks."""

from __future__ import annotations

import ipaddress

import pytest

from feedlake.tasks.fetch.url_guard import refusal

PRIVATE = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.10",
    "169.254.1.1",
    "::1",
    "fe80::1",
    "::ffff:127.0.0.1",
]
METADATA = ["169.254.169.254", "fd00:ec2::254", "169.254.170.2", "::ffff:169.254.169.254"]
PUBLIC = ["8.8.8.8", "140.82.112.3", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_refused_by_default_allowed_on_request(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert refusal(ip, allow_private=False) is not None
    assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize("address", METADATA)
def test_cloud_metadata_always_refused(address: str) -> None:
    ip = ipaddress.ip_address(address)
    assert "metadata" in (refusal(ip, allow_private=False) or "")
    assert "metadata" in (refusal(ip, allow_private=True) or "")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None


@pytest.mark.parametrize("address", ["224.0.0.1", "0.0.0.0", "240.0.0.1"])
def test_multicast_reserved_and_unspecified_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is not None
