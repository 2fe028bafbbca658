"""The bundled demo site: a few dozen interlinked pages, robots.txt and a sitemap, served on
loopback so a crawl can be tried with no internet."""

from __future__ import annotations

import contextlib
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PAGES = Path(__file__).with_name("pages")
_TEMPLATED = {"/robots.txt": "text/plain", "/sitemap.xml": "application/xml"}


class _Handler(SimpleHTTPRequestHandler):
    """Static files; robots.txt and sitemap.xml get the server's own origin filled in."""

    def do_GET(self) -> None:
        content_type = _TEMPLATED.get(self.path)
        if content_type is None:
            super().do_GET()
            return
        host = self.headers.get("Host", "localhost")  # HTTP/1.1 clients always send it
        body = (PAGES / self.path.lstrip("/")).read_text().replace("{origin}", f"http://{host}")
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", f"{content_type}; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: a crawl would flood the terminal."""


def make_demo_server(host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A ready-to-serve HTTP server for the demo pages (port 0 picks a free one)."""
    return ThreadingHTTPServer((host, port), partial(_Handler, directory=str(PAGES)))


def serve_demo_site(server: ThreadingHTTPServer) -> None:
    """Serve the demo site until interrupted."""
    with server, contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
