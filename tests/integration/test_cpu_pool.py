"""The CPU pool survives a worker process killed for real (SIGKILL, as the OOM killer does),
kills a call that overruns its budget, and a cancelled call does not wait for its worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

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


def _spin(seconds: float) -> int:
    """Busy in C code for `seconds` (as lexbor on a hostile page): no signal handler runs."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(100_000))
    return os.getpid()


def _pid_of_worker_after(seconds: float, marker: str) -> int:
    with open(marker, "w") as out:
        out.write(str(os.getpid()))
    return _spin(seconds)


def _wait_for(marker: Path) -> None:
    while not marker.exists() or not marker.read_text():
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_a_killed_worker_costs_its_call_only() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> list[int]:
            assert await pool.run(_square, 3) == 9
            with pytest.raises(BrokenProcessPool):
                await pool.run(_die)  # killed twice: in its worker and on the retry
            return [await pool.run(_square, n) for n in range(5)]

        assert asyncio.run(go()) == [0, 1, 4, 9, 16]  # every later call works
    finally:
        pool.close()


def test_a_call_meeting_a_worker_killed_from_outside_works() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> int:
            worker = await pool.run(os.getpid)
            os.kill(worker, signal.SIGKILL)  # as the OOM killer would, between two calls
            return await pool.run(_square, 7)

        assert asyncio.run(go()) == 49
    finally:
        pool.close()


def test_a_call_past_its_budget_is_killed_and_the_pool_goes_on() -> None:
    pool = CpuPool(1)
    try:

        async def go() -> tuple[int, int, int]:
            before = await pool.run(os.getpid)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await pool.run(_spin, 600.0, kill_after=0.5)
            waited = time.monotonic() - started
            after = await pool.run(os.getpid)
            assert waited < 60  # not the 600 s the call wanted
            return before, after, await pool.run(_square, 4)

        before, after, square = asyncio.run(go())
        assert before != after and not _alive(before)  # the overrunning worker was killed
        assert square == 16
    finally:
        pool.close()


def test_a_cancelled_call_kills_its_worker(tmp_path: Path) -> None:
    pool = CpuPool(1)
    marker = tmp_path / "pid"
    try:

        async def go() -> int:
            call = asyncio.ensure_future(pool.run(_pid_of_worker_after, 600.0, str(marker)))
            await asyncio.to_thread(_wait_for, marker)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            return int(marker.read_text())

        worker = asyncio.run(go())
        deadline = time.monotonic() + 30
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
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
