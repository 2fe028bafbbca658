"""Fixtures: the test web, real proxies, the catalog (SQLite and PostgreSQL), the blob store."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from harvester.catalog.db import make_engine, migrate, open_catalog
from harvester.catalog.models import FrontierEntry, Job, StagingPart
from harvester.config import Settings
from harvester.cpu import CpuPool
from harvester.crawl.netguard import NetworkGuard
from harvester.crawl.proxies import ProxyPool
from harvester.jobs import FINISHED, build_snapshot, crawled, create_job
from harvester.service.worker import Worker
from harvester.spec import parse_spec
from harvester.stats import Stats
from harvester.store.blob import BlobStore
from harvester.store.manifest import Manifest
from tests.faultproxy import FaultProxy
from tests.s3server import S3_ENV, S3Server
from tests.webtest import Forbidding, SiteServer, SiteState, start

POSTGRES_URL = os.environ.get(
    "HARVESTER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def sites() -> Iterator[list[SiteServer]]:
    """Three sites on 127.0.0.2-4, each with its own state and request log."""
    servers = [start(SiteServer(f"127.0.0.{i}", SiteState())) for i in (2, 3, 4)]
    yield servers  # type: ignore[misc]
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def prompt_server_timestamps() -> Iterator[None]:
    """For tests that judge request gaps from the test sites' logs: the sites run as threads
    of this process, so a request's arrival is stamped only once the thread gets the GIL; the
    default 5 ms switch interval would let that stamp lag by more than the 5% tolerance at
    20 requests/s. A short interval keeps stamps honest."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(previous)


@pytest.fixture
def store(tmp_path: Path) -> BlobStore:
    return BlobStore.from_url(str(tmp_path / "store"))


@pytest.fixture
def sqlite_catalog(tmp_path: Path) -> sessionmaker[Session]:
    return open_catalog(f"sqlite:///{tmp_path}/catalog.db")


def postgres_schema_url() -> Iterator[str]:
    """A throwaway schema on the test server (skips the test without a server): its URL."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    # pre-ping: a test may restart the server, and the schema is dropped after it
    url = POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://")
    admin = create_engine(url, pool_pre_ping=True)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        admin.dispose()
        message = f"PostgreSQL not reachable at {POSTGRES_URL}: {type(exc).__name__}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run the distributed tests, never skip them
        pytest.skip(message)
    sep = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


def _postgres_catalog() -> Iterator[sessionmaker[Session]]:
    for url in postgres_schema_url():
        engine = make_engine(url)
        migrate(engine)
        yield sessionmaker(engine, expire_on_commit=False)
        engine.dispose()


@pytest.fixture
def postgres_catalog() -> Iterator[sessionmaker[Session]]:
    yield from _postgres_catalog()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """The catalog on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        yield open_catalog(f"sqlite:///{tmp_path}/catalog.db")
    else:
        yield from _postgres_catalog()


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"proxy on {host}:{port} exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"proxy on {host}:{port} did not start")


# pproxy switches to uvloop when it is installed (the service uses it), and its start-up then
# fails on uvloop's stricter get_event_loop(): it runs on plain asyncio.
PPROXY = "import sys; sys.modules['uvloop'] = None; from pproxy.server import main; main()"


