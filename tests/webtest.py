"""A test web: real HTTP servers on distinct loopback addresses, with a request log."""

from __future__ import annotations

import functools
import gzip
import random
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = [
    "river", "garden", "stone", "bridge", "winter", "market", "library", "trail", "heron",
    "meadow", "orchard", "lantern", "harvest", "ridge", "compost", "sparrow", "willow", "ferry",
    "granite", "season", "valley", "thunder", "basket", "cedar", "pepper", "signal", "harbor",
    "candle", "meadowlark", "quarry", "kettle",
]  # fmt: skip


@functools.cache
def gzip_bomb() -> bytes:
    """100 MiB of zeros, gzipped to about 100 KiB."""
    return gzip.compress(b"\0" * (100 * 1024 * 1024), 6)


STAMP_JITTER_S = 0.05
"""How late a site may stamp an arrival: the sites are threads of the test process, so a
stamp waits for the GIL, which a C call (an lxml parse, a garbage collection) can hold for
tens of milliseconds whatever the switch interval."""


def assert_spaced(times: list[float], rate: float) -> None:
    """Requests stamped at `times` kept to `rate`: for every pair, the span covers the gaps
    between them at 1/rate, less one stamp's lateness. A late stamp shortens one gap but
    cannot accumulate, so a limiter that lets requests through too fast fails over a
    window even where each single gap is within the jitter."""
    times = sorted(times)
    for i, first in enumerate(times):
        for k, later in enumerate(times[i + 1 :], start=1):
            assert later - first >= k / rate - STAMP_JITTER_S, (i, k, later - first, k / rate)


@dataclass
class Hit:
    """One request as the server saw it."""

    t: float
    path: str
    peer: str
    headers: dict[str, str]


@dataclass
class SiteState:
    """What a site serves and what it has seen."""

    pages: int = 20
    robots: str = "User-agent: *\nDisallow: /private/\n"
    robots_failures: int = 0
    """robots.txt answers 503 to this many requests first."""
    released: threading.Event = field(default_factory=threading.Event)
    """`/hang` answers once this is set (or after two minutes)."""
    sitemap: bool = True
    log: list[Hit] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    counters: dict[str, int] = field(default_factory=dict)
    delay_s: float = 0.0
    revisions: dict[int, int] = field(default_factory=dict)
    """Page number → revision: a changed page has new text and a new ETag."""
    gone: set[int] = field(default_factory=set)
    """Pages that answer 404 (linked to as before)."""
    failing: set[int] = field(default_factory=set)
    """Pages that answer 503 (a passing failure)."""
    close_every: int = 0
    """Close each connection after this many answers (0: keep it open)."""
    unvalidated: set[int] = field(default_factory=set)
    """Pages that answer without an ETag (and ignore If-None-Match)."""
    heavy: set[int] = field(default_factory=set)
    """Pages that answer 1 MB of tiny elements (under the pre-scan limit): parsing them takes
    far more than 64 MB."""
    copies: dict[int, int] = field(default_factory=dict)
    """Page number → the page whose text it repeats with one word changed (a near duplicate)."""

    def count(self, key: str) -> int:
        with self.lock:
            self.counters[key] = self.counters.get(key, 0) + 1
            return self.counters[key]

    def paths(self) -> list[str]:
        return [h.path for h in self.log]


def prose(rng: random.Random, words: int) -> str:
    """Sentences of 6-14 random words, capitalised and full-stopped: passes quality rules."""
    sentences, left = [], words
    while left > 0:
        n = min(left, rng.randint(6, 14))
        sentence = " ".join(rng.choice(WORDS) for _ in range(n))
        sentences.append(sentence.capitalize() + ".")
        left -= n
    return " ".join(sentences)


