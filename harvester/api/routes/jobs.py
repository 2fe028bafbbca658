"""`/v1/jobs`: submit, list, follow, cancel, per-URL outcomes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select

from harvester.api.deps import Admin, Reader, Svc
from harvester.api.errors import ApiError
from harvester.api.links import JOB_LINKS
from harvester.api.openapi_errors import raises
from harvester.api.schemas import (
    FailureGroup,
    HostProgress,
    JobOut,
    Page,
    PageOutcome,
    Progress,
    SnapshotRef,
)
from harvester.catalog.models import FrontierEntry, Job
from harvester.jobs import Failure, create_job, failures
from harvester.jobs import cancel as cancel_job
from harvester.jobview import host_counts, waiting
from harvester.service.pools import load_pool
from harvester.spec import JobSpec
from harvester.stats import Stats

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
STATES = ("queued", "running", "building", "succeeded", "failed", "cancelled")
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Items to skip.")]
JobId = Annotated[str, Path(description="The job's id (from `POST /v1/jobs`).")]


_NOT_EXTRACTED = ("prepass", "empty", "too_complex")  # counted beside a method, or instead


def _progress(job: Job, waits: list[str]) -> Progress:
    stats = Stats(job.stats or {})
    fetched = stats.get("fetch/outcome/fetched")
    rate = 0.0
    if job.started_at is not None and fetched:
        started = job.started_at.replace(tzinfo=job.started_at.tzinfo or UTC)
        end = job.finished_at or datetime.now(UTC)
        end = end.replace(tzinfo=end.tzinfo or UTC)
        rate = fetched / max((end - started).total_seconds(), 1e-3)
    return Progress(
        discovered=stats.get("frontier/discovered"),
        fetched=fetched,
        not_modified=stats.get("fetch/outcome/not-modified"),
        failed=stats.get("fetch/outcome/failed"),
        skipped=stats.get("fetch/outcome/skipped"),
        failed_by_reason=stats.with_prefix("fetch/failed"),
        extracted=sum(
            v for k, v in stats.with_prefix("extract").items() if k not in _NOT_EXTRACTED
        ),
        kept=stats.get("quality/kept"),
        filtered_by_rule=stats.with_prefix("quality/dropped"),
        pii_found={k: v for k, v in stats.with_prefix("pii").items() if "/" not in k},
        duplicates=stats.get("dedup/exact") + stats.get("dedup/near"),
        documents_written=stats.get("build/documents"),
        pages_per_s=round(rate, 2),
        waiting=waits,
    )


def job_out(job: Job, failed: Sequence[Failure] = (), waits: list[str] | None = None) -> JobOut:
    """The API view of a job row (with its `failures` and waits when given)."""
    return JobOut(
        id=job.id,
        dataset=job.dataset,
        state=job.state,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        error=job.error,
        cancel_requested=job.cancel_requested,
        schedule_id=job.schedule_id,
        local=job.local,
        progress=_progress(job, waits or []),
        failures=[
            FailureGroup(reason=f.reason, count=f.count, examples=f.examples) for f in failed
        ],
        snapshot=SnapshotRef(dataset=job.dataset, version=job.snapshot_version)
        if job.snapshot_version
        else None,
        counters=dict(job.stats or {}),
    )


def _get(svc: Svc, job_id: str) -> Job:
    with svc.sessions() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return job


@router.post("", status_code=201, responses=JOB_LINKS)
def submit(spec: JobSpec, svc: Svc, _: Admin) -> JobOut:
    """Validate and queue a crawl job; a worker picks it up."""
    known_pool(svc, spec)
    return job_out(_get(svc, create_job(svc.sessions, spec)))


def known_pool(svc: Svc, spec: JobSpec, field: str = "body.proxy_pool") -> None:
    """Refuse a spec naming a proxy pool that is not stored (422), before it is queued."""
    if spec.proxy_pool is not None and load_pool(svc.sessions, spec.proxy_pool) is None:
        raise ApiError(
            422,
            "validation_error",
            f"invalid request: {field}: no proxy pool named {spec.proxy_pool!r}"
            " (PUT /v1/proxy-pools/{name} first)",
            [{"field": field, "message": "no such proxy pool"}],
        )


@router.get("")
def list_jobs(
    svc: Svc,
    _: Reader,
    state: Annotated[
        str | None,
        Query(pattern="^(" + "|".join(STATES) + ")$", description="Only jobs in this state."),
    ] = None,
    dataset: Annotated[str | None, Query(description="Only jobs of this dataset.")] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page[JobOut]:
    """Jobs, newest first, optionally by state and dataset."""
    query = select(Job)
    if state:
        query = query.where(Job.state == state)
    if dataset:
        query = query.where(Job.dataset == dataset)
    with svc.sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(Job.created_at.desc()).limit(limit).offset(offset))
        items = [job_out(job) for job in rows]
    return Page(items=items, total=total, limit=limit, offset=offset)


@router.get("/{job_id}")
def get_job(job_id: JobId, svc: Svc, _: Reader) -> JobOut:
    """A job with live progress and, once done, its snapshot and its failures by reason."""
    job = _get(svc, job_id)
    with svc.sessions() as session:
        if job.state == "running":
            return job_out(job, waits=waiting(session, job_id))
        if job.state not in ("succeeded", "failed", "cancelled"):
            return job_out(job)
        return job_out(job, failures(session, job_id))


@router.get("/{job_id}/hosts")
def hosts(
    job_id: JobId, svc: Svc, _: Reader, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[HostProgress]:
    """The job's hosts, busiest first: URLs fetched, failed, skipped and pending on each, the
    worker holding it and why it waits, if it does."""
    _get(svc, job_id)
    with svc.sessions() as session:
        return [HostProgress(**vars(h)) for h in host_counts(session, job_id, limit)]


@router.post("/{job_id}/cancel", responses=raises(409))
def cancel(job_id: JobId, svc: Svc, _: Admin) -> JobOut:
    """Cancel: a queued job never starts; a running one stops promptly, keeps its outcomes and
    builds nothing. Finished jobs are left as they are (409)."""
    job = _get(svc, job_id)
    if not cancel_job(svc.sessions, job_id):
        raise ApiError(409, "conflict", f"job {job_id} already {job.state}")
    return job_out(_get(svc, job_id))


@router.get("/{job_id}/pages")
def pages(
    job_id: JobId,
    svc: Svc,
    _: Reader,
    outcome: Annotated[
        str | None,
        Query(
            pattern="^(fetched|not-modified|skipped|failed)$",
            description="Only URLs with this outcome.",
        ),
    ] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PageOutcome]:
    """Per-URL outcomes of a job, in frontier order."""
    _get(svc, job_id)
    query = select(FrontierEntry).where(FrontierEntry.job_id == job_id)
    if outcome:
        query = query.where(FrontierEntry.outcome == outcome)
    with svc.sessions() as session:
        total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        rows = session.scalars(query.order_by(FrontierEntry.id).limit(limit).offset(offset))
        items = [
            PageOutcome(
                url=r.url,
                depth=r.depth,
                state=r.state,
                outcome=r.outcome,
                reason=r.reason,
                status=r.status,
                attempts=r.attempts,
                robots=r.robots,
                proxy=r.proxy,
                dropped=r.dropped,
                fetched_at=r.fetched_at,
            )
            for r in rows
        ]
    return Page(items=items, total=total, limit=limit, offset=offset)
