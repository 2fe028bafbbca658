"""The scheduler fires each due run once: with missed runs, busy runs and two schedulers."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.db import make_engine, migrate
from harvester.catalog.models import Job, Schedule, ScheduleRun
from harvester.service.scheduler import Scheduler, next_run
from tests.conftest import postgres_schema_url
from tests.faultproxy import FaultProxy

SPEC = {"dataset": "refresh", "seeds": ["http://127.0.0.2/"]}
T0 = datetime(2026, 11, 22, 12, 0, 30, tzinfo=UTC)


def _schedule(
    sessions: sessionmaker[Session], cron: str, next_at: datetime, spec: dict[str, Any] = SPEC
) -> str:
    schedule_id = str(uuid.uuid4())
    with sessions.begin() as session:
        session.add(
            Schedule(
                id=schedule_id,
                dataset="refresh",
                cron=cron,
                timezone="UTC",
                spec=spec,
                paused=False,
                created_at=T0,
                next_run_at=next_at,
            )
        )
    return schedule_id


def _runs(sessions: sessionmaker[Session], schedule_id: str) -> list[ScheduleRun]:
    with sessions() as session:
        return list(
            session.scalars(select(ScheduleRun).where(ScheduleRun.schedule_id == schedule_id))
        )


def test_missed_runs_collapse_into_one(catalog: sessionmaker[Session]) -> None:
    schedule_id = _schedule(catalog, "* * * * *", T0 - timedelta(minutes=10))
    queued = Scheduler(catalog, clock=lambda: T0).tick()
    assert len(queued) == 1
    (run,) = _runs(catalog, schedule_id)
    assert run.due_at.replace(tzinfo=UTC) == datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    with catalog() as session:
        schedule = session.get(Schedule, schedule_id)
        assert schedule is not None
        assert schedule.next_run_at.replace(tzinfo=UTC) == datetime(2026, 11, 22, 12, 1, tzinfo=UTC)
    assert Scheduler(catalog, clock=lambda: T0).tick() == []  # nothing more is due


def test_a_run_never_starts_while_the_previous_one_is_going(
    catalog: sessionmaker[Session],
) -> None:
    schedule_id = _schedule(catalog, "* * * * *", T0 - timedelta(seconds=30))
    (first,) = Scheduler(catalog, clock=lambda: T0).tick()
    later = T0 + timedelta(minutes=1)
    assert Scheduler(catalog, clock=lambda: later).tick() == []  # first is still queued
    with catalog.begin() as session:
        session.execute(update(Job).where(Job.id == first).values(state="succeeded"))
    even_later = T0 + timedelta(minutes=2)
    assert len(Scheduler(catalog, clock=lambda: even_later).tick()) == 1
    assert len(_runs(catalog, schedule_id)) == 2


def test_concurrent_schedulers_fire_each_run_exactly_once(
    catalog: sessionmaker[Session],
) -> None:
    schedule_ids = [_schedule(catalog, "*/5 * * * *", T0 - timedelta(minutes=1)) for _ in range(5)]
    barrier = threading.Barrier(4)
    fired: list[str] = []
    lock = threading.Lock()

    def scheduler() -> None:
        barrier.wait()
        jobs = Scheduler(catalog, clock=lambda: T0).tick()
        with lock:
            fired.extend(jobs)

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fired) == len(set(fired)) == 5
    for schedule_id in schedule_ids:
        assert len(_runs(catalog, schedule_id)) == 1
    with catalog() as session:
        jobs = session.scalars(select(Job.schedule_id)).all()
    assert sorted(jobs) == sorted(schedule_ids)


def test_next_run_honours_the_timezone() -> None:
    after = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    # 09:00 in New York in July is 13:00 UTC
    assert next_run("0 9 * * *", "America/New_York", after) == datetime(
        2026, 7, 1, 13, 0, tzinfo=UTC
    )


def test_a_schedule_whose_spec_no_longer_validates_is_paused_and_the_others_fire(
    catalog: sessionmaker[Session],
) -> None:
    due = T0 - timedelta(seconds=30)
    good = [_schedule(catalog, "* * * * *", due) for _ in range(2)]
    # as an older version may have stored it: a field this version no longer knows
    bad = _schedule(catalog, "* * * * *", due, {**SPEC, "retired_option": True})
    scheduler = Scheduler(catalog, clock=lambda: T0)
    assert len(scheduler.tick()) == 2
    assert all(len(_runs(catalog, s)) == 1 for s in good)
    assert _runs(catalog, bad) == []
    with catalog() as session:
        broken = session.get(Schedule, bad)
        assert broken is not None and broken.paused
        assert broken.error is not None and "retired_option" in broken.error
    assert scheduler.tick() == []  # paused: no error on every tick


@pytest.mark.postgres
@pytest.mark.parametrize(
    "statement", [b"INSERT INTO jobs", b"INSERT INTO schedule_runs", b"UPDATE schedules", b"COMMIT"]
)
def test_a_run_is_neither_lost_nor_doubled_by_a_connection_lost_mid_fire(
    statement: bytes,
) -> None:
    """The scheduler's connection dies at one statement of a firing (its answer never comes
    back): the run row, its job and the schedule's advance commit together or not at all,
    so the next tick fires the run if it was not, and it is fired exactly once."""
    for url in postgres_schema_url():
        direct = make_engine(url)
        migrate(direct)
        proxy = FaultProxy(("127.0.0.1", 5432))
        proxied = make_engine(url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}"))
        try:
            sessions = sessionmaker(proxied)
            schedule_id = _schedule(sessions, "* * * * *", T0 - timedelta(seconds=30))
            proxy.lose_reply(after=b"FOR UPDATE", at=statement)
            scheduler = Scheduler(sessions, clock=lambda: T0)
            deadline = time.monotonic() + 30
            while not proxy.trapped.is_set():
                assert time.monotonic() < deadline
                scheduler.tick()
            scheduler.tick()  # the next tick, as the scheduler's loop would run it
            runs = _runs(sessionmaker(direct), schedule_id)
            with sessionmaker(direct)() as session:
                jobs = session.scalars(select(Job.id).where(Job.schedule_id == schedule_id)).all()
                assert session.scalar(select(func.count()).select_from(ScheduleRun)) == 1
            assert [run.job_id for run in runs] == list(jobs) and len(jobs) == 1
        finally:
            proxy.close()
            proxied.dispose()
            direct.dispose()
