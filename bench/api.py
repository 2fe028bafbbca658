"""API benchmark, open loop: latency of job, progress and manifest reads at a fixed request
rate while workers crawl at full speed.

    python bench/api.py [--seconds 30] [--hosts 40] [--pages-per-host 250]

Dashboards and scripts poll at their own pace whatever the server does, so requests are sent
on a fixed schedule (open loop) and each latency is measured from the moment the request was
due, not from when a client got round to sending it: a stalled server shows up in full
(no coordinated omission). Two deployments, each measured in the same run:
 1. `harvester api` in its own process and two `harvester worker`s on PostgreSQL, at
    `--split-rate` (200) requests/s;
 2. everything in one `harvester serve` on SQLite, at `--serve-rate` (50) requests/s.
The crawl is bench/scale.py's generated site, unthrottled. Prints requests sent, errors,
p50/p90/p99/max latency and the crawl's pages/s during the window.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from scale import ROOT, address, schema_url, start_site  # noqa: E402

sys.path.insert(0, str(ROOT))
from harvester.demo_site import make_demo_server  # noqa: E402

KEY = "hv_bench-admin-key"
HARVESTER = str(Path(sys.executable).with_name("harvester"))
PORT = 18090


class Connections:
    """Keep-alive HTTP/1.1 connections to one server, opened as needed. A bench client must
    cost little CPU next to the server it measures (httpx took more CPU than the API it
    called), so requests are written and read as raw bytes."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.opened: list[asyncio.StreamWriter] = []

    async def get(self, path: str) -> int:
        """GET `path`; the status code. A kept-alive connection the server has closed
        meanwhile is replaced by a new one (as any HTTP client does)."""
        while self.idle:
            try:
                return await self._get(*self.idle.pop(), path)
            except (OSError, asyncio.IncompleteReadError):
                continue
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.opened.append(writer)
        return await self._get(reader, writer, path)

    async def _get(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> int:
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {KEY}\r\n\r\n"
        writer.write(request.encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        if length is None:
            raise ValueError("the bench reads only responses with a Content-Length")
        await reader.readexactly(int(length.group(1)))
        self.idle.append((reader, writer))
        return int(head[9:12])

    def close(self) -> None:
        for writer in self.opened:
            writer.close()


async def open_loop(url: str, paths: list[str], rate: float, seconds: float) -> list[float]:
    """Latencies (s) of requests sent every 1/rate s, cycling through `paths`; a failed
    request counts as infinitely slow."""
    latencies: list[float] = []
    where = httpx.URL(url)
    connections = Connections(where.host, where.port or 80)

    async def one(path: str, due: float) -> None:
        try:
            ok = await connections.get(path) == 200
        except (OSError, ValueError, asyncio.IncompleteReadError):
            ok = False
        latencies.append(time.monotonic() - due if ok else float("inf"))

    start = time.monotonic()
    tasks = []
    for i in range(int(rate * seconds)):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    await asyncio.gather(*tasks)
    connections.close()
    return latencies


def report(label: str, latencies: list[float], pages_per_s: float) -> None:
    done = sorted(x for x in latencies if x != float("inf"))
    errors = len(latencies) - len(done)
    q = statistics.quantiles(done, n=100) if len(done) > 1 else [0.0] * 99
    print(
        f"{label}: {len(latencies)} requests, {errors} errors; latency p50 {q[49] * 1000:.0f} ms, "
        f"p90 {q[89] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, max {done[-1] * 1000:.0f} ms; "
        f"crawl {pages_per_s:.0f} pages/s meanwhile",
        flush=True,
    )


def wait_up(url: str) -> None:
    for _ in range(600):
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the API did not start")


def measure(
    url: str, rate: float, seconds: float, seeds: list[str], demo: str
) -> tuple[list[float], float]:
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=60)
    small = http.post(  # a snapshot whose manifest is read: the bundled demo site's
        "/v1/jobs",
        json={"dataset": "small", "seeds": [demo], "politeness": {"requests_per_second": 1000}},
    ).json()["id"]
    while http.get(f"/v1/jobs/{small}").json()["state"] not in ("succeeded", "failed"):
        time.sleep(0.5)
    spec = {
        "dataset": "big",
        "seeds": seeds,
        "scope": {"max_depth": 10_000},
        "politeness": {"requests_per_second": 1000, "concurrency_per_domain": 4},
        "pipeline": {"quality": {"min_words": 1_000_000}},
    }
    job = http.post("/v1/jobs", json=spec).json()["id"]

    def fetched() -> int:
        return int(http.get(f"/v1/jobs/{job}").json()["progress"]["fetched"])

    while fetched() < 200:  # past start-up
        time.sleep(0.2)
    paths = [f"/v1/jobs/{job}", "/v1/jobs?state=running", "/v1/datasets/small/snapshots/latest"]
    before, t0 = fetched(), time.monotonic()
    latencies = asyncio.run(open_loop(url, paths, rate, seconds))
    pages = (fetched() - before) / (time.monotonic() - t0)
    http.post(f"/v1/jobs/{job}/cancel")
    return latencies, pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--pages-per-host", type=int, default=250)
    parser.add_argument("--split-rate", type=float, default=200)
    parser.add_argument("--serve-rate", type=float, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harvester-api-"))
    log = work / "hits.log"
    site = start_site(args.hosts, args.pages_per_host, 18081, log)
    seeds = [f"http://{address(h)}:18081/" for h in range(args.hosts)]
    demo_site = make_demo_server("127.0.0.9", 0)
    threading.Thread(target=demo_site.serve_forever, daemon=True).start()
    demo = f"http://127.0.0.9:{demo_site.server_address[1]}/"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        _, database = schema_url()  # a fresh schema; dropped with the bench's database
        env = {
            **os.environ,
            "HARVESTER_DATABASE_URL": database,
            "HARVESTER_STORAGE_URL": str(work / "store-pg"),
            "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
            "HARVESTER_API_KEY": KEY,
        }
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        procs.append(subprocess.Popen([HARVESTER, "api", "--port", str(PORT)], env=env, **quiet))
        wait_up(f"http://127.0.0.1:{PORT}")
        procs += [subprocess.Popen([HARVESTER, "worker"], env=env, **quiet) for _ in range(2)]
        latencies, pages = measure(
            f"http://127.0.0.1:{PORT}", args.split_rate, args.seconds, seeds, demo
        )
        report(f"api apart + 2 workers (PostgreSQL), {args.split_rate:.0f} req/s", latencies, pages)
        for proc in procs:
            proc.terminate()
            proc.wait(60)
        procs.clear()

        env |= {
            "HARVESTER_DATABASE_URL": f"sqlite:///{work}/h.db",
            "HARVESTER_STORAGE_URL": str(work / "store"),
        }
        procs.append(subprocess.Popen([HARVESTER, "serve", "--port", str(PORT)], env=env, **quiet))
        wait_up(f"http://127.0.0.1:{PORT}")
        latencies, pages = measure(
            f"http://127.0.0.1:{PORT}", args.serve_rate, args.seconds, seeds, demo
        )
        report(f"one serve (SQLite), {args.serve_rate:.0f} req/s", latencies, pages)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
        site.terminate()
        site.wait()


if __name__ == "__main__":
    main()
