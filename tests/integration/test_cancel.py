"""Cancelling a job while one of its URLs holds a host's only slot."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from sqlalchemy.orm import Session, sessionmaker

from harvester import jobs
from harvester.config import Settings
from harvester.crawl.netguard import NetworkGuard
from harvester.jobs import crawled, create_job
from harvester.service.worker import STOP_GRACE_S, Worker
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from tests.conftest import cpu_pool
from tests.webtest import SiteServer


def _spec(site: SiteServer, path: str) -> dict[str, object]:
    return {
        "dataset": f"d-{uuid.uuid4().hex[:6]}",
        "seeds": [site.origin + path],
        "scope": {"max_depth": 0, "sitemaps": False},
        "limits": {"timeout_s": 600, "read_timeout_s": 600},
        "politeness": {"requests_per_second": 50, "concurrency_per_domain": 1},
    }


def test_a_cancelled_jobs_hanging_url_gives_the_host_back_after_the_grace_period(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """The job's one URL hangs for two minutes in the host's only slot; once the job is
    cancelled, the URL may finish for `STOP_GRACE_S`, then is cancelled, and the next job's
    URL on that host goes ahead (without the fix it would wait for the two minutes)."""
    site = sites[0]
    hanging = create_job(sqlite_catalog, parse_spec(_spec(site, "/hang")))
    done = threading.Event()
    worker = Worker(
        sqlite_catalog,
        store,
        Settings(host_lease_s=5.0),
        cpu_pool(),
        builds=False,
        stop_when=done.is_set,
        guard=NetworkGuard(True),
    )
    running = threading.Thread(target=lambda: asyncio.run(worker.run()))
    running.start()
    try:
        deadline = time.monotonic() + 30
        while "/hang" not in site.state.paths():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert jobs.cancel(sqlite_catalog, hanging)
        next_job = create_job(sqlite_catalog, parse_spec(_spec(site, "/page/1")))
        deadline = time.monotonic() + 6 * STOP_GRACE_S  # half the hang
        while not crawled(sqlite_catalog, next_job):
            assert time.monotonic() < deadline, "the cancelled job still holds the host"
            time.sleep(0.1)
    finally:
        site.state.released.set()
        done.set()
        running.join(60)
    assert not running.is_alive()
    assert site.state.paths().count("/hang") == 1
