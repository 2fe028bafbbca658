"""The job state machine: every transition of a job, guarded, in one place.

    queued ──start──► running ──(no URL pending or claimed)──► building ──► succeeded
       │                 │                                        │
       └──cancel─────────┴──cancel──► cancelled                   └──► failed

A job has no owner while it runs: whichever worker holds one of its hosts works on it. Exactly
one worker builds it, by a compare-and-set on the job row that also bumps the job's fencing
token; a builder that stops heartbeating is replaced and its late writes are refused.
"""

from __future__ import annotations

import enum
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from harvester.build import process as build_process
from harvester.build.executor import LOCAL, Executor
from harvester.build.inputs import BuildInput
from harvester.build.version import Unchanged
from harvester.catalog.clock import db_now
from harvester.catalog.leases import dataset_lease
from harvester.catalog.models import FrontierEntry, Job, StagingPart
from harvester.crawl.frontier import Admission, insert_urls, merge_counters
from harvester.errors import BuildError, LeaseLost
from harvester.spec import JobSpec
from harvester.staging import staging_prefix
from harvester.store.blob import BlobStore
from harvester.store.manifest import Manifest
from harvester.store.snapshots import Snapshots

GONE_STATUSES = (404, 410)
BUILD_LEASE_S = 30.0
BUILD_BEAT_S = 2.0


class JobState(enum.StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    BUILDING = "building"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


UNFINISHED = (JobState.QUEUED, JobState.RUNNING, JobState.BUILDING)
FINISHED = (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


def create_job(
    sessions: sessionmaker[Session],
    spec: JobSpec,
    schedule_id: str | None = None,
    *,
    local: bool = False,
) -> str:
    """Queue a job for `spec` (`local`: for this process alone, see `Job.local`); its id."""
    job_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(new_job(job_id, spec, schedule_id, local=local))
    return job_id


def new_job(
    job_id: str, spec: JobSpec, schedule_id: str | None = None, *, local: bool = False
) -> Job:
    """A queued job row (for callers that insert it in a transaction of their own)."""
    return Job(
        id=job_id,
        dataset=spec.dataset,
        spec=spec.model_dump(mode="json"),
        spec_hash=spec.fingerprint(),
        state=JobState.QUEUED,
        created_at=datetime.now(UTC),
        stats={},
        schedule_id=schedule_id,
        token=0,
        admitted=0,
        local=local,
    )


def find_resumable(sessions: sessionmaker[Session], spec: JobSpec) -> str | None:
    """The newest unfinished local job with exactly this spec, if any (a killed `harvester
    crawl` to resume)."""
    with sessions() as session:
        return session.scalar(
            select(Job.id)
            .where(
                Job.local.is_(True),
                Job.dataset == spec.dataset,
                Job.spec_hash == spec.fingerprint(),
                Job.state.in_(UNFINISHED),
            )
            .order_by(Job.created_at.desc())
            .limit(1)
        )


def start(
    sessions: sessionmaker[Session], job_id: str, spec: JobSpec, known: Sequence[str]
) -> bool:
    """queued → running, with the seeds (and a refresh's known URLs) inserted in the same
    transaction; False when another worker started it first."""
    counters: Counter[str] = Counter()
    rows = Admission(job_id, spec).seeds(known, counters)
    with sessions.begin() as session:
        moved = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state == JobState.QUEUED)
            .values(state=JobState.RUNNING, started_at=datetime.now(UTC))
        )
        if getattr(moved, "rowcount", 0) != 1:
            return False  # nothing was written
        insert_urls(session, job_id, rows, spec.limits.max_pages, counters)
        merge_counters(session, job_id, +counters)
    return True


def _ready_to_build(session: Session) -> ColumnElement[bool]:
    """A job whose build may be claimed: crawled (no URL pending or claimed), or building
    under a claim its builder stopped renewing."""
    crawled = ~exists(
        select(FrontierEntry.id).where(
            FrontierEntry.job_id == Job.id, FrontierEntry.state != "done"
        )
    )
    # A build whose builder died is taken over even when a cancel came meanwhile: the new
    # builder sees the cancel before it writes anything and ends the job `cancelled`.
    return or_(
        (Job.state == JobState.RUNNING) & crawled & Job.cancel_requested.is_(False),
        (Job.state == JobState.BUILDING) & (Job.lease_until < db_now(session)),
    )


