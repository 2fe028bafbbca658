"""Worker processes: a SIGKILLed worker's job is resumed by the next one; two workers on
PostgreSQL never run the same job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.db import make_engine, migrate
from harvester.catalog.models import FrontierEntry, Job
from harvester.jobs import create_job
from harvester.spec import parse_spec
from tests.conftest import postgres_schema_url
from tests.webtest import SiteServer, SiteState, start

HARVESTER = str(Path(sys.executable).with_name("harvester"))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema_url()


@pytest.fixture
def catalog_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/h.db"


def _catalog(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    migrate(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


def _worker(database: str, store: Path, log: Path | None = None) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": database,
        "HARVESTER_STORAGE_URL": str(store),
        "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
        "HARVESTER_WORKER_STALE_S": "3",
    }
    if log is None:
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        return subprocess.Popen([HARVESTER, "worker"], env=env, **quiet)
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen([HARVESTER, "worker"], env=env, stdout=out, stderr=out)


def _job(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def _wait(sessions: sessionmaker[Session], job_id: str, states: tuple[str, ...]) -> Job:
    deadline = time.monotonic() + 120
    while (job := _job(sessions, job_id)).state not in states:
        assert time.monotonic() < deadline, f"job stuck in {job.state}"
        time.sleep(0.2)
    return job


def _spec(dataset: str, site: SiteServer, rate: float) -> Any:
    politeness = {"requests_per_second": rate}
    return parse_spec({"dataset": dataset, "seeds": [site.origin + "/"], "politeness": politeness})


def test_a_sigkilled_workers_job_is_resumed_by_the_next_worker(
    tmp_path: Path, catalog_url: str
) -> None:
    site = start(SiteServer("127.0.0.11", SiteState(pages=60, sitemap=False)))
    catalogs = _catalog(catalog_url)
    sessions = next(catalogs)
    try:
        job_id = create_job(sessions, _spec("resumed", site, 20))
        first = _worker(catalog_url, tmp_path / "store")
        deadline = time.monotonic() + 60
        while (_job(sessions, job_id).stats or {}).get("fetch/outcome/fetched", 0) < 10:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert _job(sessions, job_id).state == "running"
        second = _worker(catalog_url, tmp_path / "store")
        try:
            job = _wait(sessions, job_id, ("succeeded", "failed"))
        finally:
            second.terminate()
            second.wait(30)
        assert job.state == "succeeded" and job.snapshot_version == 1
        with sessions() as session:
            query = select(FrontierEntry.state).where(FrontierEntry.job_id == job_id)
            assert set(session.scalars(query)) == {"done"}
        fetched = Counter(h.path for h in site.state.log if h.path.startswith("/page/"))
        assert len(fetched) == 60
        # Fetched again: only pages not yet committed at the kill, i.e. those fetched in the
        # last flush interval (0.5 s) plus the pipeline's latency: about a second at 20/s.
        assert sum(n - 1 for n in fetched.values()) <= 20 * 1.0 + 2
    finally:
        next(catalogs, None)
        site.shutdown()
        site.server_close()


@pytest.mark.postgres
def test_two_workers_never_run_the_same_job(tmp_path: Path, postgres_url: str) -> None:
    sites = [start(SiteServer(f"127.0.0.{12 + i}", SiteState(pages=15))) for i in range(4)]
    catalogs = _catalog(postgres_url)
    sessions = next(catalogs)
    workers = [_worker(postgres_url, tmp_path / "store") for _ in range(2)]
    try:
        jobs = [create_job(sessions, _spec(f"d{i}", s, 50)) for i, s in enumerate(sites)]
        done = [_wait(sessions, job_id, ("succeeded", "failed")) for job_id in jobs]
        assert [j.state for j in done] == ["succeeded"] * 4
        for site in sites:
            pages = Counter(h.path for h in site.state.log if h.path.startswith("/page/"))
            assert len(pages) == 15 and max(pages.values()) == 1  # no page fetched twice
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
        next(catalogs, None)
        for site in sites:
            site.shutdown()
            site.server_close()


def test_sigterm_releases_the_job_and_keeps_every_outcome(tmp_path: Path, catalog_url: str) -> None:
    site = start(SiteServer("127.0.0.16", SiteState(pages=80, sitemap=False)))
    catalogs = _catalog(catalog_url)
    sessions = next(catalogs)
    try:
        job_id = create_job(sessions, _spec("released", site, 10))
        log = tmp_path / "worker.log"
        worker = _worker(catalog_url, tmp_path / "store", log)
        deadline = time.monotonic() + 60
        while (_job(sessions, job_id).stats or {}).get("fetch/outcome/fetched", 0) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
        job = _job(sessions, job_id)
        assert job.state == "queued", (job.state, job.error, log.read_text())
        assert job.snapshot_version is None  # back in the queue, nothing built
        with sessions() as session:
            done = session.scalars(
                select(FrontierEntry.url).where(
                    FrontierEntry.job_id == job_id, FrontierEntry.state == "done"
                )
            ).all()
        # every page the site answered before the stop has its outcome recorded
        served = {site.origin + h.path for h in site.state.log if h.path.startswith("/page/")}
        with sessions() as session:
            rows = session.execute(
                select(FrontierEntry.url, FrontierEntry.state, FrontierEntry.outcome).where(
                    FrontierEntry.job_id == job_id
                )
            ).all()
        detail = [r for r in rows if r.url in served - set(done)]
        important = [ln for ln in log.read_text().splitlines() if "httpx" not in ln]
        assert len(served) >= 5 and served <= set(done), (detail, important)
        second = _worker(catalog_url, tmp_path / "store")
        try:
            assert _wait(sessions, job_id, ("succeeded", "failed")).state == "succeeded"
        finally:
            second.terminate()
            second.wait(30)
    finally:
        next(catalogs, None)
        site.shutdown()
        site.server_close()
