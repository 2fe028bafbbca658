"""Hostile sitemaps and robots.txt files cost bounded work (review H3, L5): a sitemap is
parsed in the CPU pool and stops at the job's page budget; robots.txt keeps a bounded
number of rules."""

from __future__ import annotations

import asyncio

from harvester.crawl.robots import MAX_ROBOTS_LINES, RobotsCache
from harvester.crawl.sitemaps import parse_sitemap


def _urlset(count: int) -> bytes:
    urls = "".join(f"<url><loc>http://e.com/p{i}</loc></url>" for i in range(count))
    return f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()


def test_parsing_a_sitemap_stops_at_the_budget() -> None:
    body = _urlset(200_000)  # ~8 MB
    assert len(parse_sitemap(body, limit=20).pages) == 20
    assert parse_sitemap(body, limit=20).pages[-1] == "http://e.com/p19"
    cut = body[: len(body) // 2]  # a truncated file keeps what was read
    assert len(parse_sitemap(cut, limit=10**6).pages) > 1000


def test_robots_txt_keeps_a_bounded_number_of_rules() -> None:
    rules = "".join(f"Disallow: /a*b*c*d*e*{i}$\n" for i in range(15_000))
    body = ("User-agent: *\nDisallow: /private/\n" + rules + "Disallow: /late/\n").encode()

    async def fetch(_url: str) -> tuple[int, bytes]:
        return 200, body

    async def decide() -> tuple[str, str]:
        parsed, _ = await RobotsCache(fetch).rules("http://e.com")
        return parsed.decision("http://e.com/private/x", "bot"), parsed.decision(
            "http://e.com/late/x", "bot"
        )

    early, late = asyncio.run(decide())
    assert early == "disallowed"
    assert late == "allowed"  # past line MAX_ROBOTS_LINES: not read
    assert MAX_ROBOTS_LINES < 15_000
