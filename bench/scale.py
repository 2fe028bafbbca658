"""Scale benchmark: many hosts, several worker processes, one PostgreSQL catalog.

    python bench/scale.py [--hosts 200] [--pages-per-host 50] [--rate 0.5] [--workers 1 2 4]
                          [--modes polite unthrottled]

Serves a generated site of `hosts x pages-per-host` pages on loopback addresses 127.0.10.1…
(one asyncio process answering on every address, logging each request's host, arrival time
and path), then for each worker count starts that many `harvester worker` processes on a
fresh PostgreSQL schema and crawls the whole site as one job, twice:
 1. polite, at `--rate` requests/s per host: crawl time ÷ the politeness lower bound (the
    busiest host's requests ÷ rate) and the gaps shorter than 0.95/rate between any two
    requests to one host, whichever workers sent them;
 2. unthrottled: pages/s, and pages/s per busy core (CPU seconds of workers, pool and server);
and for both, catalog transactions per fetched page (PostgreSQL's own counters) and the peak
RSS of each worker process (its pipeline processes apart).
The job's pipeline drops every page at the selectolax pre-pass (a word minimum no page
reaches): this measures the crawl side; bench/pipeline.py measures the whole job.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

POSTGRES = os.environ.get(
    "HARVESTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
WORDS = [w for w in Path(__file__).read_text().split() if w.isalpha()]
HARVESTER = str(Path(sys.executable).with_name("harvester"))
MODES = ("polite", "unthrottled")


def address(i: int) -> str:
    return f"127.0.{10 + i // 250}.{1 + i % 250}"


# ---- the site ------------------------------------------------------------------------


def page(host: int, i: int, pages: int) -> bytes:
    rng = random.Random(host * 100_003 + i)
    links = [rng.randrange(pages) for _ in range(5)] + [(i + 1) % pages]
    anchors = "".join(f'<li><a href="/p{j}.html">more</a></li>' for j in links)
    prose = " ".join(rng.choice(WORDS) for _ in range(300))
    return (
        f"<html><head><title>Page {i}</title></head><body><article><h1>Page {i}</h1>"
        f"<p>{prose}</p></article><ul>{anchors}</ul></body></html>"
    ).encode()


async def serve(hosts: int, pages: int, port: int, log: Path) -> None:
    out = log.open("a", buffering=1)

    def handler(host: int):
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    path = head.split(b" ", 2)[1].decode()
                    out.write(f"{host} {time.time():.6f} {path}\n")
                    if path == "/":
                        status, body = 200, b'<html><a href="/p0.html">start</a></html>'
                    elif path.startswith("/p") and path.endswith(".html"):
                        status, body = 200, page(host, int(path[2:-5]), pages)
                    else:
                        status, body = 404, b"none"
                    writer.write(
                        f"HTTP/1.1 {status} X\r\nContent-Type: text/html\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()

        return handle

    servers = [await asyncio.start_server(handler(h), address(h), port) for h in range(hosts)]
    await asyncio.gather(*(s.serve_forever() for s in servers))


# ---- one measured run ------------------------------------------------------------------


def schema_url() -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with create_engine(POSTGRES).begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return schema, f"{POSTGRES}?options=-csearch_path%3D{schema}"


def transactions() -> int:
    with create_engine(POSTGRES).connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                    " WHERE datname = current_database()"
                )
            ).scalar()
            or 0
        )


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
            total += ticks / os.sysconf("SC_CLK_TCK")
        except (FileNotFoundError, IndexError):
            pass
    return total


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return []
    return [int(p) for p in out.split()]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(
    args: argparse.Namespace, workers: int, rate: float, port: int, log: Path, server_pid: int
) -> dict[str, float]:
    from harvester.catalog.db import open_catalog
    from harvester.jobs import crawled, create_job
    from harvester.spec import parse_spec

    schema, url = schema_url()
    sessions = open_catalog(url)
    work = Path(tempfile.mkdtemp(prefix="scale-"))
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": url,
        "HARVESTER_STORAGE_URL": str(work / "store"),
        "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
        "HARVESTER_LOG_FORMAT": "text",
    }
    procs = [
        subprocess.Popen(
            [HARVESTER, "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=(work / f"w{n}.log").open("w"),
        )
        for n in range(workers)
    ]
    with sessions() as session:
        while session.execute(text("SELECT count(*) FROM workers")).scalar() < workers:
            time.sleep(0.2)
            session.rollback()
    time.sleep(1.0)  # every worker has its pool up
    spec = parse_spec(
        {
            "dataset": "scale",
            "seeds": [f"http://{address(h)}:{port}/" for h in range(args.hosts)],
            "scope": {"max_depth": 10_000, "sitemaps": True},
            "limits": {"max_pages": 10_000_000, "global_concurrency": 512},
            "politeness": {
                "requests_per_second": rate,
                "concurrency_per_domain": 2,
                "respect_robots": True,
            },
            "pipeline": {"quality": {"min_words": 1_000_000}},
        }
    )
    log_start = log.stat().st_size
    pids = [p.pid for p in procs] + [c for p in procs for c in children(p.pid)] + [server_pid]
    cpu0, tx0 = cpu_seconds(pids), transactions()
    started, created = time.monotonic(), time.time()
    job_id = create_job(sessions, spec)
    while not crawled(sessions, job_id):
        time.sleep(0.2)
    elapsed, done = time.monotonic() - started, time.time()
    cpu = cpu_seconds(pids) - cpu0
    tx = transactions() - tx0
    rss = [peak_rss_mb(p.pid) for p in procs]
    with sessions() as session:
        fetched = session.execute(
            text("SELECT count(*) FROM frontier WHERE job_id = :j AND outcome = 'fetched'"),
            {"j": job_id},
        ).scalar()
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(60)
    with create_engine(POSTGRES).begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    with log.open() as f:
        f.seek(log_start)
        per_host: dict[int, list[float]] = defaultdict(list)
        for line in f:
            h, t, _ = line.split()
            per_host[int(h)].append(float(t))
    gaps = [b - a for times in per_host.values() for a, b in itertools.pairwise(sorted(times))]
    busiest = max(len(t) for t in per_host.values())
    first = min(min(t) for t in per_host.values())
    last = max(max(t) for t in per_host.values())
    return {
        "workers": workers,
        "seconds": elapsed,
        "fetched": fetched,
        "pages_per_s": fetched / elapsed,
        "per_core": fetched / max(cpu, 1e-9),
        "lower_bound_s": (busiest - 1) / rate if rate < 1000 else 0.0,
        "short_gaps": sum(1 for g in gaps if g < 0.95 / rate),
        "min_gap": min(gaps) if gaps else 0.0,
        "tx_per_page": tx / max(fetched, 1),
        "rss_mb": max(rss),
        "long_gaps": sum(1 for g in gaps if g > 1.5 / rate) if rate < 1000 else 0,
        "max_gap": max(gaps) if gaps else 0.0,
        "mean_gap": sum(gaps) / len(gaps) if gaps else 0.0,
        "start_s": first - created,
        "tail_s": done - last,
    }


def start_site(hosts: int, pages: int, port: int, log: Path) -> subprocess.Popen[bytes]:
    """The generated site in a process of its own (see `serve`)."""
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", "--hosts", str(hosts), "--pages-per-host",
         str(pages), "--port", str(port), "--log", str(log)]
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--pages-per-host", type=int, default=50)
    parser.add_argument("--rate", type=float, default=0.5)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.hosts, args.pages_per_host, args.port, args.log))
        return
    work = Path(tempfile.mkdtemp(prefix="scale-site-"))
    log = work / "hits.log"
    log.touch()
    port = 18080
    server = start_site(args.hosts, args.pages_per_host, port, log)
    time.sleep(2.0)
    print(
        f"site: {args.hosts} hosts x {args.pages_per_host} pages"
        f" = {args.hosts * args.pages_per_host} pages"
    )
    try:
        for label in args.modes:
            rate = args.rate if label == "polite" else 1000.0
            print(f"\n{label} (rate {rate}/s per host)")
            print(
                f"{'workers':>7} {'seconds':>8} {'fetched':>8} {'pages/s':>8} {'/core':>7} "
                f"{'÷bound':>7} {'gaps<.95/r':>10} {'tx/page':>8} {'RSS MB':>7} "
                f"{'start s':>7} {'tail s':>6} {'gaps>1.5/r':>10} {'max gap':>7} {'mean gap':>8}"
            )
            for n in args.workers:
                r = run(args, n, rate, port, log, server.pid)
                ratio = r["seconds"] / r["lower_bound_s"] if r["lower_bound_s"] else float("nan")
                # Unthrottled, gaps below 1 ms are the site's own timestamp jitter: not shown.
                short = r["short_gaps"] if label == "polite" else "-"
                print(
                    f"{n:>7} {r['seconds']:>8.1f} {r['fetched']:>8} {r['pages_per_s']:>8.1f} "
                    f"{r['per_core']:>7.1f} {ratio:>7.3f} {short:>10} "
                    f"{r['tx_per_page']:>8.2f} {r['rss_mb']:>7.0f} "
                    f"{r['start_s']:>7.1f} {r['tail_s']:>6.1f} {r['long_gaps']:>10} "
                    f"{r['max_gap']:>7.1f} {r['mean_gap']:>8.3f}",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
