"""The job worker: claims queued jobs from the catalog, crawls, builds, and reports.

Claims are a compare-and-set on the job row, so two workers (on PostgreSQL, on any number of
machines) never run one job at once. A running job's worker heartbeats every second; a job
whose heartbeat is older than `worker_stale_s` (its worker was SIGKILLed) is claimed again and
resumes from its persisted frontier. SIGTERM stops claiming, lets in-flight requests finish,
keeps every outcome and releases the job to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import Job
from harvester.config import Settings
from harvester.cpu import CpuPool
from harvester.crawl.crawler import Crawler
from harvester.crawl.frontier import set_job_state
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import ProxyPool
from harvester.errors import BuildError, ConfigurationError
from harvester.jobs import build_snapshot, refresh_urls
from harvester.service.pools import load_pool
from harvester.spec import JobSpec, parse_spec
from harvester.store.blob import BlobStore

logger = logging.getLogger(__name__)

HEARTBEAT_S = 1.0
POLL_S = 0.5


class Worker:
    """Runs queued jobs one at a time until `stop()`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        settings: Settings,
        cpu: CpuPool,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._settings = settings
        self._cpu = cpu
        self.name = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._stopping = asyncio.Event()
        self.crawler: Crawler | None = None
        self.pools: dict[str, ProxyPool] = {}
        """Live pools of running jobs, by name (their health is shown by the API)."""

    def stop(self) -> None:
        """Stop claiming; the running job releases its URLs and goes back to the queue."""
        self._stopping.set()
        if self.crawler is not None:
            self.crawler.stop()

    def claim(self) -> str | None:
        """Atomically take the oldest queued (or abandoned) job; returns its id."""
        now = datetime.now(UTC)
        stale = now - timedelta(seconds=self._settings.worker_stale_s)
        claimable = or_(
            Job.state == "queued",
            (Job.state.in_(("running", "building"))) & (Job.heartbeat_at < stale),
        )
        with self._sessions() as session:
            candidates = session.scalars(
                select(Job.id)
                .where(claimable, Job.cancel_requested.is_(False))
                .order_by(Job.created_at)
                .limit(5)
            ).all()
        for job_id in candidates:
            with self._sessions.begin() as session:
                result = session.execute(
                    update(Job)
                    .where(Job.id == job_id, claimable, Job.cancel_requested.is_(False))
                    .values(state="running", worker=self.name, heartbeat_at=now)
                )
            if getattr(result, "rowcount", 0) == 1:  # compare-and-set: only one worker wins
                return job_id
        return None

    async def run(self) -> None:
        """Claim and run jobs until stopped."""
        while not self._stopping.is_set():
            job_id = await asyncio.to_thread(self.claim)
            if job_id is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), POLL_S)
                continue
            logger.info("claimed job", extra={"job_id": job_id, "worker": self.name})
            try:
                await self.run_job(job_id)
            except Exception as exc:  # one broken job must not take the worker down
                logger.exception("job failed", extra={"job_id": job_id})
                set_job_state(self._sessions, job_id, "failed", error=f"internal: {exc}")

    async def run_job(self, job_id: str) -> None:
        """Crawl and build one claimed job."""
        with self._sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            raw_spec = job.spec
        try:
            spec = parse_spec(raw_spec)
            pool = self._pool(spec)
        except ConfigurationError as exc:
            set_job_state(self._sessions, job_id, "failed", error=str(exc))
            return
        guard = NetworkGuard(self._settings.allow_private_networks, self._settings.allowed_networks)
        crawler = Crawler(
            spec,
            job_id,
            self._sessions,
            self._store,
            guard=guard,
            cpu=self._cpu,
            proxy_pool=pool,
            refresh_urls=await asyncio.to_thread(refresh_urls, self._store, spec.dataset),
        )
        self.crawler = crawler
        if pool is not None:
            self.pools[pool.name] = pool
        # The heartbeat lasts through the build too, so no other worker takes the job over.
        heartbeat = asyncio.create_task(self._heartbeat(job_id, crawler))
        try:
            await crawler.run()
            self.crawler = None
            if self._cancel_requested(job_id):
                set_job_state(self._sessions, job_id, "cancelled")
            elif not crawler.stopped:  # stopped means shutting down: the job is queued again
                await asyncio.to_thread(build_snapshot, self._sessions, self._store, job_id, spec)
        except BuildError as exc:
            logger.warning("build failed: %s", exc, extra={"job_id": job_id})
        finally:
            heartbeat.cancel()
            self.crawler = None

    def _pool(self, spec: JobSpec) -> ProxyPool | None:
        if spec.proxy_pool is None:
            return None
        config = load_pool(self._sessions, spec.proxy_pool)
        if config is None:
            raise ConfigurationError(f"no proxy pool named {spec.proxy_pool!r}")
        return ProxyPool(spec.proxy_pool, config)

    def _cancel_requested(self, job_id: str) -> bool:
        with self._sessions() as session:
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))

    async def _heartbeat(self, job_id: str, crawler: Crawler) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            cancel = await asyncio.to_thread(self._beat, job_id)
            if cancel:
                crawler.stop()

    def _beat(self, job_id: str) -> bool:
        with self._sessions.begin() as session:
            session.execute(
                update(Job).where(Job.id == job_id).values(heartbeat_at=datetime.now(UTC))
            )
            return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))
