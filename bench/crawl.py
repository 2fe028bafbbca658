"""Crawl benchmark: raw throughput, politeness efficiency and peak RSS, next to Scrapy.

    python bench/crawl.py [--pages-per-domain 2000] [--domains 3] [--rate 10]

Serves a generated site (pages of ~5 KB prose with 6 same-domain links each, robots.txt absent,
so 404 = allow all) from one process per loopback domain, then:
 1. raw: Harvester with no effective rate limit; Scrapy on the same site; pages/s and ratio;
 2. politeness: Harvester at `--rate` per domain over the domains (servers answer 429 when a
    request comes sooner than 0.95/rate after the previous one): achieved ÷ (rate·domains),
    minimum gap, gaps shorter than 0.95/rate, 429s, max per-domain rate; the same for Scrapy
    with DOWNLOAD_DELAY = 1/rate;
 3. peak RSS of the Harvester raw run.
Scrapy is installed on first run into bench/.venv-scrapy (bench-only, not a dependency).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import Popen

HERE = Path(__file__).resolve().parent
SCRAPY_VENV = HERE / ".venv-scrapy"
WORDS = [w for w in Path(__file__).read_text().split() if w.isalpha()]  # any prose will do

SPIDER_TEMPLATE = """
import scrapy{imports}
from urllib.parse import urlsplit
class Bench(scrapy.Spider):
    name = "bench"
    def __init__(self, seeds="", **kw):
        super().__init__(**kw)
        self.start_urls = seeds.split(",")
        self.allowed_domains = [urlsplit(u).hostname for u in self.start_urls]
    def parse(self, response):
        if not hasattr(response, "text"):
            return
        yield {item}
        for href in response.css("a::attr(href)").getall():
            if not href.startswith(("mailto:", "javascript:", "tel:", "#")):
                yield response.follow(href, self.parse)
