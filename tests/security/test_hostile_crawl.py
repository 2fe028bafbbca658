"""A crawl of the review's hostile pages (H3, M2) through a real `harvester serve`: deeply
nested HTML, a page of 100,000 links, a 15 MB sitemap and a ReDoS-shaped scope pattern. Each
page ends as a recorded outcome, and `/healthz`, polled from this process, stays about as
fast as at rest (its median against the idle median of the same run) and never stalls
(every answer well under 2 s, next to the 20 s the review saw). Then a job waiting on
everything at once (a hung download, a 59 s Crawl-delay, a parse with no budget left) is
cancelled within seconds, and SIGTERM ends the service."""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import select
import signal
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tests.e2e.test_api import Service, run_serve
from tests.webtest import prose, start

HOST = "127.0.0.61"
NESTED = "<div><span><b><i>"  # unclosed: lexbor's time grows with the square of their count


def _sitemap(origin: str) -> bytes:
    """About 15 MB of XML (300,000 URLs), gzipped."""
    urls = "".join(f"<url><loc>{origin}/s/{i}</loc></url>" for i in range(300_000))
    xml = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    return gzip.compress(xml.encode(), 1)


class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Site
    pages: ClassVar[dict[str, tuple[str, bytes]]] = {}

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.append(self.path)
        if self.path == "/hang":
            self._hang()
            return
        ctype, body = self.pages.get(self.path, ("text/html", b"<html>no such page</html>"))
        status = 200 if self.path in self.pages else 404
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _hang(self) -> None:
        """Answer nothing until released; note when the client hangs up."""
        while not self.server.release.wait(0.1):
            readable, _, _ = select.select([self.connection], [], [], 0)
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                self.server.hung_up.append(time.monotonic())
                return


class _Site(ThreadingHTTPServer):
    daemon_threads = True
    release: threading.Event
    seen: list[str]
    hung_up: list[float]
    origin: str


def _site(robots: str, host: str = HOST) -> _Site:
    """The hostile pages on `host`; `{origin}` in `robots` is replaced by the site's."""

    class Handler(_Hostile):
        pass

    server = _Site((host, 0), Handler)
    server.release, server.seen, server.hung_up = threading.Event(), [], []
    server.origin = origin = f"http://{host}:{server.server_address[1]}"
    article = f"<html><body><article><p>{prose(random.Random(3), 200)}</p></article>"
    links = "".join(f'<a href="/l/{i}">{i}</a>' for i in range(100_000))
    pages = {
        "/robots.txt": ("text/plain", robots.replace("{origin}", origin).encode()),
        "/": ("text/html", (article + '<a href="/deep">d</a><a href="/nested">n</a>'
                            '<a href="/links">l</a><a href="/tags">t</a>'
                            '<a href="/slow-parse">s</a><a href="/hang">h</a>'
                            '<a href="/x/' + "a" * 40 + '!">redos</a>').encode()),
        "/deep": ("text/html", (article + NESTED * 30_000).encode()),
        "/nested": ("text/html", (article + "<div>" * 100_000).encode()),
        "/slow-parse": ("text/html", (article + NESTED * 50_000).encode()),
        "/links": ("text/html", (article + links).encode()),
        "/tags": ("text/html", (article + "<b>" * 300_000).encode()),
        "/sitemap.xml": ("application/gzip", _sitemap(origin)),
    }  # fmt: skip
    Handler.pages = pages
    start(server)
    return server


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    yield from run_serve(tmp_path, f"sqlite:///{tmp_path}/h.db")


