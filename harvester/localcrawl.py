"""`harvester crawl`'s engine: one job run in this process, with the live display that
`harvester jobs follow` shows too, then what it came to. Loaded only by that command."""

from __future__ import annotations

import asyncio
import signal

import uvloop
from rich.live import Live
from sqlalchemy.orm import Session, sessionmaker

from harvester.api.routes.jobs import job_out
from harvester.api.schemas import HostProgress, JobOut
from harvester.catalog.db import open_catalog
from harvester.catalog.models import Job
from harvester.config import Settings
from harvester.cpu import CpuPool
from harvester.crawl.proxies import ProxyPool
from harvester.jobs import FINISHED, JobState, create_job, find_resumable
from harvester.jobview import host_counts, waiting
from harvester.progressview import ProgressView, outcome_lines, snapshot_lines
from harvester.remote_cli import console, error
from harvester.service.worker import Worker
from harvester.spec import JobSpec
from harvester.staging import staging_prefix
from harvester.store.blob import BlobStore
from harvester.store.layout import version_prefix
from harvester.store.snapshots import Snapshots


def _local_view(sessions: sessionmaker[Session], job_id: str) -> tuple[JobOut, list[HostProgress]]:
    """The job and its hosts as the API would show them."""
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        hosts = [HostProgress(**vars(h)) for h in host_counts(session, job_id, 12)]
        return job_out(job, waits=waiting(session, job_id)), hosts


def _job(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


async def _run_with_progress(
    worker: Worker, sessions: sessionmaker[Session], job_id: str, show: bool
) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, worker.stop)
    task = asyncio.create_task(worker.run())
    if show:
        view = ProgressView()
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while not task.done():
                job, hosts = await asyncio.to_thread(_local_view, sessions, job_id)
                live.update(view.render(job, hosts))
                await asyncio.wait([task], timeout=0.5)
    await task


def run_local(
    job_spec: JobSpec,
    pool: ProxyPool | None,
    settings: Settings,
    store: BlobStore,
    *,
    fresh: bool,
    allow_private: bool,
    show: bool,
) -> int:
    """Run (or resume) the job, build its snapshot and print what came of it; the exit
    status: 0 committed, 1 failed, 130 stopped early (run again to resume)."""
    sessions = open_catalog(settings.database_url)
    job_id = None if fresh else find_resumable(sessions, job_spec)
    if job_id:
        console.print(f"resuming job {job_id}")
    else:
        job_id = create_job(sessions, job_spec, local=True)
        console.print(f"job {job_id}")
    if allow_private:
        settings = settings.model_copy(update={"allow_private_networks": True})
    with CpuPool(memory_mb=settings.pipeline_memory_mb) as cpu:
        cpu.warm()
        worker = Worker(
            sessions,
            store,
            settings,
            cpu,
            only_jobs={job_id},
            stop_when=lambda: _job(sessions, job_id).state in FINISHED,
        )
        worker.use(job_id, job_spec, pool)
        uvloop.run(_run_with_progress(worker, sessions, job_id, show))
    job = _job(sessions, job_id)
    for line in outcome_lines(_local_view(sessions, job_id)[0]):
        print(line)
    print(f"staging: {store.path(staging_prefix(job_id))}")
    if job.state not in FINISHED:
        console.print("stopped; run the same command again to resume")
        return 130
    if job.state != JobState.SUCCEEDED or job.snapshot_version is None:
        error(job.state, job.error or "cancelled")
        return 1
    manifest = Snapshots(store).manifest(job_spec.dataset, job.snapshot_version)
    for line in snapshot_lines(manifest):
        print(line)
    print(f"snapshot: {store.path(version_prefix(manifest.dataset, manifest.version))}")
    return 0
