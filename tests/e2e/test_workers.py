"""Worker processes sharing hosts: one budget per host across jobs and workers, take-over of a
SIGKILLed worker's hosts, fencing of a worker that stalled (SIGSTOP), clean SIGTERM, and many
jobs in one `harvester serve`.

Each worker binds its outgoing connections to its own loopback address
(`HARVESTER_SOURCE_ADDRESS`), so the sites' request logs tell which worker sent what; each job
has its own user agent, so they also tell which job."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.clock import db_now
from harvester.catalog.db import make_engine, migrate
from harvester.catalog.models import FrontierEntry, Host, Job, StagingPart, WorkerRecord
from harvester.jobs import create_job
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.conftest import free_port, postgres_schema_url
from tests.faultproxy import FaultProxy
from tests.webtest import Hit, SiteServer, SiteState, assert_spaced, start

HARVESTER = str(Path(sys.executable).with_name("harvester"))
pytestmark = pytest.mark.usefixtures("prompt_server_timestamps")
ADMIN = "hv_test-admin-key"
LEASE_S = 3.0


def _catalog(url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(url)
    migrate(engine)
    yield sessionmaker(engine, expire_on_commit=False)
    engine.dispose()


@dataclass
class Cluster:
    """Worker processes (and optionally an API) on one catalog and store."""

    database: str
    store: Path
    logs: Path
    sessions: sessionmaker[Session]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    api: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self, source: str | None = None, database: str | None = None) -> dict[str, str]:
        env = {
            **os.environ,
            "HARVESTER_DATABASE_URL": database or self.database,
            "HARVESTER_STORAGE_URL": str(self.store),
            "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
            "HARVESTER_HOST_LEASE_S": str(LEASE_S),
            "HARVESTER_API_KEY": ADMIN,
            "HARVESTER_LOG_FORMAT": "text",
        }
        if source:
            env["HARVESTER_SOURCE_ADDRESS"] = source
        return env

    def start_worker(self, n: int, database: str | None = None) -> subprocess.Popen[bytes]:
        """Worker `n`, sending from 127.0.1.n, on the catalog (or on `database`)."""
        env = self.env(f"127.0.1.{n}", database)
        with (self.logs / f"worker-{n}.log").open("ab") as out:
            proc = subprocess.Popen([HARVESTER, "worker"], env=env, stdout=out, stderr=out)
        self.workers.append(proc)
        self.procs.append(proc)
        return proc

    def wait_workers(self, count: int) -> None:
        """Until `count` workers have a live heartbeat row."""
        deadline = time.monotonic() + 60
        while True:
            with self.sessions() as session:
                alive = session.scalar(select(func.count()).select_from(WorkerRecord))
            if alive == count:
                return
            assert time.monotonic() < deadline, f"{alive} workers of {count} started"
            time.sleep(0.1)

    def wait_live(self, count: int) -> None:
        """Until `count` workers have a heartbeat that has not expired."""
        deadline = time.monotonic() + 60
        while True:
            with self.sessions() as session:
                alive = session.scalar(
                    select(func.count())
                    .select_from(WorkerRecord)
                    .where(WorkerRecord.alive_until > db_now(session))
                )
            if alive == count:
                return
            assert time.monotonic() < deadline, f"{alive} live workers of {count}"
            time.sleep(0.1)

    def start_api(self, role: str = "api") -> None:
        """`harvester api` (or `serve`), once it answers."""
        port = free_port("127.0.0.1")
        with (self.logs / f"{role}.log").open("ab") as out:
            proc = subprocess.Popen(
                [HARVESTER, role, "--port", str(port)], env=self.env(), stdout=out, stderr=out
            )
        self.procs.append(proc)
        self.api = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.api + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, self.tail()
            time.sleep(0.1)

    def submit(self, spec: dict[str, Any]) -> str:
        assert self.api is not None
        answer = httpx.post(
            self.api + "/v1/jobs", json=spec, headers={"Authorization": f"Bearer {ADMIN}"}
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def job(self, job_id: str) -> Job:
        with self.sessions() as session:
            job = session.get(Job, job_id)
            assert job is not None
            return job

    def wait(self, job_id: str, seconds: float = 180) -> Job:
        deadline = time.monotonic() + seconds
        while (job := self.job(job_id)).state not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, f"job stuck in {job.state}: {self.tail()}"
            time.sleep(0.2)
        return job

    def fetched(self, job_id: str) -> int:
        return int((self.job(job_id).stats or {}).get("fetch/outcome/fetched", 0))

    def wait_fetched(self, job_id: str, count: int) -> None:
        """Until the job has fetched `count` pages."""
        deadline = time.monotonic() + 60
        while self.fetched(job_id) < count:
            assert time.monotonic() < deadline, self.tail()
            time.sleep(0.1)

    def crawl(self, dataset: str, sites: list[SiteServer], rate: float) -> str:
        """Submit a job over `sites` at `rate` requests/s per host."""
        seeds = [s.origin + "/" for s in sites]
        politeness = {"requests_per_second": rate}
        return self.submit({"dataset": dataset, "seeds": seeds, "politeness": politeness})

    def assert_each_url_once(self, job_id: str) -> None:
        """Every URL of the job has one outcome, and no page was staged twice."""
        with self.sessions() as session:
            states = Counter(
                session.scalars(select(FrontierEntry.state).where(FrontierEntry.job_id == job_id))
            )
            parts = session.scalars(
                select(StagingPart.path).where(StagingPart.job_id == job_id)
            ).all()
        assert set(states) == {"done"}, states
        staged = pq.read_table([str(self.store / p) for p in parts], columns=["url"])
        urls = staged.column("url").to_pylist()
        assert len(urls) == len(set(urls)), "a page was committed twice"

    def tail(self) -> str:
        return "\n".join(p.name + ":\n" + p.read_text()[-3000:] for p in self.logs.glob("*.log"))

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema_url()


@pytest.fixture
def cluster(tmp_path: Path, postgres_url: str) -> Iterator[Cluster]:
    catalogs = _catalog(postgres_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    c = Cluster(postgres_url, tmp_path / "store", logs, next(catalogs))
    yield c
    c.close()
    next(catalogs, None)


@pytest.fixture
def web() -> Iterator[list[SiteServer]]:
    """Six hosts: two shared by both jobs, two of each job's own."""
    servers = [start(SiteServer(f"127.0.2.{i}", SiteState(pages=20))) for i in range(1, 7)]
    yield servers  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