def buildable(sessions: sessionmaker[Session], only: Sequence[str] | None = None) -> list[str]:
    """The jobs whose build a worker may claim now (among `only`, if given; a service
    worker's, `only` None, never a local job's)."""
    with sessions() as session:
        query = select(Job.id).where(_ready_to_build(session))
        if only is not None:
            query = query.where(Job.id.in_(list(only)))
        else:
            query = query.where(Job.local.is_(False))
        return list(session.scalars(query))


def claim_build(
    sessions: sessionmaker[Session], job_id: str, worker: str, lease_s: float = BUILD_LEASE_S
) -> int | None:
    """Become the job's one builder: running → building once no URL is pending or claimed,
    or take over a build whose builder stopped renewing. Returns the fencing token."""
    with sessions.begin() as session:
        return session.scalar(
            update(Job)
            .where(Job.id == job_id, _ready_to_build(session))
            .values(
                state=JobState.BUILDING,
                worker=worker,
                token=Job.token + 1,
                lease_until=db_now(session) + lease_s,
                heartbeat_at=datetime.now(UTC),
            )
            .returning(Job.token)
        )


def renew_build(sessions: sessionmaker[Session], job_id: str, worker: str, token: int) -> bool:
    """Extend the build claim; False when it was taken over (fencing token moved)."""
    with sessions.begin() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.worker == worker, Job.token == token)
            .values(lease_until=db_now(session) + BUILD_LEASE_S, heartbeat_at=datetime.now(UTC))
        )
    return getattr(result, "rowcount", 0) == 1


def finish(
    sessions: sessionmaker[Session],
    job_id: str,
    state: JobState,
    error: str | None = None,
    *,
    fence: tuple[str, int] | None = None,
    values: dict[str, Any] | None = None,
) -> bool:
    """Move an unfinished job to a final state (a builder passes its (worker, token) fence).
    False when the job was already finished or the fence moved."""
    query = update(Job).where(Job.id == job_id, Job.state.in_(UNFINISHED))
    if fence is not None:
        query = query.where(Job.worker == fence[0], Job.token == fence[1])
    with sessions.begin() as session:
        result = session.execute(
            query.values(state=state, error=error, finished_at=datetime.now(UTC), **(values or {}))
        )
    return getattr(result, "rowcount", 0) == 1


def cancel(sessions: sessionmaker[Session], job_id: str) -> bool:
    """Cancel: a queued or running job is cancelled at once (workers stop claiming its URLs;
    in-flight ones keep their outcomes); a build stops before its commit. False when the
    job was already finished."""
    with sessions.begin() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_(UNFINISHED))
            .values(cancel_requested=True)
        )
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.state.in_((JobState.QUEUED, JobState.RUNNING)))
            .values(state=JobState.CANCELLED, finished_at=datetime.now(UTC))
        )
    return getattr(result, "rowcount", 0) == 1


def sweep_staging(
    sessions: sessionmaker[Session], store: BlobStore, retention_s: float, limit: int = 20
) -> int:
    """Delete the staging parts of up to `limit` jobs finished more than `retention_s` ago
    (their snapshot holds what was kept); returns how many jobs were swept. Files go first:
    a crash in between leaves rows that the next sweep removes."""
    cutoff = datetime.now(UTC) - timedelta(seconds=retention_s)
    with sessions() as session:
        job_ids = session.scalars(
            select(StagingPart.job_id)
            .join(Job, Job.id == StagingPart.job_id)
            .where(Job.state.in_(FINISHED), Job.finished_at < cutoff)
            .distinct()
            .limit(limit)
        ).all()
    for job_id in job_ids:
        store.delete_dir(staging_prefix(job_id))
        with sessions.begin() as session:
            session.execute(delete(StagingPart).where(StagingPart.job_id == job_id))
    return len(job_ids)


