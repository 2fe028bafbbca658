"""Catalog faults during a real crawl: the worker reaches PostgreSQL through a fault proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.app import create_app
from harvester.catalog.db import make_engine, migrate
from harvester.catalog.models import FrontierEntry, StagingPart
from harvester.config import Settings
from harvester.service.keys import bootstrap
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.conftest import (
    build_job,
    crawl,
    postgres_schema_url,
)
from tests.faultproxy import FaultProxy
from tests.webtest import SiteServer

pytestmark = pytest.mark.postgres


@pytest.fixture
def through_proxy() -> Iterator[tuple[sessionmaker[Session], sessionmaker[Session], FaultProxy]]:
    """(sessions through the proxy, direct sessions, the proxy) on a fresh schema."""
    for url in postgres_schema_url():
        direct = make_engine(url)
        migrate(direct)
        proxy = FaultProxy(("127.0.0.1", 5432))
        proxied = make_engine(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        yield sessionmaker(proxied), sessionmaker(direct), proxy
        proxy.close()
        proxied.dispose()
        direct.dispose()


def test_a_commit_whose_answer_was_lost_is_neither_repeated_nor_undone(
    through_proxy: tuple[sessionmaker[Session], sessionmaker[Session], FaultProxy],
    sites: list[SiteServer],
    store: BlobStore,
) -> None:
    """The first flush's COMMIT takes effect but its answer never arrives (the connection is
    reset): the retry must find the batch committed, not delete its staging part (the
    catalog lists it) nor commit the pages and counters a second time."""
    sessions, direct, proxy = through_proxy
    proxy.lose_reply(after=b"INSERT INTO staging_parts", at=b"COMMIT")
    spec = {
        "dataset": "web",
        "seeds": [sites[0].origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 50},
    }
    job_id, stats = crawl(spec, sessions, store)
    assert proxy.trapped.is_set()
    with direct() as session:
        parts = session.scalars(select(StagingPart.path).where(StagingPart.job_id == job_id))
        paths = list(parts)
        fetched = session.scalars(
            select(FrontierEntry.url).where(
                FrontierEntry.job_id == job_id, FrontierEntry.outcome == "fetched"
            )
        ).all()
    assert all(store.exists(p) for p in paths), "a committed staging part was deleted"
    staged = pq.read_table([store.path(p) for p in paths], columns=["url"])
    urls = staged.column("url").to_pylist()
    assert len(urls) == len(set(urls)), "a page was staged twice"
    assert stats.get("fetch/outcome/fetched") == len(fetched)  # counted once


def test_the_api_answers_503_while_the_catalog_is_down(
    through_proxy: tuple[sessionmaker[Session], sessionmaker[Session], FaultProxy],
    store: BlobStore,
) -> None:
    sessions, direct, proxy = through_proxy
    key = bootstrap(direct, None)
    settings = Settings(storage_url=store.root)
    with TestClient(create_app(settings, sessions=sessions)) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        assert client.get("/v1/jobs").status_code == 200
        proxy.refuse()
        answer = client.get("/v1/jobs")
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"] == {
            "code": "unavailable",
            "message": "the catalog is unavailable; try again shortly",
            "details": None,
        }
        assert answer.headers["retry-after"] == "5"
        proxy.heal()
        assert client.get("/v1/jobs").status_code == 200


def test_a_catalog_fault_mid_build_is_waited_out(
    through_proxy: tuple[sessionmaker[Session], sessionmaker[Session], FaultProxy],
    sites: list[SiteServer],
    store: BlobStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The build's dataset lease is taken but the answer to its COMMIT never arrives (the
    connection dies): the build is retried, takes the lease again as its holder, and commits
    version 1 once; the job succeeds."""
    sessions, direct, proxy = through_proxy
    spec = {
        "dataset": "web",
        "seeds": [sites[0].origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 100},
    }
    job_id, _ = crawl(spec, sessions, store)
    proxy.lose_reply(after=b"INSERT INTO dataset_leases", at=b"COMMIT")

    job = build_job(sessions, store, job_id, Settings(host_lease_s=5.0, build_retry_s=60), direct)
    assert proxy.trapped.is_set()
    assert job.state == "succeeded", job.error
    assert "build interrupted (catalog: " in caplog.text
    snapshots = Snapshots(store)
    assert snapshots.versions("web") == [1]
    assert snapshots.manifest("web").jobs == [job_id]