def _poll_health(url: str, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            assert client.get(url + "/healthz").status_code == 200
            latencies.append(time.monotonic() - started)
            stop.wait(0.05)


def _wait(api: httpx.Client, job_id: str, states: set[str], seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job: dict[str, Any] = api.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}"
        time.sleep(0.2)


def _outcomes(api: httpx.Client, job_id: str) -> dict[str, tuple[str, str | None, str | None]]:
    """Path → (outcome, reason, dropped) of every URL of the job."""
    found: dict[str, tuple[str, str | None, str | None]] = {}
    while True:
        page = api.get(f"/v1/jobs/{job_id}/pages", params={"offset": len(found), "limit": 500})
        items = page.json()["items"]
        for p in items:
            path = "/" + p["url"].split("/", 3)[3]
            found[path] = (p["outcome"], p["reason"], p["dropped"])
        if not items:
            return found


def test_hostile_pages_end_as_outcomes_and_health_stays_fast(service: Service) -> None:
    site = _site("User-agent: *\nAllow: /\nSitemap: {origin}/sitemap.xml\n")
    spec = {
        "dataset": "hostile",
        "seeds": [site.origin + "/"],
        # (a+)+$ is ReDoS-shaped: RE2 runs it in linear time. The sitemap's URLs are out of
        # scope, so its parse and screening in the pool are all they cost.
        "scope": {"exclude": ["(a+)+$", "/hang", "/s/"]},
        "politeness": {"requests_per_second": 200, "concurrency_per_domain": 4},
        "limits": {"max_pages": 400},
        # The link page takes ~4 s (trafilatura's half of the budget, then the fallback);
        # the nested ones 9 s to minutes.
        "pipeline": {"extract": {"time_budget_s": 8}},
    }
    idle, stop, latencies = threading.Event(), threading.Event(), list[float]()
    baseline: list[float] = []
    idle_poller = threading.Thread(target=_poll_health, args=(service.url, idle, baseline))
    idle_poller.start()
    time.sleep(2)  # the service at rest: what a health check costs on this machine now
    idle.set()
    idle_poller.join()
    poller = threading.Thread(target=_poll_health, args=(service.url, stop, latencies))
    poller.start()
    try:
        with service.client() as api:
            job_id = api.post("/v1/jobs", json=spec).json()["id"]
            job = _wait(api, job_id, {"succeeded", "failed"}, 300)
            outcomes = _outcomes(api, job_id)
    finally:
        stop.set()
        poller.join()
        site.shutdown()
        site.server_close()
    assert job["state"] == "succeeded", (job["error"], job["counters"])
    for path in ("/deep", "/nested", "/slow-parse"):
        assert outcomes[path] == ("fetched", None, "pipeline/timeout"), path
    assert outcomes["/tags"] == ("fetched", None, "extract/too_complex")
    assert outcomes["/"][0] == "fetched" and outcomes["/"][2] is None
    stats = job["counters"]
    assert stats["links/truncated"] == 1
    assert stats["sitemap/fetched"] == 1
    assert outcomes["/x/" + "a" * 40 + "!"][0] is not None
    assert len(outcomes) == 400  # the cap held; the sitemap's parse stopped at it
    assert len(latencies) > 50 and len(baseline) > 10
    # Against the same service at rest, in this run: the typical check stays about as fast,
    # and none stalls anywhere near the 20 s the review saw (a 2-core machine running the
    # whole suite has its own pauses of a few hundred ms).
    assert statistics.median(latencies) < 5 * statistics.median(baseline) + 0.01, (
        statistics.median(latencies),
        statistics.median(baseline),
    )
    assert max(latencies) < 2.0, sorted(latencies)[-5:]


def test_a_cancel_ends_a_job_waiting_on_anything_and_sigterm_ends_the_service(
    service: Service,
) -> None:
    """One host's page would take minutes to parse and another never finishes downloading;
    a third host's page waits 59 s (its Crawl-delay) after its robots.txt."""
    busy = _site("User-agent: *\nAllow: /\n")
    delayed = _site("User-agent: *\nCrawl-delay: 59\n", "127.0.0.62")
    spec = {
        "dataset": "stuck",
        "seeds": [busy.origin + "/slow-parse", busy.origin + "/hang", delayed.origin + "/"],
        "scope": {"sitemaps": False, "allowed_domains": [HOST, "127.0.0.62"]},
        "politeness": {"requests_per_second": 10, "concurrency_per_domain": 2},
        "limits": {"read_timeout_s": 600, "timeout_s": 600},
        "pipeline": {"extract": {"time_budget_s": 600}},
    }
    seen = busy.seen, delayed.seen
    try:
        with service.client() as api:
            job_id = api.post("/v1/jobs", json=spec).json()["id"]
            deadline = time.monotonic() + 60
            while not {"/slow-parse", "/hang"} <= set(seen[0]) or not seen[1]:
                assert time.monotonic() < deadline, seen
                time.sleep(0.2)
            time.sleep(3)  # the parse is under way, the download hangs, the delay runs
            asked = time.monotonic()
            assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
            assert _wait(api, job_id, {"cancelled"}, 10)["state"] == "cancelled"
            # In-flight URLs get 10 s of grace, then everything they wait on is stopped: the
            # download is hung up and the parse's process killed (the pool goes idle).
            deadline = time.monotonic() + 60
            while not busy.hung_up:
                assert time.monotonic() < deadline, "the hung download was never abandoned"
                time.sleep(0.2)
            assert busy.hung_up[0] - asked < 20, busy.hung_up[0] - asked
            time.sleep(6)  # the killed process's replacement has started and warmed up
            before = _cpu_seconds_below(service.proc.pid)
            time.sleep(3)
            assert _cpu_seconds_below(service.proc.pid) - before < 1.5  # no parse is running
            assert seen[1] == ["/robots.txt"]  # the page's turn never came
            again = api.post("/v1/jobs", json={**spec, "dataset": "stuck2"}).json()["id"]
            _wait(api, again, {"running"}, 60)
        time.sleep(3)  # waiting on all three again
        service.proc.send_signal(signal.SIGTERM)
        assert service.proc.wait(60) == 0, service.log.read_text()[-3000:]
    finally:
        for site in (busy, delayed):
            site.release.set()
            site.shutdown()
            site.server_close()


def _cpu_seconds_below(pid: int) -> float:
    """CPU seconds used so far by the processes under `pid` (the pipeline's among them)."""
    total = 0.0
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for kid in child.read_text().split():
            with contextlib.suppress(FileNotFoundError):
                fields = Path(f"/proc/{kid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total
