"""The crawl worker: leases hosts, serves every running job's URLs on them, builds finished
jobs. Any number of workers share one catalog; a job has no owner.

Every tick (`TICK_S`) a worker renews its host leases and its heartbeat (a host it can no
longer prove it holds is dropped at once), starts queued jobs (seeds inserted with the state
change), takes its fair share of the hosts that have work (free or expired leases: a dead
worker's hosts move within one lease period), and claims the build of each job whose URLs
all have an outcome. SIGTERM stops dispatching, lets in-flight requests finish, commits every
outcome and gives the hosts back; the jobs go on with the other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from harvester import jobs
from harvester.build.executor import executor as build_executor
from harvester.catalog.leases import HeldHost, HostLeases
from harvester.catalog.models import Job
from harvester.config import Settings
from harvester.cpu import CpuPool
from harvester.crawl.claims import Claims
from harvester.crawl.hostrunner import HostPolicy, HostRunner, Shared
from harvester.crawl.jobcontext import JobContext
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import ProxyPool
from harvester.crawl.recorder import OutcomeRecorder
from harvester.errors import BuildError, ConfigurationError, StorageError
from harvester.jobs import JobState
from harvester.service.pools import load_pool
from harvester.spec import JobSpec, parse_spec
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots

logger = logging.getLogger(__name__)

TICK_S = 0.5
FLUSH_S = 0.5
STOP_GRACE_S = 10.0
LEASE_MARGIN = 0.8
SWEEP_S = 60.0
_BUILD_BACKOFF_S = (2.0, 5.0, 10.0, 20.0, 30.0)
P = ParamSpec("P")
T = TypeVar("T")


class Worker:
    """Serves hosts (and through them, jobs) until `stop()`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        settings: Settings,
        cpu: CpuPool,
        *,
        only_jobs: set[str] | None = None,
        builds: bool = True,
        stop_when: Callable[[], bool] | None = None,
        guard: NetworkGuard | None = None,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._settings = settings
        self._only = only_jobs
        self._builds_enabled = builds
        self._stop_when = stop_when
        self.name = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._leases = HostLeases(sessions, self.name, settings.host_lease_s)
        self._guard = guard or NetworkGuard(
            settings.allow_private_networks, settings.allowed_networks
        )
        self._db = ThreadPoolExecutor(1, thread_name_prefix="catalog")
        self.jobs: dict[str, JobContext] = {}
        self.runners: dict[str, HostRunner] = {}
        self._tokens: dict[str, int] = {}
        self._waiting: dict[str, str | None] = {}  # what the catalog says each host waits for
        self._serving: set[asyncio.Task[None]] = set()
        self._closing: set[asyncio.Task[None]] = set()  # ended jobs, closed once idle
        self._next_sweep = 0.0
        self._builds: dict[str, threading.Thread] = {}
        self.pools: dict[str, ProxyPool] = {}
        """Live pools of running jobs, by name (their health is shown by the API)."""
        self.recorder = OutcomeRecorder(
            sessions, store, self.name, lambda: self._tokens, self._in_catalog, self._fenced
        )
        self._shared = Shared(
            self.jobs,
            Claims(
                sessions,
                self.name,
                lambda: {job_id: ctx.ref for job_id, ctx in self.jobs.items()},
                self._in_catalog,
            ),
            self.recorder,
            cpu,
            asyncio.Semaphore(cpu.workers * 16),
            self._flush_soon,
            self._proven,
        )
        self._stopping = asyncio.Event()
        self._flush_now = asyncio.Event()
        self._renewed_at = time.monotonic()
        self._workers = 1

    async def _in_catalog(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        # One catalog thread: SQLite wants a single writer, one connection per worker keeps
        # lock order simple on PostgreSQL, and the event loop never blocks on a commit.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, lambda: fn(*args, **kwargs))

    def stop(self) -> None:
        """Stop dispatching; in-flight requests finish and every outcome is committed."""
        self._stopping.set()

    @property
    def stopped(self) -> bool:
        """True once `stop()` was called."""
        return self._stopping.is_set()

    async def run(self) -> None:
        """Tick until stopped (or `stop_when()`), then shut down cleanly."""
        flusher = asyncio.create_task(self._flush_loop())
        logger.info("worker %s started", self.name, extra={"worker": self.name})
        try:
            while not self._stopping.is_set():
                await self._tick()
                if self._stop_when is not None and await asyncio.to_thread(self._stop_when):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), TICK_S)
        finally:
            await self._shutdown()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            self._db.shutdown()

    async def _tick(self) -> None:
        steps: list[Callable[[], Awaitable[None]]] = [self._heartbeat, self._sync_jobs]
        if not self._stopping.is_set():
            steps += [self._balance, self._claim_builds, self._sweep]
        for step in steps:
            try:
                await step()
            except (SQLAlchemyError, StorageError) as exc:
                # The catalog or the store is down for now: the next tick tries again.
                logger.warning("%s failed: %s", step.__name__, exc)
            except Exception:
                logger.exception("%s failed", step.__name__)

    # ---- leases ------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        started = time.monotonic()
        try:
            runners = [r for host, r in self.runners.items() if host in self._tokens]
            waiting = {r.host: r.waiting() for r in runners}
            changed = {h: w for h, w in waiting.items() if self._waiting.get(h) != w}
            held, self._workers = await self._in_catalog(
                self._leases.heartbeat, list(self._tokens), changed
            )
            self._waiting = waiting
        except SQLAlchemyError:
            if not self._proven():
                for host in list(self._tokens):
                    self._lose(host)
            raise
        self._renewed_at = started
        for host, token in list(self._tokens.items()):
            lease = held.get(host)
            if lease is None or lease.token != token:
                self._lose(host)
            elif (runner := self.runners.get(host)) is None:
                continue  # acquired in this tick, its runner not yet started
            elif lease.blocked:
                runner.stop()
            else:
                runner.set_policy(HostPolicy(lease.max_rps, lease.concurrency))

    def _proven(self) -> bool:
        """Whether the heartbeat that last renewed our leases is recent enough to prove we
        still hold them, by this process's clock: past `LEASE_MARGIN` of the lease period,
        another worker may take a host over before we learn of it, so nothing is fetched."""
        return time.monotonic() - self._renewed_at < self._settings.host_lease_s * LEASE_MARGIN

    def _lose(self, host: str) -> None:
        logger.warning("lost the lease on %s", host, extra={"worker": self.name})
        self._tokens.pop(host, None)
        runner = self.runners.get(host)
        if runner is not None:
            runner.lose()

    def _fenced(self, hosts: set[str]) -> None:
        for host in hosts:
            if host in self._tokens:
                self._lose(host)

    async def _balance(self) -> None:
        demand = await self._in_catalog(self._leases.demand, self._only_list())
        share = min(self._settings.worker_hosts, max(1, math.ceil(demand / self._workers)))
        want = share - len(self._tokens)
        if want > 0:
            taken = await self._in_catalog(self._leases.acquire, want, self._only_list())
            for lease in taken:
                self._serve(lease)
        elif want < -1:  # a worker joined: give back the quietest hosts beyond our share
            quiet = sorted(self.runners.values(), key=lambda r: r.queued + r.in_flight)
            for runner in quiet[: -want - 1]:
                runner.stop()

    def _only_list(self) -> list[str] | None:
        return sorted(self._only) if self._only is not None else None

    def _serve(self, lease: HeldHost) -> None:
        policy = HostPolicy(lease.max_rps, lease.concurrency)
        runner = HostRunner(lease.host, lease.token, self._shared, policy, lease.wait_s)
        self._tokens[lease.host] = lease.token
        self.runners[lease.host] = runner
        task = asyncio.create_task(self._run_host(runner))
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _run_host(self, runner: HostRunner) -> None:
        try:
            await runner.run()
        finally:
            if not runner.lost and self._tokens.get(runner.host) == runner.token:
                await self.recorder.flush()  # its outcomes first, then the lease
                # Forgotten before the release, so the heartbeat never mistakes it for lost.
                if self._tokens.pop(runner.host, None) == runner.token:
                    gap = runner.controller.gap_left()
                    try:
                        await self._in_catalog(self._leases.release, runner.host, runner.token, gap)
                    except SQLAlchemyError as exc:
                        logger.warning("release of %s failed (it expires): %s", runner.host, exc)
            elif runner.lost and self._tokens.get(runner.host) == runner.token:
                # It stopped because no heartbeat got through: never renewed again, the lease
                # expires and whoever takes the host next puts its claimed URLs back.
                logger.warning("lost the lease on %s: no heartbeat proves it", runner.host)
                del self._tokens[runner.host]
            if self.runners.get(runner.host) is runner:
                del self.runners[runner.host]
            for context in self.jobs.values():
                await context.fetcher.aclose_host(runner.host)

    # ---- jobs --------------------------------------------------------------------------

    async def _sync_jobs(self) -> None:
        rows = await self._in_catalog(self._live_jobs)
        live = {row.id for row in rows}
        for job_id in list(self.jobs):
            if job_id not in live:  # cancelled, building or done: no more URLs of it
                context = self.jobs.pop(job_id)
                tasks = [
                    task
                    for runner in self.runners.values()
                    for task in runner.drop_job(job_id, STOP_GRACE_S)
                ]
                closing = asyncio.create_task(_close_after(context, tasks))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        for row in rows:
            if row.state == JobState.QUEUED and not self._stopping.is_set():
                if await self._start(row.id, row.spec) and row.id not in self.jobs:
                    await self._join(row.id, row.spec)  # now, not a tick later
            elif row.state == JobState.RUNNING and row.id not in self.jobs:
                await self._join(row.id, row.spec)
            limit = (row.spec.get("limits") or {}).get("max_duration_s")
            if row.state == JobState.RUNNING and limit and row.started_at is not None:
                started = row.started_at.replace(tzinfo=row.started_at.tzinfo or UTC)
                if (datetime.now(UTC) - started).total_seconds() > limit:
                    await self._in_catalog(jobs.expire, self._sessions, row.id)

    def _live_jobs(self) -> list[Any]:
        query = select(Job.id, Job.state, Job.spec, Job.started_at).where(
            Job.state.in_((JobState.QUEUED, JobState.RUNNING)), Job.cancel_requested.is_(False)
        )
        if self._only is not None:
            query = query.where(Job.id.in_(sorted(self._only)))
        else:  # a service worker: never a `harvester crawl` process's job
            query = query.where(Job.local.is_(False))
        with self._sessions() as session:
            return list(session.execute(query.order_by(Job.created_at)).all())

    def _spec(self, job_id: str, raw: dict[str, Any]) -> JobSpec | None:
        try:
            return parse_spec(raw)
        except ConfigurationError as exc:
            jobs.finish(self._sessions, job_id, JobState.FAILED, str(exc))
            return None

    async def _start(self, job_id: str, raw: dict[str, Any]) -> bool:
        """Start a queued job (its seeds go in with the state change); False if another
        worker did, or its spec no longer validates."""
        spec = await self._in_catalog(self._spec, job_id, raw)
        if spec is None:
            return False
        known = await asyncio.to_thread(
            jobs.refresh_urls, self._sessions, self._store, spec.dataset
        )
        if not await self._in_catalog(jobs.start, self._sessions, job_id, spec, known):
            return False
        logger.info("started job", extra={"job_id": job_id, "worker": self.name})
        return True

    async def _join(self, job_id: str, raw: dict[str, Any]) -> None:
        spec = await self._in_catalog(self._spec, job_id, raw)
        if spec is None:
            return
        pool = None
        if spec.proxy_pool is not None:
            config = await self._in_catalog(load_pool, self._sessions, spec.proxy_pool)
            if config is None:
                error = f"no proxy pool named {spec.proxy_pool!r}"
                await self._in_catalog(jobs.finish, self._sessions, job_id, JobState.FAILED, error)
                return
            pool = self.pools.get(spec.proxy_pool) or ProxyPool(spec.proxy_pool, config)
            self.pools[spec.proxy_pool] = pool
        self.jobs[job_id] = await asyncio.to_thread(self._context, job_id, spec, pool)
        for runner in self.runners.values():
            runner.wake()  # the job may have URLs on hosts already held

    def use(self, job_id: str, spec: JobSpec, pool: ProxyPool | None) -> None:
        """Serve `job_id` with a proxy pool given in code (the CLI's `--proxies` file)."""
        self.jobs[job_id] = self._context(job_id, spec, pool)

    def _context(self, job_id: str, spec: JobSpec, pool: ProxyPool | None) -> JobContext:
        return JobContext.create(
            job_id,
            spec,
            self._guard,
            pool,
            has_snapshot=Snapshots(self._store).latest(spec.dataset) is not None,
            source_address=self._settings.source_address,
            ca_file=self._settings.ca_file,
        )

    async def _claim_builds(self) -> None:
        if not self._builds_enabled:
            return
        for job_id in await self._in_catalog(jobs.buildable, self._sessions, self._only_list()):
            if job_id in self._builds:
                continue
            token = await self._in_catalog(jobs.claim_build, self._sessions, job_id, self.name)
            if token is not None:
                self._start_build(job_id, token)

    def _start_build(self, job_id: str, token: int) -> None:
        def build() -> None:
            try:
                self._build(job_id, token)
            except Exception as exc:  # one broken build must not take the worker down
                logger.exception("build crashed", extra={"job_id": job_id})
                with contextlib.suppress(Exception):
                    jobs.finish(
                        self._sessions,
                        job_id,
                        JobState.FAILED,
                        f"internal: {exc}",
                        fence=(self.name, token),
                    )
            finally:
                self._builds.pop(job_id, None)

        # A daemon thread: a SIGTERM never waits for a build; its claim expires and another
        # worker takes the build over.
        thread = threading.Thread(target=build, daemon=True, name=f"build-{job_id[:8]}")
        self._builds[job_id] = thread
        logger.info("building", extra={"job_id": job_id, "worker": self.name})
        thread.start()

    def _build(self, job_id: str, token: int) -> None:
        """Build the job's snapshot; a catalog or store outage is waited out (with back-off,
        holding the build claim) for up to `build_retry_s`, then fails the job with why."""
        give_up = time.monotonic() + self._settings.build_retry_s
        for attempt in itertools.count():
            try:
                with self._sessions() as session:
                    raw = session.scalar(select(Job.spec).where(Job.id == job_id))
                spec = parse_spec(raw or {})
                jobs.build(
                    self._sessions,
                    self._store,
                    job_id,
                    spec,
                    self.name,
                    token,
                    self._settings.build_memory_mb,
                    build_executor(self._settings.build_executor, self._settings.ray_address),
                )
                self._next_sweep = 0.0  # a finished job: its staging may be due now
                return
            except BuildError as exc:
                logger.warning("build failed: %s", exc, extra={"job_id": job_id})
                return
            except (StorageError, SQLAlchemyError) as exc:
                what = "storage" if isinstance(exc, StorageError) else "catalog"
                reason = f"{what}: {exc}" if what == "storage" else f"{what}: {type(exc).__name__}"
                delay = _BUILD_BACKOFF_S[min(attempt, len(_BUILD_BACKOFF_S) - 1)]
                if time.monotonic() + delay > give_up:
                    logger.warning("build failed: %s", reason, extra={"job_id": job_id})
                    with contextlib.suppress(Exception):
                        jobs.finish(
                            self._sessions,
                            job_id,
                            JobState.FAILED,
                            reason,
                            fence=(self.name, token),
                        )
                    return
                logger.warning(
                    "build interrupted (%s); retrying in %.0f s", reason, delay,
                    extra={"job_id": job_id},
                )  # fmt: skip
                if not self._hold_build(job_id, token, delay):
                    return  # another worker took the build over

    def _hold_build(self, job_id: str, token: int, seconds: float) -> bool:
        """Wait `seconds`, keeping the build claim alive; False when it moved."""
        until = time.monotonic() + seconds
        while (left := until - time.monotonic()) > 0:
            time.sleep(min(left, jobs.BUILD_BEAT_S))
            try:
                if not jobs.renew_build(self._sessions, job_id, self.name, token):
                    return False
            except SQLAlchemyError:
                continue  # the catalog is still down: the claim holds until it expires
        return True

    async def _sweep(self) -> None:
        """Now and then, delete the staging parts of jobs finished past the retention."""
        if time.monotonic() < self._next_sweep:
            return
        self._next_sweep = time.monotonic() + SWEEP_S
        retention = self._settings.staging_retention_s
        swept = await asyncio.to_thread(jobs.sweep_staging, self._sessions, self._store, retention)
        if swept:
            logger.info("deleted the staging parts of %d finished jobs", swept)

    # ---- committing and stopping -------------------------------------------------------

    def _flush_soon(self) -> None:
        self._flush_now.set()

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), FLUSH_S)
            self._flush_now.clear()
            # Shielded: cancelling this loop at shutdown must not abandon a flush halfway.
            for host in await asyncio.shield(self.recorder.flush()):
                if (runner := self.runners.get(host)) is not None:
                    runner.wake()  # it has new URLs to claim

    async def _shutdown(self) -> None:
        for runner in self.runners.values():
            runner.stop()
        if self._serving:
            _, late = await asyncio.wait(set(self._serving), timeout=STOP_GRACE_S)
            if late:
                for runner in list(self.runners.values()):
                    runner.abandon()  # still busy after the grace period: their URLs requeue
                await asyncio.wait(late)
        await asyncio.gather(*self._closing)
        await self.recorder.flush()
        for context in self.jobs.values():
            await context.aclose()
        self.jobs.clear()
        with contextlib.suppress(SQLAlchemyError):  # else its heartbeat row simply expires
            await self._in_catalog(self._leases.retire)


async def _close_after(context: JobContext, tasks: list[asyncio.Task[None]]) -> None:
    """Close an ended job's clients once its last in-flight URLs are done or cancelled."""
    await asyncio.gather(*tasks, return_exceptions=True)
    await context.aclose()