SLOW, FAST = 4.0, 10.0


def _two_jobs(web: list[SiteServer]) -> tuple[dict[str, Any], dict[str, Any]]:
    shared, own_a, own_b = web[:2], web[2:4], web[4:]

    def spec(name: str, rate: float, sites: list[SiteServer]) -> dict[str, Any]:
        return {
            "dataset": name,
            "seeds": [s.origin + "/" for s in sites],
            "politeness": {
                "requests_per_second": rate,
                "concurrency_per_domain": 2,
                "user_agent": f"{name}/1.0",
            },
        }

    return spec("slow", SLOW, shared + own_a), spec("fast", FAST, shared + own_b)


def _agent(hit: Hit) -> str:
    return next((v for k, v in hit.headers.items() if k.lower() == "user-agent"), "")


def _assert_polite_and_exclusive(web: list[SiteServer]) -> None:
    """Per host, from its own log: while the slow job still sends requests there, every gap
    keeps to the slow job's rate; after its last one the host may speed up to the fast job's
    rate. And the workers (by source address) took turns, never alternating back and forth."""
    for i, site in enumerate(web):
        hits = sorted(site.state.log, key=lambda h: h.t)
        slow = [h.t for h in hits if _agent(h).startswith("slow/")]
        slow_until = max(slow) if i < 4 else -1.0  # 4 and 5 are the fast job's own hosts
        shared = [h.t for h in hits if h.t <= slow_until]
        assert_spaced(shared, SLOW)
        assert_spaced(shared[-1:] + [h.t for h in hits if h.t > slow_until], FAST)
        runs = [peer for peer, _ in itertools.groupby(h.peer for h in hits)]
        assert len(runs) == len(set(runs)), f"{site.origin} served by turns {runs}"


def _assert_each_url_once(cluster: Cluster, job_ids: list[str]) -> None:
    """Every URL has one outcome; each job's snapshot has each document once."""
    for job_id in job_ids:
        cluster.assert_each_url_once(job_id)
    snapshots = Snapshots(BlobStore.from_url(str(cluster.store)))
    for name in ("slow", "fast"):
        documents = snapshots.documents(snapshots.manifest(name), columns=["id", "url"])
        ids = documents.column("id").to_pylist()
        assert len(ids) == len(set(ids))
        # The sites serve the same 20 article texts (the rest is too short): 20 documents.
        assert len(ids) == 20, (name, len(ids))


