"""Outgoing links of an HTML page, with selectolax (lexbor)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser

_SKIP_SCHEMES = ("mailto:", "javascript:", "tel:", "data:", "ftp:", "#")
MAX_LINKS = 10_000
"""Distinct links taken from one page (more are counted): a link farm of 100,000 costs seconds
of canonicalisation and as many frontier rows for nothing."""


def extract_links(html: str, base_url: str, counters: Counter[str]) -> list[str]:
    """Absolute URLs of `<a href>` and `<area href>`, honouring `<base href>`; nofollow kept
    out; the first `MAX_LINKS` distinct ones."""
    tree = LexborHTMLParser(html)
    base = tree.css_first("base[href]")
    if base is not None and base.attributes.get("href"):
        base_url = urljoin(base_url, base.attributes["href"] or "")
    robots = tree.css_first('meta[name="robots" i]')
    if robots is not None and "nofollow" in (robots.attributes.get("content") or "").lower():
        return []
    links: dict[str, None] = {}
    for node in tree.css("a[href], area[href]"):
        href = (node.attributes.get("href") or "").strip()
        rel = (node.attributes.get("rel") or "").lower()
        if not href or href.lower().startswith(_SKIP_SCHEMES) or "nofollow" in rel:
            continue
        if href not in links and len(links) >= MAX_LINKS:
            counters["links/truncated"] += 1
            break
        links[href] = None
    return [urljoin(base_url, href) for href in links]
