"""Snapshots from real crawls: layout, checksums, loaders, refresh versions, leakage refusal."""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import Job, StagingPart
from harvester.config import Settings
from harvester.crawl.netguard import NetworkGuard
from harvester.errors import LeakageError
from harvester.jobs import build_snapshot
from harvester.service.worker import Worker
from harvester.spec import parse_spec
from harvester.staging import staging_prefix
from harvester.stats import Stats
from harvester.store.blob import BlobStore
from harvester.store.layout import version_prefix
from harvester.store.snapshots import Snapshots
from tests.conftest import cpu_pool, crawl, crawl_and_build
from tests.webtest import SiteServer


def _spec(sites: list[SiteServer], **extra: object) -> dict[str, object]:
    return {
        "dataset": "web",
        "seeds": [s.origin + "/" for s in sites],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 100, "concurrency_per_domain": 4},
        # small shards so the layout has several files per split
        "shards": {"max_bytes": 4096},
        "splits": {"train": 0.6, "validation": 0.2, "test": 0.2},
        **extra,
    }


def _by_url(store: BlobStore, dataset: str, version: int | None = None) -> dict[str, dict]:
    snapshots = Snapshots(store)
    table = snapshots.documents(snapshots.manifest(dataset, version))
    return {row["url"]: row for row in table.to_pylist()}