def _crawl_two_jobs(cluster: Cluster, web: list[SiteServer], workers: int) -> list[str]:
    """Start `workers` workers and the API, submit both jobs and return once worker 1 (source
    127.0.1.1) has sent its first request."""
    for n in range(1, workers + 1):
        cluster.start_worker(n)
    cluster.start_api()
    cluster.wait_workers(workers)
    slow, fast = _two_jobs(web)
    job_ids = [cluster.submit(slow), cluster.submit(fast)]
    deadline = time.monotonic() + 60
    while not any(h.peer == "127.0.1.1" for s in web for h in s.state.log):
        assert time.monotonic() < deadline, cluster.tail()
        time.sleep(0.05)
    return job_ids


@pytest.mark.postgres
def test_three_workers_share_hosts_with_one_budget_per_host(
    cluster: Cluster, web: list[SiteServer]
) -> None:
    job_ids = _crawl_two_jobs(cluster, web, 3)
    jobs = [cluster.wait(job_id) for job_id in job_ids]
    assert [j.state for j in jobs] == ["succeeded", "succeeded"], cluster.tail()
    _assert_polite_and_exclusive(web)
    _assert_each_url_once(cluster, job_ids)
    for site in web:  # each job fetched each URL once
        fetched = Counter((h.headers.get("User-Agent"), h.path) for h in site.state.log)
        assert max(fetched.values()) == 1, fetched.most_common(3)
    # the hosts were spread: more than one worker sent requests
    assert len({h.peer for site in web for h in site.state.log}) >= 2


@pytest.mark.postgres
def test_a_sigkilled_workers_hosts_move_to_the_others(
    cluster: Cluster, web: list[SiteServer]
) -> None:
    job_ids = _crawl_two_jobs(cluster, web, 3)
    victim = cluster.workers[0]
    time.sleep(1.0)  # mid-crawl
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    jobs = [cluster.wait(job_id) for job_id in job_ids]
    assert [j.state for j in jobs] == ["succeeded", "succeeded"], cluster.tail()
    orphaned = [s for s in web if any(h.peer == "127.0.1.1" for h in s.state.log)]
    assert orphaned
    for site in orphaned:
        after = [h for h in site.state.log if h.t > killed_at]
        assert after and {h.peer for h in after} <= {"127.0.1.2", "127.0.1.3"}
    _assert_each_url_once(cluster, job_ids)


@pytest.mark.postgres
def test_a_stalled_worker_writes_nothing_under_leases_it_lost(
    cluster: Cluster, web: list[SiteServer]
) -> None:
    job_ids = _crawl_two_jobs(cluster, web, 2)
    stalled = cluster.workers[0]
    time.sleep(0.7)
    stalled.send_signal(signal.SIGSTOP)
    # Its leases expire (and PostgreSQL ends any transaction it left open), and the other
    # worker takes every one of its hosts over.
    name = re.search(r"worker (\S+) started", (cluster.logs / "worker-1.log").read_text())
    assert name is not None
    deadline = time.monotonic() + 60
    while True:
        with cluster.sessions() as session:
            held = session.scalars(select(Host.host).where(Host.holder == name.group(1))).all()
        if not held:
            break
        assert time.monotonic() < deadline, (held, cluster.tail())
        time.sleep(0.2)
    stalled.send_signal(signal.SIGCONT)
    jobs = [cluster.wait(job_id) for job_id in job_ids]
    assert [j.state for j in jobs] == ["succeeded", "succeeded"], cluster.tail()
    log = (cluster.logs / "worker-1.log").read_text()
    assert "lost the lease" in log, log[-3000:]
    _assert_each_url_once(cluster, job_ids)