def refresh_urls(sessions: sessionmaker[Session], store: BlobStore, dataset: str) -> list[str]:
    """The URLs a new job of the dataset revalidates: every document of its latest snapshot,
    and the URLs whose fetch failed for a passing reason in the jobs that made it (a page
    linked only from unchanged pages, which answer 304 and so lead nowhere, gets its retry)."""
    snapshots = Snapshots(store)
    if snapshots.latest(dataset) is None:
        return []
    manifest = snapshots.manifest(dataset)
    urls = set(snapshots.documents(manifest, columns=["url"]).column("url").to_pylist())
    with sessions() as session:
        failed = session.scalars(
            select(FrontierEntry.url).where(
                FrontierEntry.job_id.in_(manifest.jobs),
                FrontierEntry.outcome == "failed",
                or_(FrontierEntry.status.is_(None), FrontierEntry.status.not_in(GONE_STATUSES)),
            )
        ).all()
    return sorted(urls | set(failed))


def build_input(sessions: sessionmaker[Session], job_id: str, spec: JobSpec) -> BuildInput:
    """Collect a finished crawl's staging parts, withdrawn URLs and counters from the
    catalog."""
    with sessions() as session:
        parts = session.scalars(
            select(StagingPart.path).where(StagingPart.job_id == job_id).order_by(StagingPart.id)
        ).all()
        # A page that is gone, or that robots.txt now disallows, leaves the dataset.
        gone = session.scalars(
            select(FrontierEntry.url).where(
                FrontierEntry.job_id == job_id,
                or_(
                    (FrontierEntry.outcome == "failed") & FrontierEntry.status.in_(GONE_STATUSES),
                    (FrontierEntry.outcome == "skipped")
                    & (FrontierEntry.reason == "robots/disallowed"),
                ),
            )
        ).all()
        job = session.get(Job, job_id)
        stats = dict(job.stats or {}) if job else {}
    return BuildInput(spec, [job_id], list(parts), frozenset(gone), stats)


@dataclass(frozen=True)
class Failure:
    """URLs of a job that failed or were skipped for one reason ("failed connect/refused")."""

    reason: str
    count: int
    examples: list[str]


def failures(session: Session, job_id: str, groups: int = 10, examples: int = 3) -> list[Failure]:
    """A job's failed and skipped URLs by outcome and reason, most frequent first, with a few
    example URLs each."""
    unfinished = FrontierEntry.outcome.in_(("failed", "skipped"))
    counted = session.execute(
        select(FrontierEntry.outcome, FrontierEntry.reason, func.count())
        .where(FrontierEntry.job_id == job_id, unfinished)
        .group_by(FrontierEntry.outcome, FrontierEntry.reason)
        .order_by(func.count().desc(), FrontierEntry.outcome, FrontierEntry.reason)
        .limit(groups)
    ).all()
    return [
        Failure(
            f"{outcome} {reason}",
            count,
            list(
                session.scalars(
                    select(FrontierEntry.url)
                    .where(
                        FrontierEntry.job_id == job_id,
                        FrontierEntry.outcome == outcome,
                        FrontierEntry.reason == reason,
                    )
                    .order_by(FrontierEntry.id)
                    .limit(examples)
                )
            ),
        )
        for outcome, reason, count in counted
    ]


