"""The embedded catalog locked by another process: SQLite's "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker

from harvester.catalog.db import make_engine, migrate
from harvester.stats import Stats
from harvester.store.blob import BlobStore
from tests.conftest import assert_each_url_staged_once, crawl
from tests.webtest import SiteServer, SiteState, start


def test_a_locked_database_pauses_the_crawl_and_loses_nothing(
    tmp_path: Path, store: BlobStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Another connection holds the write lock for longer than the busy timeout and the
    worker's heartbeat period: its writes fail "database is locked", it stops fetching for
    the hosts it can no longer prove, and once the lock is gone the crawl ends with every
    URL recorded and staged once."""
    path = tmp_path / "catalog.db"
    engine = make_engine(f"sqlite:///{path}", busy_timeout_s=0.5)
    migrate(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    pages = 150
    site = start(SiteServer("127.0.5.21", SiteState(pages=pages, sitemap=False)))
    spec = {
        "dataset": "locked",
        "seeds": [site.origin + "/"] + [f"{site.origin}/page/{i}" for i in range(pages)],
        "scope": {"max_depth": 0, "sitemaps": False},
        "politeness": {"requests_per_second": 40, "concurrency_per_domain": 2},
    }
    result: list[tuple[str, Stats]] = []
    crawling = threading.Thread(target=lambda: result.append(crawl(spec, sessions, store)))
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        crawling.start()
        while len(site.state.log) < 20:
            time.sleep(0.01)
        locker.execute("BEGIN IMMEDIATE")  # the write lock, as a second process would hold it
        time.sleep(6)  # past the busy timeout and 80% of the 5 s lease
        during = len(site.state.log)
        time.sleep(1)
        assert len(site.state.log) == during  # nothing is fetched without a provable lease
        locker.execute("ROLLBACK")
        crawling.join(120)
        assert not crawling.is_alive()
    finally:
        locker.close()
        crawling.join(120)
        site.shutdown()
        site.server_close()
    assert "database is locked" in caplog.text
    [(job_id, stats)] = result
    assert_each_url_staged_once(sessions, store, job_id, stats, pages + 1)
