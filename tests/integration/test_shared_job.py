"""One job served by two workers at once (in one process here, each with its own catalog
connection and source address): the page cap and the seen-set hold across them."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry, Job, WorkerRecord
from harvester.config import Settings
from harvester.crawl.netguard import NetworkGuard
from harvester.jobs import crawled, new_job
from harvester.service.worker import Worker
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from tests.conftest import cpu_pool
from tests.webtest import SiteServer


def test_two_workers_share_a_job_and_its_page_cap(
    catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    spec = parse_spec(
        {
            "dataset": "shared",
            "seeds": [s.origin + "/" for s in sites],
            "limits": {"max_pages": 40},
            "politeness": {"requests_per_second": 50},
        }
    )
    job_id = str(uuid.uuid4())

    def worker(source: str) -> Worker:
        return Worker(
            catalog,
            store,
            Settings(host_lease_s=5.0, source_address=source),
            cpu_pool(),
            only_jobs={job_id},
            builds=False,
            stop_when=lambda: crawled(catalog, job_id),
            guard=NetworkGuard(True),
        )

    def registered() -> int:
        with catalog() as session:
            return int(session.scalar(select(func.count()).select_from(WorkerRecord)) or 0)

    async def both() -> None:
        runs = [asyncio.create_task(worker(f"127.0.1.{n}").run()) for n in (1, 2)]
        # Both see each other from their first tick: polling the catalog, no event to await.
        while await asyncio.to_thread(registered) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        with catalog.begin() as session:
            session.add(new_job(job_id, spec))
        await asyncio.gather(*runs)

    asyncio.run(both())
    with catalog() as session:
        rows = session.scalar(
            select(func.count()).select_from(FrontierEntry).where(FrontierEntry.job_id == job_id)
        )
        job = session.get(Job, job_id)
        assert job is not None
    assert rows == job.admitted == 40  # the cap, counted once across both workers
    assert job.stats["frontier/discovered"] == 40
    peers = {hit.peer for site in sites for hit in site.state.log}
    assert peers == {"127.0.1.1", "127.0.1.2"}  # the hosts were shared out
    for site in sites:
        fetched = Counter(hit.path for hit in site.state.log)
        assert max(fetched.values()) == 1  # no URL fetched twice
