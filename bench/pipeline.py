"""End-to-end benchmark: crawl + pipeline pages/s on real pages, next to Scrapy + trafilatura.

    python bench/pipeline.py [--pages 1500] [--no-scrapy]

Serves Debian's python3.11-doc, postgresql-doc-15 and git-doc on three loopback addresses
(bench/site.py), then in the same run:
 1. `harvester crawl` of the three sites (no effective rate limit, 8 requests per domain),
    whole job: fetch, extraction, quality, PII, signatures, snapshot build; with the default
    extraction and with trafilatura's `fast` mode;
 2. Scrapy with trafilatura.extract in its parse callback on the same sites and page cap
    (installed into bench/.venv-scrapy on first run, not a project dependency);
 3. the single-core trafilatura rate on a sample of the same pages, for the goal
    (≥ 75% of cores x single-core extraction rate, ≥ 2.5x Scrapy + trafilatura).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import crawl  # noqa: E402
from crawl import ensure_scrapy, start_site  # noqa: E402

from docs import ensure_docs, sample_pages  # noqa: E402

# Scrapy's own parse callback, extracting with trafilatura as a Scrapy user would.
SPIDER = crawl.SPIDER_TEMPLATE.format(
    imports=", trafilatura",
    item='{"url": response.url, "chars": len(trafilatura.extract(response.text, '
    'url=response.url, deduplicate=False) or "")}',
)


class DocSites:
    """One bench/site.py process per documentation root, each on its own loopback address."""

    def __init__(self, work: Path) -> None:
        self.procs, self.seeds, self.logs = [], [], []
        for i, root in enumerate(ensure_docs().values()):
            log = work / f"log-{i}-{time.time_ns()}.txt"
            proc, origin = start_site(root, f"127.0.0.{50 + i}", log)
            self.procs.append(proc)
            self.seeds.append(origin + "index.html")
            self.logs.append(log)

    def pages(self) -> int:
        return sum(
            1
            for log in self.logs
            for line in log.read_text().splitlines()
            if line.endswith(".html") or line.endswith("/")
        )

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait()


def run_scrapy(work: Path, seeds: list[str], pages: int) -> float:
    python = ensure_scrapy()
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "trafilatura", "lxml_html_clean"],
        check=True,
        stderr=subprocess.DEVNULL,
    )
    return crawl.run_scrapy(work, seeds, 0.0, 8, pages, SPIDER)


def single_core_rate(count: int = 150) -> float:
    from harvester.pipeline.extract import extract
    from harvester.spec import Extraction

    pages = [p.read_text(errors="replace") for p in sample_pages(count, seed=1)]
    started = time.perf_counter()
    for html in pages:
        extract(html, "http://docs.test/", Extraction())
    return len(pages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1500)
    parser.add_argument("--no-scrapy", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harvester-pipeline-"))
    cores = os.cpu_count() or 1
    single = single_core_rate()
    print(f"trafilatura on one core: {single:.1f} pages/s; {cores} cores")

    rates = {}
    for fast in (False, True):
        sites = DocSites(work)
        spec = {"pipeline": {"extract": {"fast": fast}}}
        elapsed, out = crawl.run_harvester(work, sites.seeds, 1000, 8, args.pages, spec)
        fetched = sites.pages()
        sites.close()
        rate = rates[fast] = fetched / elapsed
        summary = " | ".join(line for line in out.splitlines() if "@v" in line)
        print(
            f"harvester{' (extract.fast)' if fast else ''}: {fetched} pages in {elapsed:.1f}s = "
            f"{rate:.1f} pages/s (crawl+pipeline+build) → {summary}; "
            f"{rate / (cores * single):.0%} of cores x single-core extraction rate"
        )
    if not args.no_scrapy:
        ensure_scrapy()
        sites = DocSites(work)
        s_elapsed = run_scrapy(work, sites.seeds, args.pages)
        s_fetched = sites.pages()
        sites.close()
        s_rate = s_fetched / s_elapsed
        print(f"scrapy+trafilatura: {s_fetched} pages in {s_elapsed:.1f}s = {s_rate:.1f} pages/s")
        print(
            f"ratio harvester / scrapy+trafilatura = {rates[False] / s_rate:.2f} "
            f"(with extract.fast: {rates[True] / s_rate:.2f})"
        )


if __name__ == "__main__":
    main()
