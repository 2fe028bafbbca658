"""A job from crawl to committed snapshot: the one sequence the CLI (and later the worker) runs."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.leases import dataset_lease
from harvester.catalog.models import FrontierEntry, Job, StagingPart
from harvester.crawl.frontier import set_job_state
from harvester.errors import BuildError
from harvester.spec import JobSpec
from harvester.store.blob import BlobStore
from harvester.store.builder import BuildInput, SnapshotBuilder
from harvester.store.manifest import Manifest
from harvester.store.snapshots import Snapshots

GONE_STATUSES = (404, 410)


def refresh_urls(store: BlobStore, dataset: str) -> list[str]:
    """The URLs of the dataset's latest snapshot: a new job revalidates every one of them."""
    snapshots = Snapshots(store)
    if snapshots.latest(dataset) is None:
        return []
    column = snapshots.documents(snapshots.manifest(dataset), columns=["url"]).column("url")
    return sorted(column.to_pylist())


def build_input(sessions: sessionmaker[Session], job_id: str, spec: JobSpec) -> BuildInput:
    """Collect a finished crawl's staging parts, gone URLs and counters from the catalog."""
    with sessions() as session:
        parts = session.scalars(
            select(StagingPart.path).where(StagingPart.job_id == job_id).order_by(StagingPart.id)
        ).all()
        gone = session.scalars(
            select(FrontierEntry.url).where(
                FrontierEntry.job_id == job_id,
                FrontierEntry.outcome == "failed",
                FrontierEntry.status.in_(GONE_STATUSES),
            )
        ).all()
        job = session.get(Job, job_id)
        stats = dict(job.stats or {}) if job else {}
    return BuildInput(spec, [job_id], list(parts), frozenset(gone), stats)


def build_snapshot(
    sessions: sessionmaker[Session], store: BlobStore, job_id: str, spec: JobSpec
) -> Manifest:
    """Build and commit the job's snapshot; the job ends `succeeded` or `failed` with why."""
    set_job_state(sessions, job_id, "building")
    # One build per dataset at a time (any process): the next version's number and its parent
    # are decided under the lease.
    with dataset_lease(sessions, spec.dataset, holder=job_id):
        snapshots = Snapshots(store)
        latest = snapshots.latest(spec.dataset)
        committed = snapshots.manifest(spec.dataset, latest) if latest else None
        if committed is not None and job_id in committed.jobs:
            manifest = committed  # a crash after the commit: the snapshot is already there
        else:
            try:
                manifest = SnapshotBuilder(store).build(build_input(sessions, job_id, spec))
            except BuildError as exc:
                set_job_state(sessions, job_id, "failed", error=str(exc))
                raise
    with sessions.begin() as session:
        job = session.get(Job, job_id)
        stats = dict(job.stats or {}) if job else {}
        stats |= {k: v for k, v in manifest.stats.items() if k.startswith("dedup/")}
        stats["build/documents"] = manifest.rows
        session.execute(
            update(Job)
            .where(Job.id == job_id)
            .values(snapshot_version=manifest.version, stats=stats)
        )
    set_job_state(sessions, job_id, "succeeded")
    return manifest
