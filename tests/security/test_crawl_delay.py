"""A hostile robots.txt Crawl-delay cannot wedge a host (review H4): one longer than the job
will wait skips the origin's URLs at once instead of sleeping for years."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import FrontierEntry
from harvester.crawl.ratecontrol import DomainRateController
from harvester.store.blob import BlobStore
from tests.conftest import crawl
from tests.webtest import SiteServer


def test_a_crawl_delay_of_thirty_years_skips_the_origin(
    sqlite_catalog: sessionmaker[Session], sites: list[SiteServer], store: BlobStore
) -> None:
    site = sites[0]
    site.state.robots = "User-agent: *\nCrawl-delay: 1000000000\n"
    spec = {
        "dataset": "web",
        "seeds": [site.origin + "/", site.origin + "/page/1"],
        "scope": {"sitemaps": False},
        "politeness": {"requests_per_second": 50},
    }
    job_id, _ = crawl(spec, sqlite_catalog, store)
    with sqlite_catalog() as session:
        rows = session.execute(
            select(FrontierEntry.outcome, FrontierEntry.reason).where(
                FrontierEntry.job_id == job_id
            )
        ).all()
    assert set(rows) == {("skipped", "robots/crawl-delay")}
    assert site.state.paths() == ["/robots.txt"]  # nothing else was ever requested


def test_the_rate_never_falls_to_zero() -> None:
    controller = DomainRateController(1.0)
    controller.set_ceiling(0.0)  # what a Crawl-delay of infinity would ask
    assert controller.ceiling > 0 and controller.rate > 0
