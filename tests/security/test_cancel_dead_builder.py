"""A job cancelled while its builder was dead ends `cancelled` (review L6), not `building`
for ever: another worker takes the expired build over and honours the cancel."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import Job
from harvester.config import Settings
from harvester.jobs import JobState
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.conftest import build_job, crawl
from tests.webtest import SiteServer


def test_a_cancel_that_found_its_builder_dead_still_ends_the_job(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    spec = {
        "dataset": "web",
        "seeds": [sites[0].origin + "/"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 100},
    }
    job_id, _ = crawl(spec, sqlite_catalog, store)
    with sqlite_catalog.begin() as session:  # a builder claimed it, then died; then a cancel
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(
                state=JobState.BUILDING,
                worker="dead",
                token=Job.token + 1,
                lease_until=0.0,
                cancel_requested=True,
            )
        )

    job = build_job(sqlite_catalog, store, job_id, Settings(host_lease_s=5.0))
    assert job.state == "cancelled"
    assert Snapshots(store).latest("web") is None
