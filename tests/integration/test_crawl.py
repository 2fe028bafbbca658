"""Crawling the test web: outcomes, staging output, robots.txt, sitemaps and the catalog."""

from __future__ import annotations

import itertools
import socket
from collections import Counter

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry, Job, StagingPart
from harvester.jobs import crawled
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.conftest import crawl, crawl_and_build
from tests.webtest import SiteServer


def outcomes(sessions: sessionmaker[Session], job_id: str) -> dict[str, FrontierEntry]:
    with sessions() as session:
        rows = session.scalars(select(FrontierEntry).where(FrontierEntry.job_id == job_id)).all()
    return {row.url: row for row in rows}


def test_crawl_of_three_sites_records_one_outcome_per_url(
    catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    spec = {
        "dataset": "web",
        "seeds": [s.origin + "/" for s in sites],
        "politeness": {"requests_per_second": 50, "concurrency_per_domain": 2},
    }
    job_id, stats = crawl(spec, catalog, store)

    rows = outcomes(catalog, job_id)
    assert all(r.state == "done" and r.outcome for r in rows.values())
    for site in sites:
        pages = {u for u in rows if u.startswith(site.origin + "/page/")}
        assert len(pages) == 20
        assert rows[site.origin + "/orphan/0"].outcome == "fetched"  # found via sitemap index
        secret = rows[site.origin + "/private/secret"]
        assert (secret.outcome, secret.reason, secret.robots) == (
            "skipped",
            "robots/disallowed",
            "disallowed",
        )
        fetched_paths = Counter(site.state.paths())
        assert "/private/secret" not in fetched_paths
        assert max(fetched_paths.values()) == 1, "a URL was fetched twice"
    fetched = [r for r in rows.values() if r.outcome == "fetched"]
    assert stats.get("fetch/outcome/fetched") == len(fetched) == 3 * (1 + 20 + 3)
    assert all(r.robots == "allowed" and r.etag for r in fetched if "/page/" in r.url)

    with catalog() as session:
        parts = session.scalars(select(StagingPart.path).where(StagingPart.job_id == job_id)).all()
        job = session.get(Job, job_id)
        # every URL has its outcome; the job waits for a worker to claim its build
        assert job is not None and job.state == "running" and crawled(catalog, job_id)
    table = pq.read_table([store.path(p) for p in parts])
    assert sorted(table.column("url").to_pylist()) == sorted(r.url for r in fetched)
    page = table.filter(pq.filters_to_expression([("url", "=", sites[0].origin + "/page/3")]))
    row = page.to_pylist()[0]
    assert row["title"] == "Page 3" and row["dropped"] is None and len(row["minhash"]) == 128
    assert row["quality_word_count"] > 100 and len(row["raw_sha256"]) == 64
    home = table.filter(pq.filters_to_expression([("url", "=", sites[0].origin + "/")]))
    assert (
        home.to_pylist()[0]["dropped"] == "quality/too_short" and "body" not in table.schema.names
    )


def test_second_crawl_of_dataset_sends_conditional_requests(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/"],
        "scope": {"max_depth": 1, "sitemaps": False},
        "politeness": {"requests_per_second": 50},
    }
    crawl_and_build(spec, sqlite_catalog, store)
    _job_id, manifest = crawl_and_build(spec, sqlite_catalog, store)
    # Every page answered 304: nothing changed, so no copy of version 1 was written.
    assert manifest.version == 1 and manifest.rows == 7
    assert Snapshots(store).versions("web") == [1]
    first, second = [h for h in site.state.log if h.path == "/page/0"]
    assert "If-None-Match" not in first.headers
    assert second.headers["If-None-Match"] == '"p/page/0"'


@pytest.mark.parametrize(
    ("robots", "expected"),
    [("404", ("fetched", None)), ("500", ("skipped", "robots/unavailable"))],
)
def test_robots_status_semantics_follow_rfc9309(
    sqlite_catalog: sessionmaker[Session],
    sites: list[SiteServer],
    store: BlobStore,
    robots: str,
    expected: tuple[str, str | None],
) -> None:
    site = sites[0]
    site.state.robots = robots
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/page/1"],
        "scope": {"max_depth": 0, "sitemaps": False},
        # A robots.txt that keeps answering 5xx defers the URL for this long, then skips it.
        "politeness": {"requests_per_second": 100, "robots_patience_s": 1},
        "retry": {"max_attempts": 2, "backoff_initial_s": 0.01},
    }
    job_id, _ = crawl(spec, sqlite_catalog, store)
    row = outcomes(sqlite_catalog, job_id)[site.origin + "/page/1"]
    assert (row.outcome, row.reason) == expected


