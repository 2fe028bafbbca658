"""What the CPU pool does with fetched bodies: a page's pipeline and links, a sitemap's
URLs, each screened for admission (parsing up to 10 MB of HTML or 50 MB of XML and
canonicalising thousands of URLs must not hold the event loop that times requests and
serves the API)."""

from __future__ import annotations

from collections import Counter

from harvester.crawl.frontier import Screening
from harvester.crawl.links import extract_links
from harvester.crawl.sitemaps import parse_sitemap
from harvester.pipeline.process import Page, Processed, process_page, too_complex
from harvester.spec import Pipeline

Links = list[tuple[str, str]]
"""(canonical, raw) URLs that passed screening."""


def work_page(
    page: Page, pipeline: Pipeline, links_from: str | None, screening: Screening, depth: int
) -> tuple[Processed, Links, Counter[str]]:
    """The pipeline's verdict on `page` and, when `links_from` (its final URL) is given, the
    links it holds that may enter the frontier at `depth`, with counts of the others."""
    counters: Counter[str] = Counter()
    if (dropped := too_complex(page.html)) is not None:
        return dropped, [], counters  # no parser sees it, for links either
    links: Links = []
    if links_from is not None:
        raw = extract_links(page.html, links_from, counters)
        links = screening(raw, depth, counters)
    return process_page(page, pipeline), links, counters


def read_sitemap(
    body: bytes, limit: int, screening: Screening
) -> tuple[list[str], Links, Counter[str]]:
    """A sitemap's child sitemaps and its first `limit` page URLs, screened (depth 1)."""
    counters: Counter[str] = Counter()
    sitemap = parse_sitemap(body, limit)
    return sitemap.sitemaps, screening(sitemap.pages, 1, counters), counters
