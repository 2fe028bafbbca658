"""The CPU pool survives a worker process killed for real (SIGKILL, as the OOM killer does)."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures.process import BrokenProcessPool

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry
from harvester.cpu import CpuPool
from harvester.jobs import build_snapshot
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.conftest import crawl, crawl_and_build
from tests.webtest import SiteServer, SiteState, start


def _die() -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return 0


def _square(n: int) -> int:
    return n * n


def test_a_killed_worker_costs_its_call_only() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> list[int]:
            assert await pool.run(_square, 3) == 9
            with pytest.raises(BrokenProcessPool):
                await pool.run(_die)  # killed twice: on the first pool and on the retry
            return [await pool.run(_square, n) for n in range(5)]

        assert asyncio.run(go()) == [0, 1, 4, 9, 16]  # every later call works
        assert pool.replaced == 2
    finally:
        pool.close()


def test_a_call_meeting_a_worker_killed_from_outside_is_retried() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> int:
            worker = await pool.run(os.getpid)
            os.kill(worker, signal.SIGKILL)  # as the OOM killer would, between two calls
            return await pool.run(_square, 7)

        assert asyncio.run(go()) == 49
        assert pool.replaced == 1  # the call met the broken pool and went to a fresh one
    finally:
        pool.close()


def test_a_page_over_the_memory_limit_fails_alone_and_a_refresh_keeps_its_document(
    sqlite_catalog: sessionmaker[Session], store: BlobStore
) -> None:
    """A page whose parsing needs more memory than a pipeline process may take fails with
    the reason (`pipeline/…`), the pool goes on, and the refresh that met it keeps the
    page's document from the parent snapshot: an infrastructure failure is not a change."""
    site = start(SiteServer("127.0.6.1", SiteState(pages=8, sitemap=False)))
    spec = {
        "dataset": "mem",
        "seeds": [site.origin + "/"],
        "politeness": {"requests_per_second": 100},
    }
    small = CpuPool(1, memory_mb=64)
    try:
        _, v1 = crawl_and_build(spec, sqlite_catalog, store)
        site.state.heavy.add(3)
        second, stats = crawl(spec, sqlite_catalog, store, cpu=small)
        v2 = build_snapshot(sqlite_catalog, store, second, parse_spec(spec))
    finally:
        small.close()
        site.shutdown()
        site.server_close()
    with sqlite_catalog() as session:
        page = session.scalar(
            select(FrontierEntry).where(
                FrontierEntry.job_id == second, FrontierEntry.url == site.origin + "/page/3"
            )
        )
        assert page is not None
    assert page.outcome == "failed" and page.reason is not None
    assert page.reason.startswith("pipeline/"), page.reason
    assert stats.get("fetch/outcome/fetched") > 0  # the other pages went through
    snapshots = Snapshots(store)
    before = set(snapshots.documents(v1, columns=["url"]).column("url").to_pylist())
    after = set(snapshots.documents(v2, columns=["url"]).column("url").to_pylist())
    assert site.origin + "/page/3" in before
    assert after == before
