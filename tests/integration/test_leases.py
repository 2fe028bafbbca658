"""Host leases and fencing on SQLite and PostgreSQL: tokens grow with every take-over, and a
write under a lost lease is refused in its own transaction."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.leases import HostLeases
from harvester.catalog.models import FrontierEntry, Host, Job, StagingPart
from harvester.crawl.frontier import Admission, Batch, Fenced, JobRef, claim, commit
from harvester.jobs import JobState, claim_build, create_job, renew_build, start
from harvester.spec import parse_spec

NOW = datetime.now(UTC)
SPEC = parse_spec({"dataset": "d", "seeds": ["http://a.test/", "http://b.test/"]})


def _expire(sessions: sessionmaker[Session], host: str) -> None:
    with sessions.begin() as session:
        session.execute(update(Host).where(Host.host == host).values(expires_at=0.0))


def test_a_lost_lease_fences_claims_and_commits(catalog: sessionmaker[Session]) -> None:
    job_id = create_job(catalog, SPEC)
    assert start(catalog, job_id, SPEC, [])
    first, second = HostLeases(catalog, "w1", 30), HostLeases(catalog, "w2", 30)
    taken = {h.host: h.token for h in first.acquire(10)}
    assert taken == {"a.test": 1, "b.test": 1}
    assert second.acquire(10) == []  # both held
    refs = {job_id: JobRef("d", False)}
    claimed, lost = claim(catalog, "w1", {h: (t, 10) for h, t in taken.items()}, refs)
    assert not lost and len(claimed["b.test"]) == 1
    [entry] = claimed["a.test"]

    _expire(catalog, "a.test")  # w1 stalled past its lease
    [moved] = second.acquire(10)
    assert (moved.host, moved.token) == ("a.test", 2)
    with catalog() as session:  # its in-flight URL went back to pending
        state = session.scalar(select(FrontierEntry.state).where(FrontierEntry.id == entry.id))
    assert state == "pending"

    assert claim(catalog, "w1", {"a.test": (taken["a.test"], 10)}, refs) == (
        {"a.test": []},
        {"a.test"},
    )
    outcome = {"id": entry.id, "host": "a.test", "state": "done", "outcome": "fetched"}
    batch = Batch(
        [outcome], [], ("staging/x.parquet", 1, 10), Counter({"fetch/outcome/fetched": 1})
    )
    with pytest.raises(Fenced) as refused:
        commit(catalog, job_id, "w1", taken, batch, 100)
    assert refused.value.hosts == {"a.test"}
    with catalog() as session:  # nothing of the refused transaction was written
        assert session.scalar(select(StagingPart.id)) is None
        job = session.get(Job, job_id)
        assert job is not None and "fetch/outcome/fetched" not in (job.stats or {})
    held, workers = first.heartbeat(list(taken))
    assert set(held) == {"b.test"} and workers == 1  # w1 learns it lost a.test

    # the new holder's commit goes through
    commit(catalog, job_id, "w2", {"a.test": 2}, batch, 100)
    with catalog() as session:
        assert session.scalar(select(FrontierEntry.outcome).where(FrontierEntry.id == entry.id))


def test_one_claim_serves_many_hosts_each_up_to_its_count(
    catalog: sessionmaker[Session],
) -> None:
    seeds = ["http://a.test/1", "http://a.test/2", "http://a.test/3", "http://b.test/1"]
    spec = parse_spec({"dataset": "d", "seeds": seeds})
    job_id = create_job(catalog, spec)
    assert start(catalog, job_id, spec, [])
    held = {h.host: h.token for h in HostLeases(catalog, "w1", 30).acquire(10)}
    refs = {job_id: JobRef("d", False)}
    claimed, _ = claim(catalog, "w1", {h: (t, 2) for h, t in held.items()}, refs)
    assert [c.url for c in claimed["a.test"]] == seeds[:2]  # in frontier order
    assert [c.url for c in claimed["b.test"]] == seeds[3:]
    claimed, _ = claim(catalog, "w1", {h: (t, 2) for h, t in held.items()}, refs)
    assert claimed == {"a.test": [claimed["a.test"][0]], "b.test": []}
    assert claimed["a.test"][0].url == seeds[2]


def test_a_release_hands_the_gap_and_the_urls_over(catalog: sessionmaker[Session]) -> None:
    job_id = create_job(catalog, SPEC)
    start(catalog, job_id, SPEC, [])
    first, second = HostLeases(catalog, "w1", 30), HostLeases(catalog, "w2", 30)
    [held] = first.acquire(1, [job_id])
    claim(catalog, "w1", {held.host: (held.token, 10)}, {job_id: JobRef("d", False)})
    first.release(held.host, held.token, gap_s=5.0)
    [taken] = [h for h in second.acquire(10) if h.host == held.host]
    assert taken.token == held.token + 1 and 4.0 < taken.wait_s <= 5.0
    with catalog() as session:
        states = set(session.scalars(select(FrontierEntry.state)))
    assert states == {"pending"}


def test_one_builder_and_its_token(catalog: sessionmaker[Session]) -> None:
    job_id = create_job(catalog, SPEC)
    start(catalog, job_id, SPEC, [])
    assert claim_build(catalog, job_id, "w1") is None  # URLs are still pending
    with catalog.begin() as session:
        session.execute(update(FrontierEntry).values(state="done", outcome="failed"))
    token = claim_build(catalog, job_id, "w1")
    assert token == 1
    assert claim_build(catalog, job_id, "w2") is None  # w1's claim is live
    with catalog.begin() as session:
        session.execute(update(Job).values(lease_until=0.0))  # w1 stopped renewing
    assert claim_build(catalog, job_id, "w2") == 2
    assert not renew_build(catalog, job_id, "w1", 1)  # fenced
    assert renew_build(catalog, job_id, "w2", 2)
    with catalog() as session:
        assert session.scalar(select(Job.state)) == JobState.BUILDING


@pytest.mark.postgres
def test_a_commit_is_not_blocked_by_another_commits_foreign_key_lock(
    postgres_catalog: sessionmaker[Session],
) -> None:
    """A commit's inserts take a key-share lock on the job row through their foreign keys;
    the lock on the job's counters must not wait for another commit's, or two workers
    committing at once deadlock."""
    catalog = postgres_catalog
    job_id = create_job(catalog, SPEC)
    assert start(catalog, job_id, SPEC, [])
    [held] = HostLeases(catalog, "w1", 30).acquire(1)
    claimed, _ = claim(catalog, "w1", {held.host: (held.token, 10)}, {job_id: JobRef("d", False)})
    [entry] = claimed[held.host]
    outcome = {"id": entry.id, "host": held.host, "state": "done", "outcome": "fetched"}
    found = Admission(job_id, SPEC).admit([f"http://{held.host}/next"], 1, Counter())
    batch = Batch([outcome], found, ("staging/mine.parquet", 1, 10), Counter({"x": 1}))
    with catalog.begin() as other:  # another worker's commit, halfway: its part is inserted
        other.add(
            StagingPart(
                job_id=job_id, path="staging/other.parquet", rows=1, bytes=1, created_at=NOW
            )
        )
        other.flush()
        with ThreadPoolExecutor(1) as pool:
            mine = pool.submit(commit, catalog, job_id, "w1", {held.host: held.token}, batch, 100)
            mine.result(30)  # a hang detector: it used to wait for `other` to end
    with catalog() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.stats["x"] == 1 and job.admitted == 3
