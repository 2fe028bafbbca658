"""The network guard judges IPv6 forms that embed an IPv4 address as that address (review M5),
and refuses cloud platform endpoints. Decisions only: nothing here connects."""

from __future__ import annotations

import pytest

from harvester.crawl.netguard import NetworkGuard

REFUSED = {
    "64:ff9b::7f00:1": "loopback",  # NAT64 well-known prefix
    "64:ff9b::a9fe:a9fe": "link-local",
    "64:ff9b::a00:1": "private",
    "64:ff9b:1::a00:1": "private",  # local-use NAT64
    "2002:7f00:1::1": "loopback",  # 6to4
    "2002:a9fe:a9fe::1": "link-local",
    "2002:a00:1::1": "private",
    "::127.0.0.1": "loopback",  # IPv4-compatible
    "::a9fe:a9fe": "link-local",
    "::ffff:0:7f00:1": "loopback",  # SIIT
    "::ffff:0:a9fe:a9fe": "link-local",
    "::ffff:127.0.0.1": "loopback",  # IPv4-mapped
    "2001:0:4136:e378:8000:63bf:3fff:fdd2": "private",  # Teredo, client 192.0.2.45
    "168.63.129.16": "metadata",  # Azure WireServer
    "100.100.100.200": "metadata",  # Alibaba
    "fd00:ec2::254": "metadata",  # AWS over IPv6
    "169.254.169.254": "link-local",
    "::1": "loopback",
}


@pytest.mark.parametrize(("address", "why"), list(REFUSED.items()))
def test_embedded_and_platform_addresses_are_refused(address: str, why: str) -> None:
    assert NetworkGuard(False).refusal(address) == why


@pytest.mark.parametrize(
    "address", ["2606:4700::1111", "64:ff9b::808:808", "2002:808:808::1", "::8.8.8.8", "8.8.8.8"]
)
def test_public_addresses_in_those_forms_pass(address: str) -> None:
    assert NetworkGuard(False).refusal(address) is None
