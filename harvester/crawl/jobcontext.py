"""What a worker keeps of each running job it serves: spec, admission, fetcher, proxy pool."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from harvester.crawl.fetcher import Fetcher
from harvester.crawl.frontier import Admission, JobRef
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import ProxyPool
from harvester.spec import JobSpec


@dataclass
class JobContext:
    """One job as served by this worker (any number of workers serve it at once)."""

    job_id: str
    spec: JobSpec
    admission: Admission
    fetcher: Fetcher
    proxy_pool: ProxyPool | None
    slots: asyncio.Semaphore
    """`limits.global_concurrency`: this job's requests in flight in this worker."""
    revalidate: bool = False
    """Send conditional requests: the spec asks for them and the dataset has a snapshot."""
    contacted: set[str] = field(default_factory=set)
    """Origins whose sitemaps this worker already read for the job."""
    sitemaps_read: int = 0

    @classmethod
    def create(
        cls,
        job_id: str,
        spec: JobSpec,
        guard: NetworkGuard,
        proxy_pool: ProxyPool | None,
        *,
        has_snapshot: bool,
        source_address: str | None = None,
        ca_file: str | None = None,
    ) -> JobContext:
        """Wire a job's parts from its spec."""
        return cls(
            job_id,
            spec,
            Admission(job_id, spec),
            Fetcher(
                spec.limits,
                spec.politeness.user_agent,
                guard,
                source_address=source_address,
                ca_file=ca_file,
            ),
            proxy_pool,
            asyncio.Semaphore(spec.limits.global_concurrency),
            revalidate=spec.conditional_requests and has_snapshot,
        )

    @property
    def ref(self) -> JobRef:
        """What a claim needs to know of the job."""
        return JobRef(self.spec.dataset, self.revalidate)

    async def aclose(self) -> None:
        """Close the job's connections."""
        await self.fetcher.aclose()
