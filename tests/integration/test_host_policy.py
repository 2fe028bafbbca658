"""Per-host policies and the shared host budget, from the sites' request logs."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry
from harvester.config import Settings
from harvester.crawl.netguard import NetworkGuard
from harvester.jobs import crawled, create_job
from harvester.service.hosts import get_host, set_policy
from harvester.service.worker import Worker
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from tests.conftest import cpu_pool, crawl
from tests.webtest import SiteServer, assert_spaced

pytestmark = pytest.mark.usefixtures("prompt_server_timestamps")


def test_a_rate_ceiling_set_by_an_operator_holds_for_the_job(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.pages = 8
    set_policy(sqlite_catalog, "127.0.0.2", max_rps=5.0, concurrency=1, blocked=False, note="t")
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/"],
        "politeness": {"requests_per_second": 100, "concurrency_per_domain": 4},
    }
    crawl(spec, sqlite_catalog, store)
    assert len(site.state.log) > 8
    assert_spaced([h.t for h in site.state.log], 5.0)
    assert site.state.max_active == 1


def test_a_blocked_host_is_never_fetched_and_its_urls_are_skipped(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    open_site, blocked = sites[0], sites[1]
    set_policy(sqlite_catalog, "127.0.0.3", max_rps=None, concurrency=None, blocked=True, note="")
    spec = {
        "dataset": "web",
        "seeds": [open_site.origin + "/", blocked.origin + "/"],
        "politeness": {"requests_per_second": 100},
    }
    job_id, stats = crawl(spec, sqlite_catalog, store)
    assert blocked.state.log == []
    with sqlite_catalog() as session:
        outcome = session.execute(
            select(FrontierEntry.outcome, FrontierEntry.reason).where(
                FrontierEntry.job_id == job_id, FrontierEntry.host == "127.0.0.3"
            )
        ).one()
    assert tuple(outcome) == ("skipped", "policy/blocked")
    assert stats.get("fetch/skipped/policy/blocked") == 1
    assert stats.get("fetch/outcome/fetched") > 20


def test_two_jobs_on_one_host_share_the_lower_rate(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.pages = 12

    def job(name: str, rate: float) -> str:
        spec = {
            "dataset": name,
            "seeds": [site.origin + "/"],
            "politeness": {"requests_per_second": rate, "user_agent": f"{name}/1"},
        }
        return create_job(sqlite_catalog, parse_spec(spec))

    jobs = [job("slow", 5.0), job("fast", 50.0)]
    worker = Worker(
        sqlite_catalog,
        store,
        Settings(host_lease_s=5.0),
        cpu_pool(),
        only_jobs=set(jobs),
        builds=False,
        stop_when=lambda: all(crawled(sqlite_catalog, j) for j in jobs),
        guard=NetworkGuard(True),
    )
    asyncio.run(worker.run())
    agents = Counter(h.headers.get("User-Agent") for h in site.state.log)
    assert agents["slow/1"] > 12 and agents["fast/1"] > 12  # both served, round-robin
    assert_spaced([h.t for h in site.state.log], 5.0)  # the combined rate: the lower one
    view = get_host(sqlite_catalog, "127.0.0.2")
    assert view is not None and view.pending == 0
