"""DNS rebinding cannot slip through a proxy (review H2). The proxy runs with its own
/etc/hosts (a private mount namespace), so it resolves `localhost` to a "secret" service on
127.0.0.52 while the crawler resolves it to the site on 127.0.0.1: exactly the two answers of
a rebinding DNS. The crawler must tell the proxy the address it judged, never the name."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from harvester.crawl.fetcher import Fetcher
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import Proxy
from harvester.spec import Limits
from tests.conftest import PPROXY, free_port, wait_listening
from tests.webtest import start

SITE, SECRET, PROXY = "127.0.0.1", "127.0.0.52", "127.0.0.53"


class _Named(BaseHTTPRequestHandler):
    """Answers with the server's name and records the Host header it was sent."""

    def do_GET(self) -> None:
        self.server.hosts.append(self.headers["Host"])  # type: ignore[attr-defined]
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _server(host: str, port: int, name: str, tls: ssl.SSLContext | None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Named)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.name = name  # type: ignore[attr-defined]
    server.hosts = []  # type: ignore[attr-defined]
    return start(server)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module", params=["http", "socks5"])
def rebinding_proxy(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A pproxy whose /etc/hosts says `localhost` is the secret service's address."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("a private mount namespace needs root")
        pytest.skip("a private mount namespace needs root")
    hosts = tmp_path_factory.mktemp("rebind") / "hosts"
    hosts.write_text(f"{SECRET} localhost\n")
    port = free_port(PROXY)
    listen = f"{request.param}://{PROXY}:{port}"
    script = 'mount --bind "$1" /etc/hosts && shift && exec "$@"'
    proc = subprocess.Popen(
        ["unshare", "--mount", "sh", "-c", script, "-", str(hosts),
         sys.executable, "-c", PPROXY, "-l", listen],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_listening(PROXY, port, proc)
    yield listen
    proc.terminate()
    proc.wait(5)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_proxy_is_told_the_judged_address_not_the_name(
    rebinding_proxy: str, ca: trustme.CA, tmp_path: Path, scheme: str
) -> None:
    tls = None
    if scheme == "https":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(tls)
    port = free_port(SITE)
    site = _server(SITE, port, "public page", tls)
    secret = _server(SECRET, port, "secret", tls)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    # The guard lets the crawler reach the site and the proxy, nothing else on loopback.
    guard = NetworkGuard(False, [f"{SITE}/32", f"{PROXY}/32"])
    fetcher = Fetcher(Limits(), "test/1.0", guard, ca_file=str(ca_file))

    async def fetch() -> str:
        try:
            url = f"{scheme}://localhost:{port}/admin"
            return (await fetcher.fetch(url, proxy=Proxy(rebinding_proxy, 0))).text
        finally:
            await fetcher.aclose()

    try:
        text = asyncio.run(fetch())
    finally:
        for server in (site, secret):
            server.shutdown()
            server.server_close()
    assert text == "public page"
    assert secret.hosts == []  # type: ignore[attr-defined]
    assert site.hosts == [f"localhost:{port}"]  # type: ignore[attr-defined]
