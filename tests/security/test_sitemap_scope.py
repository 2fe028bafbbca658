"""Sitemaps obey robots.txt and scope, and a job reads a bounded number of them (review L1):
a crawled site cannot make the crawler fetch what robots.txt forbids, another host's files,
or thousands of sitemaps."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from harvester.crawl import discovery
from harvester.store.blob import BlobStore
from tests.conftest import crawl
from tests.webtest import SiteServer, SiteState, start


def test_a_sitemap_robots_txt_disallows_is_not_fetched(
    sqlite_catalog: sessionmaker[Session], store: BlobStore
) -> None:
    site = start(SiteServer("127.0.6.41", SiteState(pages=3)))
    other = start(SiteServer("127.0.6.42", SiteState(pages=3)))
    site.state.robots = (
        "User-agent: *\nDisallow: /sitemap\n"
        f"Sitemap: {other.origin}/sitemap.xml\n"  # another host: its own budget, not ours
    )
    spec = {
        "dataset": "l1",
        "seeds": [site.origin + "/"],
        "politeness": {"requests_per_second": 100},
    }
    try:
        _, stats = crawl(spec, sqlite_catalog, store)
    finally:
        for server in (site, other):
            server.shutdown()
            server.server_close()
    assert not any(p.startswith("/sitemap") for p in site.state.paths())
    assert other.state.paths() == []
    assert stats.get("sitemap/disallowed") == 1  # /sitemap.xml, named by robots.txt too
    assert stats.get("sitemap/other-host") == 1
    assert stats.get("fetch/outcome/fetched") >= 4


def test_a_job_reads_a_bounded_number_of_sitemaps(
    sqlite_catalog: sessionmaker[Session], store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each site has an index and a child sitemap; with a budget of three sitemaps per job,
    the second site's child is never fetched."""
    sites = [start(SiteServer(f"127.0.6.{43 + i}", SiteState(pages=2))) for i in range(2)]
    spec = {
        "dataset": "l1b",
        "seeds": [s.origin + "/" for s in sites],
        "scope": {"allowed_domains": ["127.0.6.43", "127.0.6.44"]},
        "politeness": {"requests_per_second": 100},
    }
    monkeypatch.setattr(discovery, "MAX_JOB_SITEMAPS", 3)
    try:
        _, stats = crawl(spec, sqlite_catalog, store)
    finally:
        for server in sites:
            server.shutdown()
            server.server_close()
    fetched = sum(p.startswith("/sitemap") for s in sites for p in s.state.paths())
    assert fetched == 3
    assert stats.get("sitemap/fetched") == 3
    assert stats.get("sitemap/over-budget") == 1