def test_snapshot_layout_checksums_and_loaders(
    catalog: sessionmaker[Session],
    sites: list[SiteServer],
    store: BlobStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, manifest = crawl_and_build(_spec(sites), catalog, store)
    root = Path(store.path(version_prefix("web", 1)))
    assert manifest.version == 1 and manifest.parent_version is None
    # The three sites serve the same 20 articles: one copy of each survives exact dedup.
    assert manifest.rows == 20 and manifest.stats["dedup/exact"] == 40
    assert manifest.stats["quality/dropped/too_short"] == 3  # the home pages
    for entry in manifest.files:
        data = (root / entry.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry.sha256 and len(data) == entry.bytes
    shards = sorted(p.name for p in (root / "data").iterdir())
    for split, info in manifest.splits.items():
        names = [s for s in shards if s.startswith(split + "-")]
        assert names == [
            f"{split}-{i:05d}-of-{info.shards:05d}.parquet" for i in range(info.shards)
        ]
    assert json.loads((root / "manifest.json").read_text())["leakage"]["cross_split_urls"] == 0
    assert manifest.splits["train"].shards > 1

    table = pq.read_table(root / "data")
    assert table.num_rows == 20
    for column in ("id", "url", "domain", "title", "text", "language", "fetched_at",
                   "published_at", "content_sha256", "raw_sha256", "extractor", "cluster_id",
                   "cluster_size", "pii_counts", "quality_word_count", "split"):  # fmt: skip
        assert column in table.column_names
    assert set(table.column("language").to_pylist()) == {"en"}

    count = duckdb.sql(f"select count(*) from '{root}/data/*.parquet'").fetchall()[0]
    assert count == (20,)

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # read when `datasets` is first imported
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets  # imported late: heavy, and only the loader test needs it

    cache = str(store.path("hf-cache"))
    by_dir = datasets.load_dataset("parquet", data_dir=str(root / "data"), cache_dir=cache)
    by_card = datasets.load_dataset(str(root), cache_dir=cache + "-card")
    for loaded in (by_dir, by_card):
        assert {k: v.num_rows for k, v in loaded.items()} == {
            k: v.rows for k, v in manifest.splits.items() if v.rows
        }


def test_refresh_keeps_ids_and_splits_and_records_changes(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    spec = _spec([site])
    crawl_and_build(spec, sqlite_catalog, store)
    before = _by_url(store, "web")

    site.state.revisions[3] = 1  # changed text and ETag
    site.state.gone.add(4)  # 404 now
    site.state.pages = 22  # pages 20 and 21 appear (linked from pages 19 and 20)
    _, manifest = crawl_and_build(spec, sqlite_catalog, store)
    after = _by_url(store, "web")

    assert manifest.version == 2 and manifest.parent_version == 1
    page = site.origin + "/page/"
    assert page + "4" not in after
    assert after[page + "3"]["content_sha256"] != before[page + "3"]["content_sha256"]
    assert {page + "20", page + "21"} <= set(after)
    for url, row in before.items():
        if url in after:
            assert (after[url]["id"], after[url]["split"]) == (row["id"], row["split"])
    assert manifest.changes.removed == 1 and manifest.changes.changed == 1
    assert manifest.changes.added == 2
    assert manifest.changes.unchanged == len(before) - 2
    revalidated = [h for h in site.state.log if h.headers.get("If-None-Match")]
    assert len(revalidated) >= 18  # unchanged pages came back as 304 and were carried
    assert manifest.stats["fetch/outcome/not-modified"] >= 17


def test_a_page_that_drops_its_etag_is_never_revalidated_with_the_old_one(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    spec = _spec([site])
    crawl_and_build(spec, sqlite_catalog, store)
    site.state.revisions[3] = 1  # changed text, and now served without an ETag
    site.state.unvalidated.add(3)
    crawl_and_build(spec, sqlite_catalog, store)
    site.state.log.clear()
    crawl_and_build(spec, sqlite_catalog, store)
    [third] = [h for h in site.state.log if h.path == "/page/3"]
    # The v1 ETag stood for the old text: sending it could keep that text for ever (a 304).
    assert "If-None-Match" not in third.headers


def test_a_page_that_was_gone_and_came_back_returns_to_the_dataset(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    spec = _spec([site])
    crawl_and_build(spec, sqlite_catalog, store)
    site.state.gone.add(3)  # a bad deploy: 404, so v2 drops it
    crawl_and_build(spec, sqlite_catalog, store)
    assert site.origin + "/page/3" not in _by_url(store, "web")
    site.state.gone.clear()  # back, unchanged: same text, same ETag as in v1
    crawl_and_build(spec, sqlite_catalog, store)
    assert site.origin + "/page/3" in _by_url(store, "web")


def test_a_page_that_failed_for_a_while_is_retried_by_the_refresh(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """Page 8 answers 503 during the first crawl; the pages that link to it (1, 2 and 7) are
    unchanged on the refresh (304: no links are read). The refresh retries it anyway."""
    site = sites[0]
    spec = _spec([site], retry={"max_attempts": 1})
    site.state.failing.add(8)
    crawl_and_build(spec, sqlite_catalog, store)
    page = site.origin + "/page/"
    assert page + "8" not in _by_url(store, "web")
    site.state.failing.clear()
    crawl_and_build(spec, sqlite_catalog, store)
    assert page + "8" in _by_url(store, "web")


def test_new_near_duplicate_is_dropped_against_the_parent(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.pages = 5
    crawl_and_build(_spec([site]), sqlite_catalog, store)
    site.state.copies = {5: 2}  # page 5 becomes a near copy of page 2
    site.state.pages = 6
    job_id, manifest = crawl_and_build(_spec([site]), sqlite_catalog, store)
    with sqlite_catalog() as session:
        job = session.get(Job, job_id)
        assert job is not None
        stats = Stats(job.stats)
    assert stats.get("dedup/near") + stats.get("dedup/exact") == 1
    assert site.origin + "/page/5" not in _by_url(store, "web")
    # Nothing else changed: no new version was written, the job names the one it kept.
    assert stats.get("build/unchanged") == 1
    assert manifest.version == job.snapshot_version == 1
    assert Snapshots(store).versions("web") == [1]


def test_leaking_split_assignment_is_refused(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.copies = {i: i - 10 for i in range(10, 20)}  # ten planted near duplicates
    keep_dups = {"pipeline": {"dedup": {"action": "keep"}}}
    halves = {"train": 0.5, "validation": 0.0, "test": 0.5}
    leaking = _spec([site], dataset="leaky", splits=halves | {"group_by": "url"}, **keep_dups)
    job_id, _ = crawl(leaking, sqlite_catalog, store)
    with pytest.raises(LeakageError, match="near duplicates"):
        build_snapshot(sqlite_catalog, store, job_id, parse_spec(leaking))
    assert Snapshots(store).versions("leaky") == []  # nothing committed

    grouped = _spec([site], dataset="grouped", splits=halves | {"group_by": "cluster"}, **keep_dups)
    _, manifest = crawl_and_build(grouped, sqlite_catalog, store)
    assert manifest.leakage.cross_split_near_duplicates == 0
    rows = _by_url(store, "grouped")
    for i in range(10, 20):
        copy, original = rows[f"{site.origin}/page/{i}"], rows[f"{site.origin}/page/{i - 10}"]
        assert copy["cluster_id"] == original["cluster_id"] and copy["split"] == original["split"]


def test_concurrent_builds_of_one_dataset_commit_consecutive_versions(
    catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    spec = _spec([sites[0]])
    jobs = [crawl(spec, catalog, store)[0]]
    sites[0].state.revisions = {1: 1}  # the second job sees a changed page: a new version
    jobs.append(crawl(spec, catalog, store)[0])
    results: list[object] = []

    def build(job_id: str) -> None:
        try:
            results.append(build_snapshot(catalog, store, job_id, parse_spec(spec)))
        except Exception as exc:  # surfaced by the assertion below
            results.append(exc)

    threads = [threading.Thread(target=build, args=(job_id,)) for job_id in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    snapshots = Snapshots(store)
    assert snapshots.versions("web") == [1, 2], results
    second = snapshots.manifest("web", 2)
    assert second.parent_version == 1 and set(second.jobs) | set(
        snapshots.manifest("web", 1).jobs
    ) == set(jobs)
    for version in (1, 2):
        prefix = version_prefix("web", version)
        for entry in snapshots.manifest("web", version).files:
            assert store.sha256(f"{prefix}/{entry.path}") == entry.sha256


def test_pages_robots_txt_now_disallows_or_the_scope_no_longer_takes_leave_the_dataset(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """A refresh carries what it could not revalidate, but never a page the site has since
    disallowed, nor one outside the refresh's own scope."""
    site = sites[0]
    crawl_and_build(_spec([site]), sqlite_catalog, store)
    page = site.origin + "/page/"
    assert {page + "3", page + "12"} <= set(_by_url(store, "web"))
    site.state.robots = "User-agent: *\nDisallow: /page/3\n"
    _, manifest = crawl_and_build(
        _spec([site], scope={"sitemaps": False, "exclude": ["/page/1[0-9]$"]}),
        sqlite_catalog,
        store,
    )
    after = set(_by_url(store, "web"))
    assert page + "3" not in after
    assert not [u for u in after if u.startswith(page + "1") and len(u) == len(page) + 2]
    assert page + "4" in after
    assert manifest.changes.removed == 1 + 10


def test_a_finished_jobs_staging_is_deleted_past_its_retention(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    """Staging holds every fetched page; once the job's snapshot is out and the retention
    (here none) has passed, a worker deletes it, files and rows."""
    job_id, _ = crawl(_spec(sites[:1]), sqlite_catalog, store)  # crawled and staged
    assert store.list(staging_prefix(job_id))
    worker = Worker(
        sqlite_catalog,
        store,
        Settings(host_lease_s=5.0, staging_retention_s=0),
        cpu_pool(),
        only_jobs={job_id},
        stop_when=lambda: not store.list(staging_prefix(job_id)),
        guard=NetworkGuard(True),
    )
    asyncio.run(worker.run())
    with sqlite_catalog() as session:
        job = session.get(Job, job_id)
        parts = session.scalars(select(StagingPart.path)).all()
    assert job is not None and job.state == "succeeded"
    assert parts == []
    assert len(_by_url(store, "web")) == 20  # the twenty articles
