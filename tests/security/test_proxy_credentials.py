"""Proxy credentials never leak through errors or listings (review L4): malformed proxy URLs
are refused without echoing them, and masking works on the raw string."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.config import Settings
from harvester.crawl.proxies import PoolConfig, mask_proxy
from harvester.service.keys import bootstrap

HOSTILE = [
    "http://bob:s3cr3t/x@proxy.example:8080",  # a / in the password: urllib sees a port
    "http://bob:pa#ss@proxy.example:8080",
    "http://bob:1234/pw@proxy.example:8080",  # once accepted, and shown unmasked
    "http://bob:pw@proxy.example:8080/?token=s3cr3t",
    "ftp://bob:s3cr3t@proxy.example:8080",
    "http://bob:s3cr3t@proxy.example:99999",
]


@pytest.mark.parametrize("url", HOSTILE)
def test_a_malformed_proxy_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        PoolConfig(proxies=["http://127.0.0.1:3128", url])
    message = str(caught.value.errors()[0]["msg"])
    assert "proxy #2" in message
    assert "s3cr3t" not in message and "bob" not in message and "pa" not in message.split()


@pytest.mark.parametrize(
    "url",
    ["http://alice:s%2Fcret@127.0.0.1:3128", "socks5://[::1]:1080", "https://h.example:8443/"],
)
def test_well_formed_proxies_pass(url: str) -> None:
    PoolConfig(proxies=[url])


def test_masking_works_on_the_raw_string() -> None:
    assert mask_proxy("http://bob:1234/pw@proxy.example:8080") == "http://***@proxy.example:8080"
    assert mask_proxy("socks5://a:b@h:1") == "socks5://***@h:1"
    assert mask_proxy("http://h:1") == "http://h:1"


def test_the_api_refuses_them_without_echoing_them(
    sqlite_catalog: sessionmaker[Session], tmp_path: Path
) -> None:
    app = create_app(Settings(storage_url=str(tmp_path / "store")), sessions=sqlite_catalog)
    key = bootstrap(sqlite_catalog, None)
    with TestClient(app) as client:
        for url in HOSTILE:
            answer = client.put(
                "/v1/proxy-pools/bad",
                json={"proxies": [url]},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert answer.status_code == 422, answer.text
            assert "s3cr3t" not in answer.text and "bob" not in answer.text
