"""The blob store on a real S3-compatible server (moto) behind a fault proxy: 503s, stalls
and resets during a crawl and a build, and what the API answers while the store is down."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.catalog.models import Job, StagingPart
from harvester.config import Settings
from harvester.crawl.recorder import MAX_BACKLOG
from harvester.service.keys import bootstrap
from harvester.stats import Stats
from harvester.store.snapshots import Snapshots
from tests.conftest import (
    S3Store,
    assert_each_url_staged_once,
    build_job,
    crawl,
    crawl_and_build,
)
from tests.faultproxy import FaultProxy
from tests.webtest import SiteServer, SiteState, start

_BODY = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(_BODY), _BODY)
)

FAULTS: dict[str, Callable[[FaultProxy], None]] = {
    "503": lambda proxy: proxy.answer(SLOW_DOWN),
    "stall": FaultProxy.stall,
    "refuse": FaultProxy.refuse,
}


def _spec(site: SiteServer, pages: int, dataset: str = "s3") -> dict[str, object]:
    return {
        "dataset": dataset,
        "seeds": [site.origin + "/"] + [f"{site.origin}/page/{i}" for i in range(pages)],
        "scope": {"max_depth": 0, "sitemaps": False},
        "politeness": {"requests_per_second": 500, "concurrency_per_domain": 4},
    }


def test_a_job_crawls_builds_and_downloads_on_s3(
    sqlite_catalog: sessionmaker[Session], s3: S3Store, tmp_path: Path
) -> None:
    site = start(SiteServer("127.0.5.11", SiteState(pages=20, sitemap=False)))
    try:
        _, manifest = crawl_and_build(_spec(site, 20), sqlite_catalog, s3.store)
    finally:
        site.shutdown()
        site.server_close()
    snapshots = Snapshots(s3.store)
    assert snapshots.manifest("s3").version == manifest.version == 1
    snapshots.download("s3", None, tmp_path)  # every file sha256-verified
    assert sum(split.rows for split in manifest.splits.values()) == 20
    assert len(snapshots.documents(manifest, ["id"])) == 20


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_store_outage_pauses_the_crawl_and_loses_nothing(
    sqlite_catalog: sessionmaker[Session], s3: S3Store, fault: str
) -> None:
    """While the store answers 503, stalls or refuses, no staging part can be written: the
    recorder keeps its batches and retries with back-off, fetching pauses once `MAX_BACKLOG`
    outcomes wait, and once the store is back the crawl ends with every URL recorded and
    staged once."""
    pages = 3 * MAX_BACKLOG
    site = start(SiteServer("127.0.5.12", SiteState(pages=pages, sitemap=False)))
    result: list[tuple[str, Stats]] = []
    crawling = threading.Thread(
        target=lambda: result.append(crawl(_spec(site, pages), sqlite_catalog, s3.store))
    )
    try:
        crawling.start()
        while not site.state.log:  # the job has started (reading its dataset's snapshots)
            time.sleep(0.01)
        FAULTS[fault](s3.proxy)
        settled, seen = time.monotonic(), -1
        while time.monotonic() - settled < 3:
            if len(site.state.log) != seen:
                settled, seen = time.monotonic(), len(site.state.log)
            time.sleep(0.2)
        assert 0 < seen < pages, seen  # fetching stopped short of the site
        with sqlite_catalog() as session:
            assert session.scalar(select(StagingPart.id)) is None
        s3.proxy.heal()
        crawling.join(120)
        assert not crawling.is_alive()
    finally:
        s3.proxy.heal()
        crawling.join(120)
        site.shutdown()
        site.server_close()
    [(job_id, stats)] = result
    assert_each_url_staged_once(sqlite_catalog, s3.store, job_id, stats, pages + 1)
    assert not [p for p in s3.store.list("staging") if ".tmp-" in p]  # no leftovers


def _build(sessions: sessionmaker[Session], s3: S3Store, job_id: str, retry_s: float) -> Job:
    return build_job(sessions, s3.store, job_id, Settings(host_lease_s=5.0, build_retry_s=retry_s))


def _crawled(sessions: sessionmaker[Session], s3: S3Store, address: str) -> str:
    site = start(SiteServer(address, SiteState(pages=20, sitemap=False)))
    try:
        job_id, _ = crawl(_spec(site, 20), sessions, s3.store)
    finally:
        site.shutdown()
        site.server_close()
    return job_id


def test_a_build_waits_out_a_store_outage(
    sqlite_catalog: sessionmaker[Session], s3: S3Store, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = _crawled(sqlite_catalog, s3, "127.0.5.13")
    s3.proxy.answer(SLOW_DOWN)
    threading.Timer(6.0, s3.proxy.heal).start()
    job = _build(sqlite_catalog, s3, job_id, retry_s=120.0)
    assert job.state == "succeeded", job.error
    assert "build interrupted (storage: " in caplog.text
    manifest = Snapshots(s3.store).manifest("s3")
    assert manifest.jobs == [job_id]
    assert len(Snapshots(s3.store).documents(manifest, ["id"])) == 20


def test_a_store_outage_that_outlasts_the_build_retries_fails_the_job_and_publishes_nothing(
    sqlite_catalog: sessionmaker[Session], s3: S3Store
) -> None:
    job_id = _crawled(sqlite_catalog, s3, "127.0.5.15")
    s3.proxy.answer(SLOW_DOWN)
    job = _build(sqlite_catalog, s3, job_id, retry_s=3.0)
    s3.proxy.heal()
    assert job.state == "failed"
    assert job.error is not None and job.error.startswith("storage: "), job.error
    assert "503" in job.error or "SlowDown" in job.error or "SLOW_DOWN" in job.error, job.error
    assert Snapshots(s3.store).latest("s3") is None  # no partial snapshot


def test_the_api_answers_503_while_the_store_is_down(
    tmp_path: Path, s3: S3Store, sqlite_catalog: sessionmaker[Session]
) -> None:
    site = start(SiteServer("127.0.5.14", SiteState(pages=5, sitemap=False)))
    try:
        crawl_and_build(_spec(site, 5), sqlite_catalog, s3.store)
    finally:
        site.shutdown()
        site.server_close()
    settings = Settings(storage_url=s3.url, s3_endpoint=s3.endpoint, s3_timeout_s=2.0)
    key = bootstrap(sqlite_catalog, None)
    with TestClient(create_app(settings, sessions=sqlite_catalog)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        assert client.get("/v1/datasets/s3").status_code == 200
        for fault in FAULTS.values():
            fault(s3.proxy)
            answer = client.get("/v1/datasets/s3")
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"]["code"] == "unavailable"
            assert answer.headers["retry-after"]
            s3.proxy.heal()
            assert client.get("/v1/datasets/s3").status_code == 200
