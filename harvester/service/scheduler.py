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
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.models import Job, Schedule, ScheduleRun
from harvester.errors import ConfigurationError
from harvester.jobs import new_job
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
    """The most recent time in (after, now] that `cron` names: missed runs collapse to it
    (found in one step, however long no scheduler ran)."""
    local = (now + timedelta(seconds=1)).astimezone(ZoneInfo(timezone))
    due: datetime = croniter(cron, local).get_prev(datetime).astimezone(UTC)
    return due if due > after else None


def check_cron(cron: str, timezone: str) -> None:
    """ConfigurationError unless `cron` has five fields (so it fires at most once a minute),
    `timezone` is an IANA name, and the expression names a date that exists."""
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"unknown timezone {timezone!r}") from exc
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ConfigurationError(
            f"invalid cron expression {cron!r}: five fields, minute hour day month weekday"
        )
    try:
        next_run(cron, timezone, datetime.now(UTC))
    except CroniterBadDateError as exc:
        raise ConfigurationError(f"cron expression {cron!r} names no date that exists") from exc


class Busy(Exception):
    """The schedule's previous run is still going."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"the previous run ({job_id}) is still going")
        self.job_id = job_id


def fire(
    sessions: sessionmaker[Session], schedule_id: str, due_at: datetime, *, advance: bool = True
) -> str | None:
    """Queue the schedule's run for `due_at`, in one transaction: the run row, its job and the
    schedule's next time commit together, so a crash can neither lose nor double a run.
    Returns the job id; None if another scheduler fired this run or the schedule is gone or
    was just marked broken. `Busy` while the previous run is unfinished (the due time is
    skipped when `advance`). A manual trigger passes `advance=False`."""
    try:
        with sessions.begin() as session:
            schedule = session.get(Schedule, schedule_id, with_for_update=True)
            if schedule is None:
                return None
            busy = session.scalar(
                select(Job.id)
                .where(Job.schedule_id == schedule_id, Job.state.in_(UNFINISHED))
                .limit(1)
            )
            job_id = None if busy is not None else _queue(session, schedule, due_at)
            if job_id is not None:  # a run that started, by the clock or by a trigger
                schedule.last_run_at = due_at
            if advance and (busy is not None or job_id is not None):
                schedule.next_run_at = next_run(schedule.cron, schedule.timezone, due_at)
            session.flush()  # the unique (schedule, due_at) decides who fires
    except IntegrityError:
        return None  # another scheduler fired this run
    if busy is not None:
        raise Busy(busy)
    return job_id


def _queue(session: Session, schedule: Schedule, due_at: datetime) -> str | None:
    """Insert the run's job and its run row; None (and the schedule paused, with why) if the
    stored spec no longer validates."""
    try:
        spec = parse_spec(schedule.spec)
    except ConfigurationError as exc:
        # Stored under an older version: it stays put, paused, and says why.
        schedule.paused, schedule.error = True, f"spec no longer valid: {exc}"
        logger.warning("schedule %s paused: %s", schedule.id, schedule.error)
        return None
    job_id = str(uuid.uuid4())
    session.add(new_job(job_id, spec, schedule.id))
    session.flush()  # the job first: the run row points at it
    session.add(
        ScheduleRun(
            schedule_id=schedule.id, due_at=due_at, created_at=datetime.now(UTC), job_id=job_id
        )
    )
    return job_id


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
            try:
                # next_run_at is itself due; later missed times collapse into the latest one
                moment = latest_due(cron, timezone, after, now) or after
                job_id = fire(self._sessions, schedule_id, moment)
            except Busy as busy:
                logger.info("schedule %s: %s; skipping this run", schedule_id, busy)
                continue
            except Exception:  # one schedule's failure must not stop the others
                logger.exception("schedule %s failed to fire", schedule_id)
                continue
            if job_id is not None:
                queued.append(job_id)
        return queued

    async def run(self) -> None:
        """Tick until stopped."""
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # the catalog is down: the next tick tries again
                logger.exception("scheduler tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK_S)