"""
SPIDER = SPIDER_TEMPLATE.format(imports="", item='{"url": response.url}')


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def build_site(root: Path, pages: int, seed: int) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True)
    for i in range(pages):
        links = (
            "".join(f'<li><a href="/p{rng.randrange(pages)}.html">more</a></li>' for _ in range(5))
            + f'<li><a href="/p{(i + 1) % pages}.html">next</a></li>'
        )
        prose = " ".join(rng.choice(WORDS) for _ in range(700))
        (root / f"p{i}.html").write_text(
            f"<html><head><title>Page {i}</title></head><body><nav><a href='/'>home</a></nav>"
            f"<article><h1>Page {i}</h1><p>{prose}</p></article><ul>{links}</ul></body></html>"
        )
    (root / "index.html").write_text('<html><body><a href="/p0.html">start</a></body></html>')


def start_site(root: Path, host: str, log: Path, min_gap: float = 0.0) -> tuple[Popen, str]:
    """Serve `root` on `host` with bench/site.py; returns the process and its origin once it
    accepts connections."""
    port = free_port(host)
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "site.py"), "--host", host, "--port", str(port),
         "--root", str(root), "--log", str(log), "--min-gap", str(min_gap)]
    )  # fmt: skip
    for _ in range(100):
        try:
            socket.create_connection((host, port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, f"http://{host}:{port}/"


class Sites:
    def __init__(self, work: Path, domains: int, pages: int, min_gap: float) -> None:
        self.procs = []
        self.origins = []
        self.logs = []
        for d in range(domains):
            root = work / f"site{d}-{pages}"
            if not root.exists():
                build_site(root, pages, d)
            log = work / f"log-{d}-{time.time_ns()}.txt"
            proc, origin = start_site(root, f"127.0.0.{40 + d}", log, min_gap)
            self.procs.append(proc)
            self.origins.append(origin)
            self.logs.append(log)

    def hits(self) -> list[list[tuple[float, str]]]:
        out = []
        for log in self.logs:
            rows = [line.split(" ", 1) for line in log.read_text().splitlines()]
            out.append([(float(t), p) for t, p in rows if p != "/robots.txt"])
        return out

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait()


# The crawl engine alone: a word minimum no page reaches makes the pipeline's selectolax
# pre-pass drop every page before trafilatura, and the build then has nothing to commit
# (exit status 1). bench/pipeline.py measures the whole job.
ENGINE_ONLY = {"pipeline": {"quality": {"min_words": 1_000_000}}}


def run_harvester(
    work: Path, seeds: list[str], rate: float, conc: int, pages: int, spec: dict = ENGINE_ONLY
) -> tuple[float, str]:
    """Run `harvester crawl` with a fresh catalog and store; returns (seconds, stdout)."""
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": f"sqlite:///{work}/h-{time.time_ns()}.db",
        "HARVESTER_STORAGE_URL": str(work / f"store-{time.time_ns()}"),
    }
    spec_file = work / "spec.json"
    base = {"dataset": "bench", "seeds": ["http://x/"], "scope": {"max_depth": 100000}}
    spec_file.write_text(json.dumps(base | spec))
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).with_name("harvester")), "crawl", *seeds, "--spec",
         str(spec_file), "--allow-private", "--rate", str(rate), "--concurrency-per-domain",
         str(conc), "--max-pages", str(pages), "--no-progress", "--fresh"],
        env=env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode not in (0, 1):
        raise SystemExit(f"harvester crawl failed ({done.returncode}): {done.stderr[-2000:]}")
    return time.monotonic() - started, done.stdout


def ensure_scrapy() -> Path:
    python = SCRAPY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SCRAPY_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "scrapy>=2.11"], check=True)
    return python


def run_scrapy(
    work: Path, seeds: list[str], delay: float, conc: int, pages: int, spider_source: str = SPIDER
) -> float:
    spider = work / "spider.py"
    spider.write_text(spider_source)
    started = time.monotonic()
    subprocess.run(
        [
            str(ensure_scrapy()),
            "-m",
            "scrapy",
            "runspider",
            str(spider),
            "-a",
            f"seeds={','.join(seeds)}",
            "-s",
            "LOG_LEVEL=ERROR",
            "-s",
            "ROBOTSTXT_OBEY=False",
            "-s",
            f"DOWNLOAD_DELAY={delay}",
            "-s",
            "RANDOMIZE_DOWNLOAD_DELAY=False",
            "-s",
            f"CONCURRENT_REQUESTS_PER_DOMAIN={conc}",
            "-s",
            "CONCURRENT_REQUESTS=64",
            "-s",
            f"CLOSESPIDER_PAGECOUNT={pages}",
            "-s",
            "TELNETCONSOLE_ENABLED=False",
        ],
        check=True,
        cwd=work,
    )
    return time.monotonic() - started


def politeness_report(name: str, hits: list[list[tuple[float, str]]], rate: float) -> None:
    total = sum(len(h) for h in hits)
    span = max(h[-1][0] for h in hits if h) - min(h[0][0] for h in hits if h)
    gaps = [b[0] - a[0] for h in hits for a, b in itertools.pairwise(h)]
    short = sum(g < 0.95 / rate for g in gaps)
    per_domain = [len(h) / (h[-1][0] - h[0][0]) for h in hits if len(h) > 1]
    print(
        f"  {name:10s} requests {total}  efficiency {total / span / (rate * len(hits)):.3f}  "
        f"min gap {min(gaps) * rate:.3f}/r  gaps<0.95/r {short} ({short / len(gaps):.1%})  "
        f"max per-domain rate {max(per_domain):.2f}/s (limit {rate})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages-per-domain", type=int, default=2000)
    parser.add_argument("--domains", type=int, default=3)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--polite-pages", type=int, default=600)
    parser.add_argument("--no-scrapy", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harvester-bench-"))
    total = args.pages_per_domain * args.domains
    try:
        print(f"site: {args.domains} domains x {args.pages_per_domain} pages in {work}")
        sites = Sites(work, args.domains, args.pages_per_domain, 0.0)
        elapsed, _ = run_harvester(work, sites.origins, 1000, 16, total)
        fetched = sum(len(h) for h in sites.hits())
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        sites.close()
        print(
            f"raw      harvester  {fetched} pages in {elapsed:.1f}s = {fetched / elapsed:.0f} "
            f"pages/s  peak RSS {rss:.0f} MiB"
        )
        if not args.no_scrapy:
            ensure_scrapy()
            sites = Sites(work, args.domains, args.pages_per_domain, 0.0)
            s_elapsed = run_scrapy(work, sites.origins, 0.0, 16, total)
            s_fetched = sum(len(h) for h in sites.hits())
            sites.close()
            print(
                f"raw      scrapy     {s_fetched} pages in {s_elapsed:.1f}s = "
                f"{s_fetched / s_elapsed:.0f} pages/s"
            )
            print(
                f"raw      ratio harvester/scrapy = "
                f"{(fetched / elapsed) / (s_fetched / s_elapsed):.2f}"
            )
        print(
            f"politeness: rate {args.rate}/s per domain x {args.domains} domains, "
            f"{args.polite_pages} pages; servers answer 429 under {0.95 / args.rate:.3f}s"
        )
        per_domain = args.polite_pages // args.domains
        sites = Sites(work, args.domains, per_domain, 0.95 / args.rate)
        run_harvester(work, sites.origins, args.rate, 2, args.polite_pages)
        hits = sites.hits()
        sites.close()
        politeness_report("harvester", hits, args.rate)
        if not args.no_scrapy:
            sites = Sites(work, args.domains, per_domain, 0.95 / args.rate)
            run_scrapy(work, sites.origins, 1 / args.rate, 2, args.polite_pages)
            hits = sites.hits()
            sites.close()
            politeness_report("scrapy", hits, args.rate)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
