"""Storage faults during a real crawl: the blob store on a tiny tmpfs that fills up."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import StagingPart
from harvester.config import Settings
from harvester.crawl.recorder import MAX_BACKLOG
from harvester.stats import Stats
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.conftest import assert_each_url_staged_once, build_job, crawl
from tests.webtest import SiteServer, SiteState, start


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB tmpfs (mounting needs root, as on CI)."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("mounting a tmpfs needs root")
        pytest.skip("mounting a tmpfs needs root")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(where)], check=True)
    yield where
    subprocess.run(["umount", "-l", str(where)], check=True)


def _fill(disk: Path) -> Path:
    """Write a file until the disk is full; returns it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: closing writes nothing more
        try:
            while True:
                out.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_a_full_disk_pauses_the_crawl_and_loses_nothing(
    sqlite_catalog: sessionmaker[Session], small_disk: Path
) -> None:
    """With the store's disk full, staging writes fail: the recorder keeps its batches and
    retries, fetching pauses once `MAX_BACKLOG` outcomes wait (memory stays bounded), and
    when space comes back the crawl ends with every URL recorded once."""
    pages = 3 * MAX_BACKLOG
    site = start(SiteServer("127.0.5.1", SiteState(pages=pages, sitemap=False)))
    store = BlobStore.from_url(str(small_disk / "store"))
    filler = _fill(small_disk)
    spec = {
        "dataset": "full",
        "seeds": [site.origin + "/"] + [f"{site.origin}/page/{i}" for i in range(pages)],
        "scope": {"max_depth": 0, "sitemaps": False},
        "politeness": {"requests_per_second": 500, "concurrency_per_domain": 4},
    }
    result: list[tuple[str, Stats]] = []
    crawling = threading.Thread(target=lambda: result.append(crawl(spec, sqlite_catalog, store)))
    try:
        crawling.start()
        # Fetching stops short of the site while nothing can be committed.
        settled, seen = time.monotonic(), -1
        while time.monotonic() - settled < 3:
            if len(site.state.log) != seen:
                settled, seen = time.monotonic(), len(site.state.log)
            time.sleep(0.2)
        assert 0 < seen < pages, seen
        with sqlite_catalog() as session:
            assert session.scalar(select(StagingPart.id)) is None  # nothing could be staged
        filler.unlink()
        crawling.join(120)
        assert not crawling.is_alive()
    finally:
        with contextlib.suppress(OSError):
            filler.unlink()
        crawling.join(120)
        site.shutdown()
        site.server_close()
    [(job_id, stats)] = result
    assert_each_url_staged_once(sqlite_catalog, store, job_id, stats, pages + 1)
    assert not [p for p in (small_disk / "store").rglob("*.tmp-*")]  # no leftovers


def test_a_full_disk_during_the_build_fails_the_job_and_publishes_nothing(
    sqlite_catalog: sessionmaker[Session], small_disk: Path
) -> None:
    site = start(SiteServer("127.0.5.2", SiteState(pages=20, sitemap=False)))
    store = BlobStore.from_url(str(small_disk / "store"))
    spec = {
        "dataset": "full",
        "seeds": [site.origin + "/"],
        "politeness": {"requests_per_second": 200},
    }
    try:
        job_id, _ = crawl(spec, sqlite_catalog, store)  # staged; the build is next
    finally:
        site.shutdown()
        site.server_close()
    _fill(small_disk)

    job = build_job(sqlite_catalog, store, job_id, Settings(host_lease_s=5.0, build_retry_s=3.0))
    assert job.state == "failed"
    assert job.error is not None and "No space left on device" in job.error, job.error
    assert Snapshots(store).latest("full") is None  # no partial snapshot