def test_urls_wait_while_robots_txt_answers_5xx_and_are_fetched_once_it_is_back(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """RFC 9309: a robots.txt answering 5xx disallows everything for now. The URLs are not
    given up: they wait (still claimed) and robots.txt is asked again until it answers."""
    site = sites[0]
    site.state.robots_failures = 3
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/page/1", site.origin + "/page/2"],
        "scope": {"max_depth": 0, "sitemaps": False},
        "politeness": {"requests_per_second": 100, "robots_patience_s": 4},
        "retry": {"max_attempts": 1},
    }
    job_id, stats = crawl(spec, sqlite_catalog, store)
    rows = outcomes(sqlite_catalog, job_id)
    assert {(r.outcome, r.reason) for r in rows.values()} == {("fetched", None)}
    asks = [h.t for h in site.state.log if h.path == "/robots.txt"]
    assert len(asks) == 4  # three 503s, then the rules
    # Asked again after a pause (a quarter of the patience, at most a minute), never in a loop.
    assert min(b - a for a, b in itertools.pairwise(asks)) >= 0.95 * 4 / 4
    assert stats.get("robots/deferred") >= 2


def test_a_seed_on_a_closed_port_fails_as_what_it_is(
    sqlite_catalog: sessionmaker[Session], store: BlobStore
) -> None:
    """No server answers robots.txt: the URL fails with the connection error, not `skipped
    robots/unavailable`."""
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.5.20", 0))
        port = s.getsockname()[1]
    spec = {
        "dataset": "web",
        "seeds": [f"http://127.0.5.20:{port}/"],
        "scope": {"sitemaps": False},
        "retry": {"max_attempts": 1},
    }
    job_id, _ = crawl(spec, sqlite_catalog, store)
    [row] = outcomes(sqlite_catalog, job_id).values()
    assert row.outcome == "failed" and row.reason is not None, (row.outcome, row.reason)
    assert row.reason.startswith("connect"), row.reason


def test_a_redirect_to_a_disallowed_path_is_not_followed(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """robots.txt judges every redirect hop, as it judges links: `/to-private` redirects to
    `/private/secret`, which the site disallows."""
    site = sites[0]
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/to-private"],
        "scope": {"max_depth": 0, "sitemaps": False},
        "politeness": {"requests_per_second": 100},
    }
    job_id, stats = crawl(spec, sqlite_catalog, store)
    row = outcomes(sqlite_catalog, job_id)[site.origin + "/to-private"]
    assert (row.outcome, row.reason) == ("skipped", "robots/disallowed")
    assert "/private/secret" not in site.state.paths()
    assert stats.get("fetch/outcome/skipped") == 1


def test_a_wall_clock_limit_ends_the_crawl_with_what_it_has(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.pages = 60
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/"],
        "limits": {"max_duration_s": 1.5},
        "politeness": {"requests_per_second": 5},
    }
    job_id, stats = crawl(spec, sqlite_catalog, store)
    assert crawled(sqlite_catalog, job_id)
    assert stats.get("fetch/skipped/limit/duration") > 0
    assert stats.get("fetch/outcome/fetched") < 60  # 1.5 s at 5 requests/s
