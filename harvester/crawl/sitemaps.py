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


def parse_sitemap(body: bytes) -> Sitemap:
    """Parse a `<urlset>` or `<sitemapindex>`; malformed input yields an empty sitemap."""
    if body[:2] == b"\x1f\x8b":
        try:
            body = gzip.GzipFile(fileobj=io.BytesIO(body)).read(MAX_SITEMAP_BYTES)
        except (OSError, EOFError, zlib.error):
            return Sitemap([], [])
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return Sitemap([], [])
    locs = [
        (el.text or "").strip()
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "loc" and (el.text or "").strip()
    ]
    if root.tag.rsplit("}", 1)[-1] == "sitemapindex":
        return Sitemap([], locs)
    return Sitemap(locs, [])
