"""The REST API through a real `harvester serve` process (uvicorn on loopback) and httpx."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from harvester.catalog.db import make_engine, migrate
from harvester.catalog.models import Job, Schedule, ScheduleRun
from harvester.demo_site import make_demo_server
from tests.conftest import free_port, postgres_schema_url
from tests.webtest import SiteServer, SiteState, start

HARVESTER = str(Path(sys.executable).with_name("harvester"))
ADMIN = "hv_test-admin-key"


@dataclass
class Service:
    url: str
    proc: subprocess.Popen[str]
    log: Path

    def client(self, key: str | None = ADMIN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/h.db"
    else:
        yield from postgres_schema_url()


def run_serve(tmp_path: Path, database_url: str) -> Iterator[Service]:
    """`harvester serve` on a free loopback port, until the generator is closed (SIGTERM)."""
    port = free_port("127.0.0.1")
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "HARVESTER_DATABASE_URL": database_url,
        "HARVESTER_STORAGE_URL": str(tmp_path / "store"),
        "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
        "HARVESTER_API_KEY": ADMIN,
    }
    with log.open("w") as out:
        proc = subprocess.Popen(
            [HARVESTER, "serve", "--port", str(port)], env=env, stdout=out, stderr=out, text=True
        )
    service = Service(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(service.url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "serve did not start"
        time.sleep(0.1)
    yield service
    proc.terminate()
    proc.wait(30)


@pytest.fixture
def service(tmp_path: Path, database_url: str) -> Iterator[Service]:
    yield from run_serve(tmp_path, database_url)


@pytest.fixture
def sqlite_service(tmp_path: Path) -> Iterator[Service]:
    yield from run_serve(tmp_path, f"sqlite:///{tmp_path}/h.db")


@pytest.fixture
def demo() -> Iterator[str]:
    server = start(make_demo_server("127.0.0.7", 0))
    yield f"http://127.0.0.7:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _demo_job(seed: str, dataset: str = "demo") -> dict[str, Any]:
    return {"dataset": dataset, "seeds": [seed], "politeness": {"requests_per_second": 50}}


def _wait(
    client: httpx.Client, job_id: str, states: tuple[str, ...], seconds: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        assert time.monotonic() < deadline, f"job stuck in {job['state']}"
        time.sleep(0.2)


def test_submit_follow_and_download_a_snapshot(service: Service, demo: str, tmp_path: Path) -> None:
    with service.client() as api:
        created = api.post("/v1/jobs", json=_demo_job(demo))
        assert created.status_code == 201, created.text
        job = _wait(api, created.json()["id"], ("succeeded", "failed"))
        assert job["state"] == "succeeded", job
        assert job["snapshot"] == {"dataset": "demo", "version": 1}
        progress = job["progress"]
        assert progress["fetched"] == 34 and progress["documents_written"] == 24
        assert progress["filtered_by_rule"]["too_short"] == 8
        assert progress["pii_found"] == {"email": 1, "phone": 1}

        listed = api.get("/v1/jobs", params={"state": "succeeded", "dataset": "demo"}).json()
        assert listed["total"] == 1 and listed["items"][0]["id"] == job["id"]
        pages = api.get(f"/v1/jobs/{job['id']}/pages", params={"outcome": "skipped"}).json()
        assert [p["reason"] for p in pages["items"]] == ["robots/disallowed"]

        datasets = api.get("/v1/datasets").json()
        assert datasets[0]["name"] == "demo" and datasets[0]["rows"] == 24
        manifest = api.get("/v1/datasets/demo/snapshots/latest").json()
        assert manifest["version"] == 1 and manifest["leakage"]["cross_split_urls"] == 0
        local = tmp_path / "download"
        for entry in manifest["files"]:
            got = api.get(f"/v1/datasets/demo/snapshots/1/files/{entry['path']}")
            assert got.status_code == 200
            assert hashlib.sha256(got.content).hexdigest() == entry["sha256"]
            assert got.headers["etag"] == f'"{entry["sha256"]}"'
            (local / entry["path"]).parent.mkdir(parents=True, exist_ok=True)
            (local / entry["path"]).write_bytes(got.content)
        assert pq.read_table(local / "data").num_rows == 24

        archive = api.get("/v1/datasets/demo/snapshots/1/archive")
        with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
            names = tar.getnames()
        assert "demo/v1/manifest.json" in names and "demo/v1/README.md" in names
        assert len(names) == len(manifest["files"]) + 2

        diff = api.get("/v1/datasets/demo/snapshots/1/diff").json()
        assert diff["counts"]["added"] == 24 and diff["parent_version"] is None
        metrics = api.get("/metrics")
        assert 'harvester_jobs{state="succeeded"} 1.0' in metrics.text


def test_ranges_etags_and_paths_outside_the_snapshot(sqlite_service: Service, demo: str) -> None:
    with sqlite_service.client() as api:
        job = api.post("/v1/jobs", json=_demo_job(demo)).json()
        _wait(api, job["id"], ("succeeded",))
        entry = api.get("/v1/datasets/demo/snapshots/1").json()["files"][0]
        url = f"/v1/datasets/demo/snapshots/1/files/{entry['path']}"
        whole = api.get(url).content
        part = api.get(url, headers={"Range": "bytes=10-109"})
        assert part.status_code == 206 and part.content == whole[10:110]
        assert part.headers["content-range"] == f"bytes 10-109/{len(whole)}"
        tail = api.get(url, headers={"Range": "bytes=-20"})
        assert tail.status_code == 206 and tail.content == whole[-20:]
        assert api.get(url, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
        same = api.get(url, headers={"If-None-Match": f'"{entry["sha256"]}"'})
        assert same.status_code == 304 and same.content == b""
        for hostile in ["../../../etc/passwd", "..%2F..%2Fmanifest.json", "%2Fetc%2Fpasswd",
                        "data/..%2F..%2Fv1%2Fmanifest.json", "data/../../../h.db"]:  # fmt: skip
            got = api.get(f"/v1/datasets/demo/snapshots/1/files/{hostile}")
            assert got.status_code in (400, 404), (hostile, got.status_code)
            assert got.json()["error"]["code"] in ("not_found", "bad_request")
        assert api.get("/v1/datasets/demo/snapshots/7").status_code == 404
        assert api.get("/v1/datasets/nope/snapshots/latest").json()["error"]["code"] == "not_found"


def test_a_job_whose_seeds_all_fail_says_why(sqlite_service: Service) -> None:
    closed = f"http://127.0.0.63:{free_port('127.0.0.63')}/"  # nothing listens there
    with sqlite_service.client() as api:
        created = api.post("/v1/jobs", json=_demo_job(closed, "closed"))
        job = _wait(api, created.json()["id"], ("succeeded", "failed"))
    assert job["state"] == "failed"
    assert job["error"] == f"no page could be fetched: 1 failed connect/refused ({closed})"
    assert job["failures"] == [
        {"reason": "failed connect/refused", "count": 1, "examples": [closed]}
    ]
    assert job["progress"]["failed_by_reason"] == {"connect/refused": 1}


def test_validation_errors_name_the_field(sqlite_service: Service) -> None:
    with sqlite_service.client() as api:
        unknown = api.post(
            "/v1/jobs", json={"dataset": "d", "seeds": ["http://x.test/"], "colour": 1}
        )
        assert unknown.status_code == 422
        assert unknown.json()["error"]["details"][0]["field"] == "body.colour"
        bad = api.post("/v1/jobs", json={"dataset": "d", "seeds": ["http://x.test/"],
                                         "limits": {"max_pages": -1}})  # fmt: skip
        assert bad.status_code == 422 and "body.limits.max_pages" in bad.json()["error"]["message"]
        broken = api.post(
            "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422 and "traceback" not in broken.text.lower()
        cron = api.post(
            "/v1/schedules",
            json={"cron": "every day", "job": {"dataset": "d", "seeds": ["http://x.test/"]}},
        )
        assert cron.status_code == 422 and cron.json()["error"]["details"][0]["field"] == "cron"
        pool = api.post("/v1/jobs", json={"dataset": "d", "seeds": ["http://x.test/"],
                                          "proxy_pool": "nowhere"})  # fmt: skip
        assert pool.status_code == 422 and "no proxy pool named 'nowhere'" in pool.text
        assert pool.json()["error"]["details"][0]["field"] == "body.proxy_pool"
        assert api.get("/v1/jobs").json()["items"] == []  # nothing was queued
        scheduled = api.post("/v1/schedules", json={
            "cron": "0 3 * * *", "job": {"dataset": "d", "seeds": ["http://x.test/"],
                                         "proxy_pool": "nowhere"}})  # fmt: skip
        assert scheduled.status_code == 422, scheduled.text
        assert scheduled.json()["error"]["details"][0]["field"] == "body.job.proxy_pool"


def test_auth_scopes_and_key_management(sqlite_service: Service) -> None:
    with sqlite_service.client(None) as anonymous:
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/v1/jobs").status_code == 401
        assert anonymous.get("/metrics").status_code == 401
    with sqlite_service.client("hv_wrong") as wrong:
        assert wrong.get("/v1/datasets").json()["error"]["code"] == "unauthorized"
    with sqlite_service.client() as admin:
        created = admin.post("/v1/keys", json={"name": "reader", "scope": "read"}).json()
        assert created["key"].startswith("hv_")
        assert all(k["key"] is None for k in admin.get("/v1/keys").json())
    with sqlite_service.client(created["key"]) as reader:
        assert reader.get("/v1/jobs").status_code == 200
        denied = reader.post("/v1/jobs", json={"dataset": "d", "seeds": ["http://x.test/"]})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    with sqlite_service.client() as admin:
        assert admin.delete(f"/v1/keys/{created['id']}").status_code == 204
    with sqlite_service.client(created["key"]) as revoked:
        assert revoked.get("/v1/jobs").status_code == 401
    assert "hv_" not in sqlite_service.log.read_text().replace(ADMIN, "")


def test_cancel_stops_a_running_job_and_keeps_its_outcomes(sqlite_service: Service) -> None:
    site = start(SiteServer("127.0.0.8", SiteState(pages=200, sitemap=False)))
    try:
        with sqlite_service.client() as api:
            slow = {"dataset": "slow", "seeds": [site.origin + "/"]}
            slow["politeness"] = {"requests_per_second": 5}
            job = api.post("/v1/jobs", json=slow).json()
            deadline = time.monotonic() + 30
            while api.get(f"/v1/jobs/{job['id']}").json()["progress"]["fetched"] < 5:
                assert time.monotonic() < deadline
                time.sleep(0.2)
            asked = time.monotonic()
            assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
            done = _wait(api, job["id"], ("cancelled", "succeeded", "failed"), 30)
            assert done["state"] == "cancelled" and time.monotonic() - asked < 10
            assert done["snapshot"] is None
            fetched = api.get(f"/v1/jobs/{job['id']}/pages", params={"outcome": "fetched"}).json()
            assert fetched["total"] >= 5
            assert api.get("/v1/datasets/slow/snapshots").status_code == 404
            again = api.post(f"/v1/jobs/{job['id']}/cancel")
            assert again.status_code == 409
    finally:
        site.shutdown()
        site.server_close()


def test_proxy_pool_credentials_are_write_only(sqlite_service: Service) -> None:
    pool = {"rotation": "least_used", "tiers": [["http://dc-1.test:3128"],
            ["http://alice:s3cret@res-1.test:8000"]]}  # fmt: skip
    with sqlite_service.client() as api:
        put = api.put("/v1/proxy-pools/residential", json=pool)
        assert put.status_code == 200
        got = api.get("/v1/proxy-pools/residential")
        assert "s3cret" not in got.text and "alice" not in got.text
        assert [p["tier"] for p in got.json()["proxies"]] == [0, 1]
        assert "s3cret" not in api.get("/v1/proxy-pools").text
        assert api.put("/v1/proxy-pools/bad", json={"proxies": ["ftp://x"]}).status_code == 422
        assert api.delete("/v1/proxy-pools/residential").status_code == 204
        assert api.get("/v1/proxy-pools/residential").status_code == 404


def test_scheduled_refresh_makes_the_next_version(sqlite_service: Service) -> None:
    site = start(SiteServer("127.0.0.8", SiteState(pages=12, sitemap=False)))
    try:
        with sqlite_service.client() as api:
            job = {"dataset": "refresh", "seeds": [site.origin + "/"], "scope": {"sitemaps": False},
                   "politeness": {"requests_per_second": 50}}  # fmt: skip
            schedule = api.post("/v1/schedules", json={"cron": "0 3 * * *", "job": job}).json()
            first = api.post(f"/v1/schedules/{schedule['id']}/trigger")
            assert first.status_code == 201
            busy = api.post(f"/v1/schedules/{schedule['id']}/trigger")
            assert busy.status_code == 409  # the previous run is still going
            assert _wait(api, first.json()["id"], ("succeeded",))["snapshot"]["version"] == 1

            site.state.revisions[2] = 1  # changed
            site.state.gone.add(3)  # 404
            site.state.pages = 14  # two new pages, linked from the home page
            second = api.post(f"/v1/schedules/{schedule['id']}/trigger").json()
            assert _wait(api, second["id"], ("succeeded",))["snapshot"]["version"] == 2
            manifest = api.get("/v1/datasets/refresh/snapshots/latest").json()
            assert manifest["changes"] == {"added": 2, "removed": 1, "changed": 1,
                                           "unchanged": 12 - 2, "moved": 0}  # fmt: skip
            diff = api.get("/v1/datasets/refresh/snapshots/2/diff").json()
            assert diff["removed"] == [site.origin + "/page/3"]
            assert [h for h in site.state.log if h.headers.get("If-None-Match")]

            paused = api.patch(f"/v1/schedules/{schedule['id']}", json={"paused": True}).json()
            assert paused["paused"] is True
            assert api.delete(f"/v1/schedules/{schedule['id']}").status_code == 204
            assert api.get(f"/v1/schedules/{schedule['id']}").status_code == 404
    finally:
        site.shutdown()
        site.server_close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema_url()


@pytest.mark.postgres
def test_two_scheduler_processes_fire_a_due_run_once(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    migrate(engine)
    sessions = sessionmaker(engine)
    overdue = datetime.now(UTC) - timedelta(minutes=3)
    with sessions.begin() as session:
        for i in range(3):
            session.add(
                Schedule(
                    id=f"s{i}",
                    dataset="d",
                    cron="* * * * *",
                    timezone="UTC",
                    spec={"dataset": "d", "seeds": ["http://x.test/"]},
                    paused=False,
                    created_at=overdue,
                    next_run_at=overdue,
                )
            )
    env = {**os.environ, "HARVESTER_DATABASE_URL": postgres_url}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([HARVESTER, "scheduler"], env=env, **quiet) for _ in range(2)]
    try:
        time.sleep(6)  # several ticks of both processes
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    with sessions() as session:
        fired = session.scalars(select(Job.schedule_id)).all()
        runs = session.scalars(select(ScheduleRun.schedule_id)).all()
    engine.dispose()
    assert sorted(fired) == sorted(runs) == ["s0", "s1", "s2"]  # each due run exactly once


def test_host_policies_through_the_api(sqlite_service: Service) -> None:
    with sqlite_service.client() as admin:
        put = admin.put("/v1/hosts/Example.org", json={"max_rps": 0.5, "note": "asked us"})
        assert put.status_code == 200, put.text
        assert put.json()["host"] == "example.org" and put.json()["max_rps"] == 0.5
        assert admin.get("/v1/hosts/example.org").json()["note"] == "asked us"
        assert admin.get("/v1/hosts?policy=true").json()["total"] == 1
        bad = admin.put("/v1/hosts/example.org", json={"max_rps": 0})
        assert bad.status_code == 422 and "max_rps" in bad.text
        assert admin.put("/v1/hosts/bad_host!", json={}).status_code == 422
        assert admin.delete("/v1/hosts/example.org").status_code == 204
        assert admin.delete("/v1/hosts/example.org").status_code == 404
    with sqlite_service.client(None) as anonymous:
        assert anonymous.get("/v1/hosts/example.org").status_code == 401