@pytest.mark.postgres
@pytest.mark.parametrize("fault", ["stall", "refuse"])
def test_a_worker_cut_off_from_the_catalog_stops_fetching_and_carries_on(
    cluster: Cluster, fault: str
) -> None:
    """Worker 1 reaches the catalog through a proxy that then stalls (a hung server: no byte
    moves) or refuses (a restart: every connection reset). With no heartbeat getting
    through, it stops fetching before its leases can move; worker 2 takes the hosts over;
    once the catalog is back, worker 1 carries on as a live worker. The job succeeds with
    each URL once, and no host is ever served by both."""
    # At 1 request/s the URLs worker 1 claimed before the fault outlast its lease: it would
    # still be sending them when worker 2 takes over, if it did not stop by itself.
    rate = 1.0
    sites = [start(SiteServer(f"127.0.3.{i}", SiteState(pages=25))) for i in (1, 2)]
    proxy = FaultProxy(("127.0.0.1", 5432))
    try:
        cut_off = cluster.database.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
        assert cut_off != cluster.database
        first = cluster.start_worker(1, database=cut_off)
        cluster.start_api()
        cluster.wait_workers(1)
        job = cluster.crawl("cut", sites, rate)
        cluster.wait_fetched(job, 6)
        getattr(proxy, fault)()
        cluster.start_worker(2)
        deadline = time.monotonic() + 60
        while not all(any(h.peer == "127.0.1.2" for h in s.state.log) for s in sites):
            assert time.monotonic() < deadline, cluster.tail()
            time.sleep(0.1)
        proxy.heal()
        assert cluster.wait(job).state == "succeeded", cluster.tail()
        cluster.wait_live(2)  # worker 1's heartbeats get through again
        assert first.poll() is None, "the worker died of a catalog fault"
    finally:
        proxy.close()
        for site in sites:
            site.shutdown()
            site.server_close()
    for site in sites:
        assert_spaced([h.t for h in site.state.log], rate)
        peers = [peer for peer, _ in itertools.groupby(h.peer for h in site.state.log)]
        assert peers == ["127.0.1.1", "127.0.1.2"], f"{site.origin} served by turns {peers}"
    cluster.assert_each_url_once(job)
    assert "lease" in (cluster.logs / "worker-1.log").read_text()


def _restart_postgres() -> None:
    """Restart the local PostgreSQL server: every connection is dropped, and for a moment
    none is accepted."""
    version = next(Path("/etc/postgresql").iterdir()).name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )


@pytest.mark.postgres
def test_a_postgres_restart_mid_crawl_loses_and_repeats_nothing(cluster: Cluster) -> None:
    rate = 10.0
    sites = [start(SiteServer(f"127.0.4.{i}", SiteState(pages=40))) for i in (1, 2)]
    try:
        workers = [cluster.start_worker(n) for n in (1, 2)]
        cluster.start_api()
        cluster.wait_workers(2)
        job = cluster.crawl("restart", sites, rate)
        cluster.wait_fetched(job, 10)
        _restart_postgres()
        assert cluster.wait(job).state == "succeeded", cluster.tail()
        assert all(w.poll() is None for w in workers), "a worker died of the restart"
    finally:
        for site in sites:
            site.shutdown()
            site.server_close()
    cluster.assert_each_url_once(job)
    fetched = Counter((s.origin, h.path) for s in sites for h in s.state.log)
    # A page fetched twice is a URL whose outcome was in flight at the restart (it went back
    # to pending): at most the URLs a worker holds in flight, never a whole batch.
    assert sum(n - 1 for n in fetched.values()) <= 8, fetched.most_common(5)


def _sqlite_worker(database: str, store: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": database,
        "HARVESTER_STORAGE_URL": str(store),
        "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
        "HARVESTER_HOST_LEASE_S": str(LEASE_S),
        "HARVESTER_LOG_FORMAT": "text",
    }
    with log.open("ab") as out:  # the child keeps its own descriptor
        return subprocess.Popen([HARVESTER, "worker"], env=env, stdout=out, stderr=out)


def _spec(dataset: str, site: SiteServer, rate: float) -> Any:
    politeness = {"requests_per_second": rate}
    return parse_spec({"dataset": dataset, "seeds": [site.origin + "/"], "politeness": politeness})


