"""The scheduler: turns due schedules into queued jobs, each due run exactly once.

Exactly once, also with several scheduler processes: a run is claimed by inserting
(schedule, due time) into `schedule_runs`, whose unique constraint lets one insert win; the
loser rolls back. Runs missed while no scheduler ran collapse into one (the latest due time).
A schedule never starts a run while its previous run's job is still unfinished.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import Job, Schedule, ScheduleRun
from harvester.jobs import create_job
from harvester.spec import parse_spec

logger = logging.getLogger(__name__)

UNFINISHED = ("queued", "running", "building")
TICK_S = 1.0


def next_run(cron: str, timezone: str, after: datetime) -> datetime:
    """The first time strictly after `after` that `cron` names, in `timezone`, as UTC."""
    local = after.astimezone(ZoneInfo(timezone))
    upcoming: datetime = croniter(cron, local).get_next(datetime)
    return upcoming.astimezone(UTC)


def latest_due(cron: str, timezone: str, after: datetime, now: datetime) -> datetime | None:
    """The most recent time in (after, now] that `cron` names: missed runs collapse to it."""
    due = None
    candidate = next_run(cron, timezone, after)
    while candidate <= now:
        due = candidate
        candidate = next_run(cron, timezone, candidate)
    return due


def fire(sessions: sessionmaker[Session], schedule_id: str, due_at: datetime) -> str | None:
    """Queue the schedule's job for `due_at` unless that run was already claimed or the
    previous run is still going; returns the new job id."""
    with sessions() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is None:
            return None
        busy = session.scalar(
            select(Job.id).where(Job.schedule_id == schedule_id, Job.state.in_(UNFINISHED)).limit(1)
        )
        spec = parse_spec(schedule.spec)
        cron, timezone = schedule.cron, schedule.timezone
    if busy is not None:
        logger.info(
            "schedule %s: previous run %s still going; skipping %s", schedule_id, busy, due_at
        )
        _advance(sessions, schedule_id, cron, timezone, due_at)
        return None
    try:
        with sessions.begin() as session:
            session.add(
                ScheduleRun(schedule_id=schedule_id, due_at=due_at, created_at=datetime.now(UTC))
            )
            session.flush()  # the unique (schedule, due_at) decides who fires
    except IntegrityError:
        return None  # another scheduler fired this run
    job_id = create_job(sessions, spec, schedule_id=schedule_id)
    with sessions.begin() as session:
        run = session.scalar(
            select(ScheduleRun).where(
                ScheduleRun.schedule_id == schedule_id, ScheduleRun.due_at == due_at
            )
        )
        if run is not None:
            run.job_id = job_id
    _advance(sessions, schedule_id, cron, timezone, due_at)
    return job_id


def _advance(
    sessions: sessionmaker[Session], schedule_id: str, cron: str, timezone: str, fired: datetime
) -> None:
    with sessions.begin() as session:
        schedule = session.get(Schedule, schedule_id)
        if schedule is not None:
            schedule.last_run_at = fired
            schedule.next_run_at = next_run(cron, timezone, fired)


class Scheduler:
    """Fires due schedules every tick until `stop()`."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Stop after the current tick."""
        self._stopping.set()

    def tick(self) -> list[str]:
        """Fire every schedule that is due now; returns the ids of the jobs queued."""
        now = self._clock()
        with self._sessions() as session:
            due = session.execute(
                select(Schedule.id, Schedule.cron, Schedule.timezone, Schedule.next_run_at).where(
                    Schedule.paused.is_(False), Schedule.next_run_at <= now
                )
            ).all()
        queued = []
        for schedule_id, cron, timezone, next_at in due:
            after = next_at.replace(tzinfo=next_at.tzinfo or UTC)
            # next_run_at is itself due; later missed times collapse into the latest one
            moment = latest_due(cron, timezone, after, now) or after
            job_id = fire(self._sessions, schedule_id, moment)
            if job_id is not None:
                queued.append(job_id)
        return queued

    async def run(self) -> None:
        """Tick until stopped."""
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a bad schedule must not stop the others
                logger.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK_S)