class Proxies:
    """Real proxies: pproxy HTTP x2 (one with credentials), pproxy SOCKS5, a 403-to-everything
    server and a dead address. Each pproxy binds its outgoing side to its own address, so the
    sites' logs show which proxy carried which request."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.http1 = self._pproxy("http", "127.0.0.21")
        self.http2 = self._pproxy("http", "127.0.0.22", auth="alice:s3cret")
        self.socks = self._pproxy("socks5", "127.0.0.23")
        self.forbidding = start(ThreadingHTTPServer(("127.0.0.24", 0), Forbidding))
        self.forbidding.hits = 0  # type: ignore[attr-defined]
        self.forbidding_url = f"http://127.0.0.24:{self.forbidding.server_address[1]}"
        self.dead_url = f"http://127.0.0.25:{free_port('127.0.0.25')}"

    def _pproxy(self, scheme: str, host: str, auth: str | None = None) -> str:
        port = free_port(host)
        listen = f"{scheme}://{host}:{port}/@{host}" + (f"#{auth}" if auth else "")
        proc = subprocess.Popen(
            [sys.executable, "-c", PPROXY, "-l", listen],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.procs.append(proc)
        wait_listening(host, port, proc)
        creds = f"{auth}@" if auth else ""
        return f"{scheme}://{creds}{host}:{port}"

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
            proc.wait(5)
        self.forbidding.shutdown()
        self.forbidding.server_close()


@pytest.fixture(scope="session")
def proxies() -> Iterator[Proxies]:
    p = Proxies()
    yield p
    p.close()


_DANTE_CONF = """logoutput: stderr
internal: {host} port = {port}
external: {host}
clientmethod: none
socksmethod: none
user.privileged: root
user.unprivileged: nobody
client pass {{ from: 127.0.0.0/8 to: 0.0.0.0/0 }}
socks pass {{ from: 127.0.0.0/8 to: 127.0.0.0/8 command: connect }}
"""


@pytest.fixture(scope="session")
def dante(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Dante, a real SOCKS5 server (Debian's dante-server), that answers a failed connection
    to the destination with the SOCKS reply code saying why; its URL."""
    danted = shutil.which("danted") or "/usr/sbin/danted"
    if not Path(danted).exists():
        if os.environ.get("CI"):
            pytest.fail("danted is not installed (Debian package dante-server)")
        pytest.skip("danted is not installed (Debian package dante-server)")
    host = "127.0.0.26"
    port = free_port(host)
    conf = tmp_path_factory.mktemp("dante") / "danted.conf"
    conf.write_text(_DANTE_CONF.format(host=host, port=port))
    proc = subprocess.Popen(
        [danted, "-f", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_listening(host, port, proc)
    yield f"socks5://{host}:{port}"
    proc.terminate()
    proc.wait(5)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in S3_ENV.items():
            env.setenv(name, value)
        server = S3Server("127.0.0.30", free_port("127.0.0.30"))
        wait_listening(*server.address, server.proc)  # type: ignore[arg-type]
        yield server
        server.close()


class S3Store:
    """A fresh bucket on the S3 server, reached through a fault proxy."""

    def __init__(self, server: S3Server) -> None:
        self.proxy = FaultProxy(server.address)
        self.endpoint = f"http://127.0.0.1:{self.proxy.port}"
        self.url = f"s3://{server.bucket()}/harvester"
        self.store = BlobStore.from_url(self.url, self.endpoint, s3_timeout_s=S3_TIMEOUT_S)


S3_TIMEOUT_S = 2.0


@pytest.fixture
def s3(s3_server: S3Server) -> Iterator[S3Store]:
    s3 = S3Store(s3_server)
    yield s3
    s3.proxy.close()


_cpu: list[CpuPool] = []


def cpu_pool() -> CpuPool:
    """One pipeline process pool for the whole session (its workers take a second to start)."""
    if not _cpu:
        pool = CpuPool(2)
        pool.warm()  # never let worker start-up overlap a crawl whose timing a test measures
        _cpu.append(pool)
    return _cpu[0]


@pytest.fixture(scope="session", autouse=True)
def _cpu_pool_for_the_session() -> Iterator[None]:
    cpu_pool()
    yield
    for pool in _cpu:
        pool.close()


def crawl(
    spec: dict[str, Any],
    sessions: sessionmaker[Session],
    store: BlobStore,
    *,
    guard: NetworkGuard | None = None,
    pool: ProxyPool | None = None,
    job_id: str | None = None,
    cpu: CpuPool | None = None,
    settings: Settings | None = None,
) -> tuple[str, Stats]:
    """Run one job's crawl to the end (every URL has an outcome) with a worker in this
    thread; nothing is built. Returns the job id and its counters."""
    job_spec = parse_spec(spec)
    job_id = job_id or create_job(sessions, job_spec)
    worker = Worker(
        sessions,
        store,
        settings or Settings(host_lease_s=5.0),
        cpu or cpu_pool(),
        only_jobs={job_id},
        builds=False,
        stop_when=lambda: crawled(sessions, job_id),
        guard=guard or NetworkGuard(True),
    )
    worker.use(job_id, job_spec, pool)
    asyncio.run(worker.run())
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job_id, Stats(job.stats)


def build_job(
    sessions: sessionmaker[Session],
    store: BlobStore,
    job_id: str,
    settings: Settings,
    watch: sessionmaker[Session] | None = None,
) -> Job:
    """Run a worker on a crawled job until it ends (its build succeeded, failed or was
    cancelled); `watch` reads the job's state when `sessions` may be failing on purpose."""
    watching = watch or sessions

    def finished() -> bool:
        with watching() as session:
            job = session.get(Job, job_id)
            return job is not None and job.state in FINISHED

    worker = Worker(
        sessions,
        store,
        settings,
        cpu_pool(),
        only_jobs={job_id},
        stop_when=finished,
        guard=NetworkGuard(True),
    )
    asyncio.run(worker.run())
    with watching() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def assert_each_url_staged_once(
    sessions: sessionmaker[Session], store: BlobStore, job_id: str, stats: Stats, fetched: int
) -> None:
    """Every URL of the job has its outcome, `fetched` of them fetched (and counted so), and
    each fetched page is staged exactly once."""
    with sessions() as session:
        rows = session.execute(
            select(FrontierEntry.outcome, FrontierEntry.state).where(FrontierEntry.job_id == job_id)
        ).all()
        paths = session.scalars(select(StagingPart.path).where(StagingPart.job_id == job_id)).all()
    assert {state for _, state in rows} == {"done"}
    assert sum(1 for outcome, _ in rows if outcome == "fetched") == fetched
    assert stats.get("fetch/outcome/fetched") == fetched
    urls = store.read_parquet(list(paths), columns=["url"]).column("url").to_pylist()
    assert len(urls) == len(set(urls)) == fetched


def crawl_and_build(
    spec: dict[str, Any], sessions: sessionmaker[Session], store: BlobStore
) -> tuple[str, Manifest]:
    """Run a job to its committed snapshot, as the CLI does."""
    job_id, _ = crawl(spec, sessions, store)
    return job_id, build_snapshot(sessions, store, job_id, parse_spec(spec))
