"""Extraction benchmark on real documentation pages (Debian's doc packages).

    python bench/extract.py [--pages 400]

Prints, on one core: trafilatura pages/s in default and `fast` mode and the selectolax
fallback alone, how close `fast` output is to the default (word-set Jaccard, pages it empties);
then pages/s of the whole crawl-phase pipeline (extract, quality, PII, signature) through the
process pool on every core; and what the per-page time budget does to the largest page
(python's 2.5 MB contents.html).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from docs import ROOTS, sample_pages
from harvester.cpu import CpuPool
from harvester.pipeline.extract import extract, fallback
from harvester.pipeline.process import Page, process_page
from harvester.spec import Extraction, Pipeline


def words(text: str) -> set[str]:
    return set(text.lower().split())


def similarity(a: str, b: str) -> float:
    wa, wb = words(a), words(b)
    return len(wa & wb) / len(wa | wb) if wa | wb else 1.0


async def pooled(pages: list[tuple[str, str]]) -> float:
    pipeline = Pipeline(quality={"languages": []})  # docs pages: measure work, not drops
    with CpuPool() as cpu:
        await cpu.run(
            process_page, Page("http://warm/", "warm", "<p>x</p>", "", datetime.now(UTC)), pipeline
        )
        started = time.perf_counter()
        await asyncio.gather(
            *(
                cpu.run(process_page, Page(url, "docs", html, "", datetime.now(UTC)), pipeline)
                for url, html in pages
            )
        )
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=400)
    args = parser.parse_args()
    files = sample_pages(args.pages)
    pages = [(f"http://docs.test/{p.name}", p.read_text(errors="replace")) for p in files]
    size = sum(len(h) for _, h in pages) / len(pages)
    print(f"{len(pages)} real pages, mean {size / 1024:.0f} KiB of HTML")

    results: dict[str, list[str]] = {}
    for name, options in (("default", Extraction()), ("fast", Extraction(fast=True))):
        started = time.perf_counter()
        results[name] = [extract(html, url, options).text for url, html in pages]
        took = time.perf_counter() - started
        print(f"trafilatura {name:8s} {len(pages) / took:6.1f} pages/s on one core")
    started = time.perf_counter()
    cheap = [fallback(html, "fallback").text for _, html in pages]
    took = time.perf_counter() - started
    print(f"selectolax fallback  {len(pages) / took:6.1f} pages/s on one core")
    for name, texts in (("fast", results["fast"]), ("fallback", cheap)):
        sims = [similarity(a, b) for a, b in zip(results["default"], texts, strict=True)]
        emptied = sum(1 for a, b in zip(results["default"], texts, strict=True) if a and not b)
        print(
            f"  {name} vs default: mean word-set Jaccard {sum(sims) / len(sims):.3f}, "
            f"pages emptied {emptied}, mean chars {sum(map(len, texts)) / len(texts):.0f} "
            f"(default {sum(map(len, results['default'])) / len(pages):.0f})"
        )

    took = asyncio.run(pooled(pages))
    cores = os.cpu_count() or 1
    print(f"whole crawl-phase pipeline, pool of {cores}: {len(pages) / took:.1f} pages/s")

    big = ROOTS["python3.11-doc"] / "contents.html"
    html = big.read_text()
    for budget in (5.0, 600.0):
        started = time.perf_counter()
        got = extract(html, "http://docs.test/contents.html", Extraction(time_budget_s=budget))
        print(
            f"{big.name} ({len(html) / 1e6:.1f} MB) budget {budget:.0f}s: {got.method} in "
            f"{time.perf_counter() - started:.1f}s, {len(got.text)} chars"
        )


if __name__ == "__main__":
    main()
