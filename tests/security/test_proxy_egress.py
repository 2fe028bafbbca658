"""Egress through a proxy is judged like the direct path (review H1): a proxy on a refused
address is never connected to, and cannot be stored by address either. Decisions only for
non-loopback ranges; the loopback proxies are real (pproxy), and nothing reaches them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.config import Settings
from harvester.crawl.fetcher import Fetcher
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import Proxy
from harvester.errors import BlockedDestination
from harvester.service.keys import bootstrap
from harvester.spec import Limits
from tests.conftest import Proxies


@pytest.mark.parametrize("kind", ["http1", "socks"])
def test_a_proxy_on_a_refused_address_is_never_connected_to(proxies: Proxies, kind: str) -> None:
    proxy = Proxy(getattr(proxies, kind), 0)
    fetcher = Fetcher(Limits(), "test/1.0", NetworkGuard(False))

    async def fetch() -> None:
        try:
            await fetcher.fetch("http://127.0.0.2:9/", proxy=proxy)  # loopback either way
        finally:
            await fetcher.aclose()

    with pytest.raises(BlockedDestination) as caught:
        asyncio.run(fetch())
    assert caught.value.reason == "blocked/loopback"


@pytest.mark.parametrize(
    "address",
    ["http://127.0.0.1:3128", "socks5://[::ffff:10.0.0.1]:1080", "http://169.254.169.254:80",
     "http://localhost:3128", "http://[64:ff9b::a00:1]:3128"],
)  # fmt: skip
def test_a_pool_with_a_refused_proxy_address_cannot_be_stored(
    sqlite_catalog: sessionmaker[Session], tmp_path: Path, address: str
) -> None:
    app = create_app(Settings(storage_url=str(tmp_path / "store")), sessions=sqlite_catalog)
    key = bootstrap(sqlite_catalog, None)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        refused = client.put("/v1/proxy-pools/p", json={"proxies": [address]})
        assert refused.status_code == 422, refused.text
        assert "network guard" in refused.json()["error"]["message"]
        named = client.put("/v1/proxy-pools/p", json={"proxies": ["http://proxy.example:3128"]})
        assert named.status_code == 200  # judged when resolved, at each connection
