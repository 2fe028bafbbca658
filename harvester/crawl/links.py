"""Outgoing links of an HTML page, with selectolax (lexbor)."""

from __future__ import annotations

from urllib.parse import urljoin

from selectolax.lexbor import LexborHTMLParser

_SKIP_SCHEMES = ("mailto:", "javascript:", "tel:", "data:", "ftp:", "#")


def extract_links(html: str, base_url: str) -> list[str]:
    """Absolute URLs of `<a href>` and `<area href>`, honouring `<base href>`; nofollow kept out."""
    tree = LexborHTMLParser(html)
    base = tree.css_first("base[href]")
    if base is not None and base.attributes.get("href"):
        base_url = urljoin(base_url, base.attributes["href"] or "")
    robots = tree.css_first('meta[name="robots" i]')
    if robots is not None and "nofollow" in (robots.attributes.get("content") or "").lower():
        return []
    links: list[str] = []
    for node in tree.css("a[href], area[href]"):
        href = (node.attributes.get("href") or "").strip()
        rel = (node.attributes.get("rel") or "").lower()
        if not href or href.lower().startswith(_SKIP_SCHEMES) or "nofollow" in rel:
            continue
        links.append(urljoin(base_url, href))
    return links
