"""Sitemap and sitemap-index parsing (plain or gzipped XML)."""

from __future__ import annotations

import gzip
import io
import zlib
from dataclasses import dataclass
from xml.etree import ElementTree

MAX_SITEMAP_BYTES = 50 * 1024 * 1024  # the sitemaps.org limit, uncompressed


@dataclass(frozen=True)
class Sitemap:
    """Page URLs and nested sitemap URLs found in one sitemap document."""

    pages: list[str]
    sitemaps: list[str]


def parse_sitemap(body: bytes, limit: int = 50_000) -> Sitemap:
    """Parse a `<urlset>` or `<sitemapindex>`, keeping at most `limit` URLs (parsing stops
    there); malformed input yields what was read before the error. Runs in the CPU pool:
    a 50 MB sitemap must not hold the event loop."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(MAX_SITEMAP_BYTES)
        except (OSError, EOFError, zlib.error):
            return Sitemap([], [])
    locs: list[str] = []
    index = False
    try:
        for event, el in ElementTree.iterparse(io.BytesIO(body), events=("start", "end")):
            name = el.tag.rsplit("}", 1)[-1]
            if event == "start":
                index = index or name == "sitemapindex"
                continue
            if name == "loc" and (text := (el.text or "").strip()):
                locs.append(text)
                if len(locs) >= limit:
                    break
            el.clear()  # memory stays flat on a large sitemap
    except ElementTree.ParseError:
        pass
    return Sitemap([], locs) if index else Sitemap(locs, [])
