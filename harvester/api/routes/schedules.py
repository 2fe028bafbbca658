"""`/v1/schedules`: recurring refresh crawls (cron), pause/resume, trigger now."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path
from sqlalchemy import select

from harvester.api.deps import Admin, Reader, Svc
from harvester.api.errors import ApiError
from harvester.api.links import JOB_LINKS, SCHEDULE_LINKS
from harvester.api.openapi_errors import raises
from harvester.api.routes.jobs import job_out, known_pool
from harvester.api.schemas import JobOut, ScheduleIn, ScheduleOut, SchedulePatch
from harvester.catalog.models import Job, Schedule
from harvester.errors import ConfigurationError
from harvester.service.scheduler import Busy, check_cron, fire, next_run
from harvester.spec import JobSpec, parse_spec

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])
ScheduleId = Annotated[str, Path(description="The schedule's id (from `POST /v1/schedules`).")]


def _check(cron: str, timezone: str) -> None:
    try:
        check_cron(cron, timezone)
    except ConfigurationError as exc:
        field = "timezone" if "timezone" in str(exc) else "cron"
        raise ApiError(
            422, "validation_error", str(exc), [{"field": field, "message": str(exc)}]
        ) from exc


def _out(s: Schedule) -> ScheduleOut:
    return ScheduleOut(
        id=s.id,
        dataset=s.dataset,
        cron=s.cron,
        timezone=s.timezone,
        paused=s.paused,
        created_at=s.created_at,
        next_run_at=s.next_run_at,
        last_run_at=s.last_run_at,
        job=s.spec,
        error=s.error,
    )


def _get(svc: Svc, schedule_id: ScheduleId) -> Schedule:
    with svc.sessions() as session:
        found = session.get(Schedule, schedule_id)
    if found is None:
        raise ApiError(404, "not_found", f"no schedule {schedule_id}")
    return found


@router.post("", status_code=201, responses=SCHEDULE_LINKS)
def create(body: ScheduleIn, svc: Svc, _: Admin) -> ScheduleOut:
    """A new schedule; its first run is the next time the cron names."""
    _check(body.cron, body.timezone)
    spec = parse_spec(body.job)
    known_pool(svc, spec, "body.job.proxy_pool")
    now = datetime.now(UTC)
    schedule = Schedule(
        id=str(uuid.uuid4()),
        dataset=spec.dataset,
        cron=body.cron,
        timezone=body.timezone,
        spec=spec.model_dump(mode="json"),
        paused=False,
        created_at=now,
        next_run_at=next_run(body.cron, body.timezone, now),
    )
    with svc.sessions.begin() as session:
        session.add(schedule)
    return _out(schedule)


@router.get("")
def list_schedules(svc: Svc, _: Reader) -> list[ScheduleOut]:
    """Every schedule."""
    with svc.sessions() as session:
        return [_out(s) for s in session.scalars(select(Schedule).order_by(Schedule.created_at))]


@router.get("/{schedule_id}")
def get_schedule(schedule_id: ScheduleId, svc: Svc, _: Reader) -> ScheduleOut:
    """One schedule."""
    return _out(_get(svc, schedule_id))


@router.patch("/{schedule_id}")
def patch(schedule_id: ScheduleId, body: SchedulePatch, svc: Svc, _: Admin) -> ScheduleOut:
    """Pause, resume, change the cron, timezone or job."""
    current = _get(svc, schedule_id)
    cron, timezone = body.cron or current.cron, body.timezone or current.timezone
    _check(cron, timezone)
    spec: JobSpec | None = parse_spec(body.job) if body.job is not None else None
    with svc.sessions.begin() as session:
        s = session.get(Schedule, schedule_id)
        if s is None:
            raise ApiError(404, "not_found", f"no schedule {schedule_id}")
        if spec is not None:
            s.spec, s.dataset = spec.model_dump(mode="json"), spec.dataset
        if body.paused is not None:
            s.paused = body.paused
        if spec is not None or body.paused is False:
            s.error = None  # a new job spec or a resume: the scheduler judges it again
        if (cron, timezone) != (s.cron, s.timezone) or body.paused is False:
            # resuming never replays the runs missed while paused
            s.cron, s.timezone = cron, timezone
            s.next_run_at = next_run(cron, timezone, datetime.now(UTC))
    return _out(_get(svc, schedule_id))


@router.delete("/{schedule_id}", status_code=204)
def delete(schedule_id: ScheduleId, svc: Svc, _: Admin) -> None:
    """Remove a schedule (jobs it started are kept)."""
    with svc.sessions.begin() as session:
        s = session.get(Schedule, schedule_id)
        if s is None:
            raise ApiError(404, "not_found", f"no schedule {schedule_id}")
        session.delete(s)


@router.post("/{schedule_id}/trigger", status_code=201, responses=JOB_LINKS | raises(409))
def trigger(schedule_id: ScheduleId, svc: Svc, _: Admin) -> JobOut:
    """Queue a run now, unless the previous run is still going (409)."""
    _get(svc, schedule_id)
    try:
        job_id = fire(svc.sessions, schedule_id, datetime.now(UTC), advance=False)
    except Busy as exc:
        raise ApiError(409, "conflict", str(exc)) from exc
    if job_id is None:
        raise ApiError(409, "conflict", _get(svc, schedule_id).error or "the run did not start")
    with svc.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job_out(job)