def page_html(i: int, pages: int, revision: int = 0, copy_of: int | None = None) -> str:
    rng = random.Random(i * 1000 + revision)
    links = sorted({(i * 7 + 1) % pages, (i + 1) % pages, (i * 3 + 2) % pages})
    if copy_of is None:
        text = prose(rng, 120)
    else:  # the other page's text with its last word changed: Jaccard of 5-grams > 0.95
        text = prose(random.Random(copy_of * 1000), 120)[:-1] + " lantern."
    anchors = "".join(f'<li><a href="/page/{j}">page {j}</a></li>' for j in links)
    return (
        f"<!DOCTYPE html><html><head><title>Page {i}</title></head><body>"
        f"<nav><a href='/'>home</a></nav><article><h1>Page {i}</h1><p>{text}</p></article>"
        f"<ul>{anchors}</ul></body></html>"
    )


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SiteServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes | str = b"",
        ctype: str = "text/html; charset=utf-8",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.answered = getattr(self, "answered", 0) + 1
        every = self.server.state.close_every
        if every and self.answered % every == 0:
            headers = {**(headers or {}), "Connection": "close"}
            self.close_connection = True
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        st = self.server.state
        with st.lock:
            st.log.append(
                Hit(time.monotonic(), self.path, self.client_address[0], dict(self.headers.items()))
            )
            st.active += 1
            st.max_active = max(st.max_active, st.active)
        try:
            if st.delay_s:
                time.sleep(st.delay_s)
            self.route(st)
        finally:
            with st.lock:
                st.active -= 1

    def route(self, st: SiteState) -> None:
        path = self.path.split("?")[0]
        origin = f"http://{self.headers.get('Host')}"
        if path == "/robots.txt":
            if st.robots_failures > 0:
                st.robots_failures -= 1
                self._send(503, "down", "text/plain")
            elif st.robots == "500":
                self._send(500, "oops", "text/plain")
            elif st.robots == "404":
                self._send(404, "none", "text/plain")
            else:
                body = st.robots + (f"Sitemap: {origin}/sitemap.xml\n" if st.sitemap else "")
                self._send(200, body, "text/plain")
        elif path == "/sitemap.xml" and st.sitemap:
            self._send(
                200,
                '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/'
                f'schemas/sitemap/0.9"><sitemap><loc>{origin}/sitemap-pages.xml.gz</loc>'
                "</sitemap></sitemapindex>",
                "application/xml",
            )
        elif path == "/sitemap-pages.xml.gz" and st.sitemap:
            urls = "".join(f"<url><loc>{origin}/orphan/{i}</loc></url>" for i in range(3))
            xml = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
            self._send(200, gzip.compress(xml.encode()), "application/gzip")
        elif path == "/":
            # the first five pages and, like a blog's front page, the two newest
            shown = sorted({*range(min(st.pages, 5)), st.pages - 2, st.pages - 1})
            links = "".join(f'<a href="/page/{i}">{i}</a> ' for i in shown if i >= 0)
            links += '<a href="/private/secret">secret</a>'
            self._send(200, f"<html><body><h1>home</h1>{links}</body></html>")
        elif path.startswith("/page/"):
            number = int(path.rsplit("/", 1)[1])
            revision = st.revisions.get(number, 0)
            etag = f'"p{path}"' + (f"-r{revision}" if revision else "")
            if number in st.gone or number >= st.pages:
                self._send(404, "<html><body>gone</body></html>")
            elif number in st.failing:
                self._send(503, "<html><body>try later</body></html>")
            elif number in st.heavy:
                self._send(200, "<html><body>" + "<p>w" * 240_000 + "</body></html>")
            elif number not in st.unvalidated and self.headers.get("If-None-Match") == etag:
                self._send(304, headers={"ETag": etag})
            else:
                html = page_html(number, st.pages, revision, copy_of=st.copies.get(number))
                validated = number not in st.unvalidated
                self._send(200, html, headers={"ETag": etag} if validated else {})
        elif path.startswith("/orphan/") or path.startswith("/private/"):
            self._send(200, f"<html><body><p>{path}</p></body></html>")
        else:
            self.fault(st, path)

    def fault(self, st: SiteState, path: str) -> None:
        if path == "/slow":
            time.sleep(3)
            self._send(200, "<html>slow</html>")
        elif path == "/members":  # forbidden to everyone, through any proxy
            self._send(403, "<html><body>members only</body></html>")
        elif path == "/hang":
            st.released.wait(120)
            self._send(200, "<html>at last</html>")
        elif path == "/retry-after":
            if st.count(path) == 1:
                self._send(429, "slow down", headers={"Retry-After": "1"})
            else:
                self._send(200, "<html><body>ok after 429</body></html>")
        elif path == "/flaky":
            if st.count(path) <= 2:
                self._send(503, "busy")
            else:
                self._send(200, "<html><body>ok after 503</body></html>")
        elif path == "/always-503":
            self._send(503, "down")
        elif path == "/oversized":  # values wider than the catalog's columns and indexes
            links = [
                "/long?token=" + "q" * 4000,
                "http://" + "a" * 300 + ".example/",
                "http://" + "b" * 70 + ".example/",
                "/page/1",
            ]
            anchors = "".join(f'<a href="{u}">link</a> ' for u in links)
            self._send(
                200,
                f"<html><body><p>{prose(random.Random(7), 80)}</p>{anchors}</body></html>",
                ctype="text/html; charset=utf-8; profile=" + "x" * 400,
                headers={
                    "Last-Modified": "Mon, 30 Nov 2026 10:00:00 GMT" + " " * 5 + "z" * 100,
                    "ETag": '"' + "e" * 5000 + '"',
                },
            )
        elif path in ("/loop/a", "/loop/b"):
            self._send(302, headers={"Location": "/loop/b" if path == "/loop/a" else "/loop/a"})
        elif path == "/to-loopback":
            self._send(302, headers={"Location": f"http://127.0.0.1:{self.server.server_port}/"})
        elif path == "/to-metadata":
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/to-private":
            self._send(302, headers={"Location": "/private/secret"})
        elif path == "/to-other-domain":
            self._send(302, headers={"Location": "http://127.0.0.99:9/elsewhere"})
        elif path == "/big":
            self._send(200, "<html>" + "x" * (3 * 1024 * 1024) + "</html>")
        elif path == "/big-chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"<p>" + b"y" * 65536 + b"</p>"
            try:
                for _ in range(64):
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
        elif path == "/bomb":
            self._send(200, gzip_bomb(), "text/html", headers={"Content-Encoding": "gzip"})
        elif path == "/binary":
            self._send(200, bytes(range(256)) * 10, "application/octet-stream")
        elif path == "/no-type":
            self._send(200, b"\x89PNG\r\n\x1a\n\x00\x00\x00" + bytes(2000), "")
        elif path == "/wrong-charset":
            self._send(
                200,
                "<html><body><p>Café crème, déjà vu, naïve façade</p></body></html>".encode(
                    "cp1252"
                ),
                "text/html; charset=utf-8",
            )
        elif path == "/malformed":
            self._send(
                200,
                b"<html><body><p>broken <a href='/page/1'>one<div><a href=/page/2>"
                b"\xff\xfe<<<>>></table></html",
            )
        elif path == "/challenge":  # a Cloudflare-style interstitial
            self._send(
                200,
                "<html><head><title>Just a moment...</title></head><body>"
                "<script src='/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1'></script>"
                "</body></html>",
            )
        elif path == "/newsletter":  # an article with a captcha widget in its footer form
            text = prose(random.Random(11), 120)
            self._send(
                200,
                f"<html><body><article><h1>Notes</h1><p>{text}</p></article>"
                "<footer><form><div class='g-recaptcha' data-sitekey='x'></div>"
                "<div class='h-captcha'></div></form></footer></body></html>",
            )
        elif path == "/gone":
            self._send(404, "not here")
        else:
            self._send(404, "not found")


class SiteServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, host: str, state: SiteState) -> None:
        self.state = state
        super().__init__((host, 0), Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients hanging up mid-answer (timeouts, size limits) are expected here."""

    @property
    def origin(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class TlsSiteServer(SiteServer):
    """A `SiteServer` over HTTPS with the certificate `context` holds."""

    def __init__(self, host: str, state: SiteState, context: ssl.SSLContext) -> None:
        super().__init__(host, state)
        self.socket = context.wrap_socket(self.socket, server_side=True)

    @property
    def origin(self) -> str:
        host, port = self.server_address[:2]
        return f"https://{host}:{port}"


class Forbidding(BaseHTTPRequestHandler):
    """A 'proxy' that answers 403 to every request, as a banned proxy would."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _deny(self) -> None:
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(403)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"forbidden")

    do_GET = do_CONNECT = _deny


def start(server: ThreadingHTTPServer) -> ThreadingHTTPServer:
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