def build(
    sessions: sessionmaker[Session],
    store: BlobStore,
    job_id: str,
    spec: JobSpec,
    worker: str,
    token: int,
    memory_mb: int | None = None,
    executor: Executor = LOCAL,
) -> Manifest | None:
    """Build and commit the job's snapshot as its claimed builder, in a process of its own
    (`memory_mb`: its allowance; its per-file steps on `executor`); the job ends `succeeded`
    (with a new version, or with the latest one when the job changed no document), `failed`
    with why, or `cancelled`.
    Returns None when the claim was lost on the way."""
    with sessions() as session:
        saved = Counter((session.get(Job, job_id) or Job()).stats or {})
        why = "; ".join(
            f"{f.count} {f.reason} ({', '.join(f.examples)})" for f in failures(session, job_id)
        )
    if saved["fetch/outcome/fetched"] + saved["fetch/outcome/not-modified"] == 0:
        error = f"no page could be fetched: {why}" if why else "no page could be fetched"
        finish(sessions, job_id, JobState.FAILED, error, fence=(worker, token))
        raise BuildError(error)
    lost = threading.Event()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(BUILD_BEAT_S):
            try:
                if not renew_build(sessions, job_id, worker, token):
                    lost.set()
                    return
            except Exception:  # a transient catalog error: the next beat tries again
                continue

    def fence() -> None:
        if lost.is_set():
            raise LeaseLost(f"job {job_id}: another worker took over the build")
        if _cancel_requested(sessions, job_id):
            raise BuildError("cancelled")

    beater = threading.Thread(target=beat, daemon=True, name=f"build-{job_id[:8]}")
    beater.start()
    unchanged = False
    built: dict[str, int] = {}
    try:
        # One build per dataset at a time (any process): the next version's number and its
        # parent are decided under the lease, whose token is checked before the commit.
        with dataset_lease(sessions, spec.dataset, holder=f"{worker}/{job_id}") as lease:
            snapshots = Snapshots(store)
            latest = snapshots.latest(spec.dataset)
            committed = snapshots.manifest(spec.dataset, latest) if latest else None
            if committed is not None and job_id in committed.jobs:
                manifest = committed  # a crash after the commit: the snapshot is already there
            else:

                def fenced() -> None:
                    fence()
                    lease.confirm()

                try:
                    manifest = build_process.build(
                        store,
                        build_input(sessions, job_id, spec),
                        fenced,
                        memory_mb=memory_mb,
                        executor=executor,
                    )
                except Unchanged as same:
                    manifest, built = same.manifest, same.stats
                    unchanged = True
                except BuildError as exc:
                    cancelled = str(exc) == "cancelled"
                    state = JobState.CANCELLED if cancelled else JobState.FAILED
                    finish(
                        sessions,
                        job_id,
                        state,
                        None if cancelled else str(exc),
                        fence=(worker, token),
                    )
                    raise
    except LeaseLost:
        return None
    finally:
        done.set()
        beater.join()
    with sessions() as session:
        job = session.get(Job, job_id)
        stats = dict(job.stats or {}) if job else {}
    if unchanged:
        stats["build/unchanged"] = 1
    else:
        built = manifest.stats
    stats |= {k: v for k, v in built.items() if k.startswith("dedup/")}
    stats["build/documents"] = manifest.rows
    finish(
        sessions,
        job_id,
        JobState.SUCCEEDED,
        fence=(worker, token),
        values={"snapshot_version": manifest.version, "stats": stats},
    )
    return manifest


def _cancel_requested(sessions: sessionmaker[Session], job_id: str) -> bool:
    with sessions() as session:
        return bool(session.scalar(select(Job.cancel_requested).where(Job.id == job_id)))


def build_snapshot(
    sessions: sessionmaker[Session], store: BlobStore, job_id: str, spec: JobSpec
) -> Manifest:
    """Claim and build a crawled job here and now (scripts, tests, the CLI's resumed build)."""
    worker = f"local-{uuid.uuid4().hex[:8]}"
    token = claim_build(sessions, job_id, worker)
    if token is None:
        raise BuildError(f"job {job_id} is not ready to build (URLs unfinished, or built)")
    manifest = build(sessions, store, job_id, spec, worker, token)
    if manifest is None:
        raise BuildError(f"job {job_id}: another worker took over the build")
    return manifest


def crawled(sessions: sessionmaker[Session], job_id: str) -> bool:
    """True once the job started and none of its URLs is pending or claimed."""
    with sessions() as session:
        state = session.scalar(select(Job.state).where(Job.id == job_id))
        left = session.scalar(
            select(FrontierEntry.id)
            .where(FrontierEntry.job_id == job_id, FrontierEntry.state != "done")
            .limit(1)
        )
    return state not in (None, JobState.QUEUED) and left is None


def expire(sessions: sessionmaker[Session], job_id: str) -> int:
    """The job's wall-clock limit passed: its pending URLs end `skipped limit/duration` (the
    claimed ones finish), so it builds what it has. Returns how many were skipped."""
    with sessions.begin() as session:
        result = session.execute(
            update(FrontierEntry)
            .where(FrontierEntry.job_id == job_id, FrontierEntry.state == "pending")
            .values(state="done", outcome="skipped", reason="limit/duration")
        )
        skipped = int(getattr(result, "rowcount", 0) or 0)
        merge_counters(
            session,
            job_id,
            {"fetch/outcome/skipped": skipped, "fetch/skipped/limit/duration": skipped}
            if skipped
            else {},
        )
    return skipped
