"""Hostile and broken pages end as recorded outcomes, never as crashes."""

from __future__ import annotations

import pyarrow.parquet as pq
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry, StagingPart
from harvester.store.blob import BlobStore
from tests.conftest import crawl
from tests.webtest import SiteServer

FAULTS = {
    "/slow": ("failed", "timeout/read"),
    "/loop/a": ("failed", "redirect/loop"),
    "/big": ("skipped", "too-large"),
    "/big-chunked": ("skipped", "too-large"),
    "/bomb": ("skipped", "too-large"),
    "/binary": ("skipped", "content-type"),
    "/no-type": ("skipped", "content-type"),
    "/wrong-charset": ("fetched", None),
    "/malformed": ("fetched", None),
    "/challenge": ("failed", "challenge"),
    "/newsletter": ("fetched", None),  # a captcha widget is not a challenge
    "/gone": ("failed", "status/404"),
    "/to-other-domain": ("skipped", "scope/domain"),
    "/flaky": ("fetched", None),
    "/always-503": ("failed", "status/503"),
}


def test_fault_endpoints_end_in_the_expected_outcome(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    spec = {
        "dataset": "web",
        "seeds": [site.origin + path for path in FAULTS],
        "scope": {"max_depth": 0, "sitemaps": False},
        "limits": {"max_bytes_per_page": 1024 * 1024, "read_timeout_s": 1, "timeout_s": 5},
        "politeness": {"requests_per_second": 100, "concurrency_per_domain": 4},
        "retry": {"max_attempts": 3, "backoff_initial_s": 0.01, "backoff_max_s": 0.05},
        # keep even one-line pages, so the decoded text of every fetched page can be checked
        "pipeline": {"quality": {"min_words": 1, "languages": [], "min_punctuated_line_ratio": 0}},
    }
    job_id, _ = crawl(spec, sqlite_catalog, store)
    with sqlite_catalog() as session:
        rows = {
            r.url.removeprefix(site.origin): r
            for r in session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id))
        }
        parts = session.scalars(select(StagingPart.path)).all()
    assert {path: (rows[path].outcome, rows[path].reason) for path in FAULTS} == FAULTS
    assert rows["/flaky"].attempts == 3
    assert rows["/always-503"].attempts == 3
    assert rows["/gone"].attempts == 1
    staged = {
        r["url"].removeprefix(site.origin): r
        for r in pq.read_table([store.path(p) for p in parts]).to_pylist()
    }
    assert "Café crème, déjà vu" in staged["/wrong-charset"]["text"]
    assert staged["/wrong-charset"]["encoding"] not in (None, "utf-8")


def test_values_wider_than_the_catalog_are_cut_or_rejected(
    catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """A server controls headers and links: on PostgreSQL, which enforces column widths and
    btree key sizes, an oversized value must never fail the commit of the batch it is in."""
    site = sites[0]
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/oversized"],
        "scope": {"max_depth": 1, "sitemaps": False},
        "politeness": {"requests_per_second": 100},
    }
    job_id, stats = crawl(spec, catalog, store)
    with catalog() as session:
        rows = {
            r.url.removeprefix(site.origin): r
            for r in session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id))
        }
    page = rows["/oversized"]
    assert page.outcome == "fetched"
    assert page.content_type is not None and page.content_type.startswith("text/html")
    assert page.last_modified is not None and len(page.last_modified) <= 64
    assert set(rows) == {"/oversized", "/page/1"}  # the long URL and host names stayed out
    assert stats.get("frontier/rejected/too_long") == 1
    assert stats.get("frontier/rejected/invalid") == 2
    assert stats.get("fetch/truncated/content_type") == 1
    assert stats.get("fetch/truncated/last_modified") == 1