def test_a_sigkilled_workers_job_is_resumed_by_the_next_worker(tmp_path: Path) -> None:
    site = start(SiteServer("127.0.0.11", SiteState(pages=60, sitemap=False)))
    database = f"sqlite:///{tmp_path}/h.db"
    catalogs = _catalog(database)
    sessions = next(catalogs)
    cluster = Cluster(database, tmp_path / "store", tmp_path, sessions)
    try:
        job_id = create_job(sessions, _spec("resumed", site, 20))
        first = _sqlite_worker(database, tmp_path / "store", tmp_path / "first.log")
        cluster.wait_fetched(job_id, 10)
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert cluster.job(job_id).state == "running"
        second = _sqlite_worker(database, tmp_path / "store", tmp_path / "second.log")
        try:
            job = cluster.wait(job_id)
        finally:
            second.terminate()
            second.wait(30)
        assert job.state == "succeeded" and job.snapshot_version == 1, cluster.tail()
        with sessions() as session:
            query = select(FrontierEntry.state).where(FrontierEntry.job_id == job_id)
            assert set(session.scalars(query)) == {"done"}
        fetched = Counter(h.path for h in site.state.log if h.path.startswith("/page/"))
        assert len(fetched) == 60
        # Fetched again: only pages not yet committed at the kill, i.e. those fetched in the
        # last flush interval (0.5 s) plus the pipeline's latency: about a second at 20/s.
        assert sum(n - 1 for n in fetched.values()) <= 20 * 1.0 + 2
    finally:
        next(catalogs, None)
        site.shutdown()
        site.server_close()


def test_sigterm_gives_hosts_back_and_keeps_every_outcome(tmp_path: Path) -> None:
    site = start(SiteServer("127.0.0.16", SiteState(pages=80, sitemap=False)))
    database = f"sqlite:///{tmp_path}/h.db"
    catalogs = _catalog(database)
    sessions = next(catalogs)
    cluster = Cluster(database, tmp_path / "store", tmp_path, sessions)
    try:
        job_id = create_job(sessions, _spec("released", site, 10))
        log = tmp_path / "worker.log"
        worker = _sqlite_worker(database, tmp_path / "store", log)
        cluster.wait_fetched(job_id, 5)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 0, log.read_text()
        job = cluster.job(job_id)
        # The job goes on without an owner: nothing built, nothing claimed, hosts free.
        assert job.state == "running" and job.snapshot_version is None, log.read_text()
        with sessions() as session:
            rows = session.execute(
                select(FrontierEntry.url, FrontierEntry.state).where(FrontierEntry.job_id == job_id)
            ).all()
        states = defaultdict(set)
        for url, state in rows:
            states[state].add(url)
        assert "claimed" not in states, states.keys()
        # every page the site answered before the stop has its outcome recorded
        served = {site.origin + h.path for h in site.state.log if h.path.startswith("/page/")}
        assert len(served) >= 5 and served <= states["done"]
        second = _sqlite_worker(database, tmp_path / "store", tmp_path / "second.log")
        try:
            assert cluster.wait(job_id).state == "succeeded"
        finally:
            second.terminate()
            second.wait(30)
    finally:
        next(catalogs, None)
        site.shutdown()
        site.server_close()


def _thread_niceness(pid: int) -> dict[int, int]:
    """Each thread's nice value, from /proc (field 19 of stat)."""
    return {
        int(task.name): int((task / "stat").read_text().rpartition(")")[2].split()[16])
        for task in Path(f"/proc/{pid}/task").iterdir()
    }


def test_a_slow_job_does_not_delay_another_in_one_serve(tmp_path: Path) -> None:
    slow_site = start(SiteServer("127.0.0.17", SiteState(pages=20, sitemap=False)))
    fast_site = start(SiteServer("127.0.0.18", SiteState(pages=20, sitemap=False)))
    database = f"sqlite:///{tmp_path}/h.db"
    catalogs = _catalog(database)
    cluster = Cluster(database, tmp_path / "store", tmp_path, next(catalogs))
    try:
        cluster.start_api("serve")
        polite = {"requests_per_second": 1.0}
        slow = cluster.submit(
            {"dataset": "slow", "seeds": [slow_site.origin + "/"], "politeness": polite}
        )
        fast = cluster.submit(
            {
                "dataset": "fast",
                "seeds": [fast_site.origin + "/"],
                "politeness": {"requests_per_second": 20.0},
            }
        )
        # The crawl yields the cores to the API: the main thread (the worker's event loop)
        # and the threads it starts run at the lowest priority, the API's thread at normal.
        niceness = _thread_niceness(cluster.procs[0].pid)
        assert niceness[cluster.procs[0].pid] == 19
        assert 0 in niceness.values()
        assert cluster.wait(fast).state == "succeeded", cluster.tail()
        # The slow job (about 25 s at 1 request/s) is still crawling when the fast one is done.
        slow_job = cluster.job(slow)
        assert slow_job.state == "running"
        assert cluster.fetched(slow) < 20
    finally:
        cluster.close()
        next(catalogs, None)
        for site in (slow_site, fast_site):
            site.shutdown()
            site.server_close()
