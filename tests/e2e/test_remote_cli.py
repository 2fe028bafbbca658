"""The CLI's remote commands against a real `harvester serve`: jobs, schedules, pulls."""

from __future__ import annotations

import hashlib
import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from harvester.demo_site import make_demo_server
from tests.conftest import free_port
from tests.e2e.test_api import ADMIN, Service, _wait, run_serve
from tests.faultproxy import FaultProxy
from tests.webtest import SiteServer, SiteState, start

HARVESTER = str(Path(sys.executable).with_name("harvester"))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    yield from run_serve(tmp_path, f"sqlite:///{tmp_path}/h.db")


@pytest.fixture
def demo() -> Iterator[str]:
    server = start(make_demo_server("127.0.0.41", 0))
    yield f"http://127.0.0.41:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _cli(
    server: str, *args: str, key: str | None = ADMIN, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARVESTER_")}
    env["HARVESTER_SERVER"] = server
    if key:
        env["HARVESTER_API_KEY"] = key
    return subprocess.run(
        [HARVESTER, *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def _files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_submit_follow_list_show_pages_and_pull(
    service: Service, demo: str, tmp_path: Path
) -> None:
    done = _cli(
        service.url, "jobs", "submit", "--seed", demo, "--dataset", "demo", "--rate", "50",
        "--follow",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.splitlines()[0]
    assert "demo: job " + job_id + " succeeded: fetched 34," in done.stdout
    assert "pipeline: kept 26 of 34 pages, dropped 8 (too_short 8); duplicates 2" in done.stdout
    assert "demo@v1: 24 documents" in done.stdout
    assert "running" in done.stderr and "succeeded" in done.stderr  # state changes, no tty

    listed = _cli(service.url, "jobs", "list", "--dataset", "demo")
    assert listed.returncode == 0 and job_id in listed.stdout and "succeeded" in listed.stdout
    shown = json.loads(_cli(service.url, "jobs", "show", job_id).stdout)
    assert shown["state"] == "succeeded" and shown["snapshot"] == {"dataset": "demo", "version": 1}
    skipped = _cli(service.url, "jobs", "pages", job_id, "--outcome", "skipped").stdout
    rows = [line.split("\t") for line in skipped.splitlines()]
    assert rows and all(row[0] == "skipped" and row[4].startswith(demo) for row in rows)

    pulled = _cli(service.url, "datasets", "pull", "demo", str(tmp_path / "out"))
    assert pulled.returncode == 0, pulled.stderr
    root = tmp_path / "out" / "demo" / "v1"
    assert pulled.stdout.splitlines()[-1] == str(root)
    manifest = json.loads((root / "manifest.json").read_text())
    files = _files(root)
    for entry in manifest["files"]:
        assert files[entry["path"]] == entry["sha256"]
    assert {"README.md", "manifest.json"} <= set(files)
    assert f"({len(manifest['files'])} fetched, 0 resumed, 0 already here)" in pulled.stdout
    again = _cli(service.url, "datasets", "pull", "demo@v1", str(tmp_path / "out"))
    assert f"(0 fetched, 0 resumed, {len(manifest['files'])} already here)" in again.stdout
    assert _files(root) == files


def test_a_pull_cut_off_mid_file_resumes_where_it_stopped(
    service: Service, demo: str, tmp_path: Path
) -> None:
    with service.client() as api:
        job = api.post("/v1/jobs", json={"dataset": "demo", "seeds": [demo],
                                         "politeness": {"requests_per_second": 50}})  # fmt: skip
        _wait(api, job.json()["id"], ("succeeded",))
        manifest = api.get("/v1/datasets/demo/snapshots/1").json()
    shard = next(f for f in manifest["files"] if f["path"].startswith("data/"))
    assert shard["bytes"] > 8000
    port = int(service.url.rsplit(":", 1)[1])
    proxy = FaultProxy(("127.0.0.1", port))
    try:
        proxy.cut_reply(f"GET /v1/datasets/demo/snapshots/1/files/{shard['path']}".encode(), 6000)
        broken = _cli(f"http://127.0.0.1:{proxy.port}", "datasets", "pull", "demo", str(tmp_path))
        assert proxy.trapped.is_set()
        assert broken.returncode == 1
        assert "the connection to the API at" in broken.stderr, broken.stderr
        part = tmp_path / "demo" / "v1" / (shard["path"] + ".part")
        kept = part.stat().st_size
        assert 0 < kept < shard["bytes"]  # the bytes that came before the cut are kept

        proxy.heal()
        resumed = _cli(f"http://127.0.0.1:{proxy.port}", "datasets", "pull", "demo", str(tmp_path))
    finally:
        proxy.close()
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {shard['path']}" in resumed.stderr
    assert "1 resumed" in resumed.stdout
    assert not part.exists()
    root = tmp_path / "demo" / "v1"
    for entry in manifest["files"]:
        assert hashlib.sha256((root / entry["path"]).read_bytes()).hexdigest() == entry["sha256"]


def test_follow_on_a_terminal_shows_the_live_display(service: Service, demo: str) -> None:
    site = start(SiteServer("127.0.0.44", SiteState(pages=30, sitemap=False)))
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARVESTER_")}
    env |= {"HARVESTER_SERVER": service.url, "HARVESTER_API_KEY": ADMIN, "COLUMNS": "120"}
    try:
        proc = subprocess.Popen(
            [HARVESTER, "jobs", "submit", "--seed", site.origin + "/", "--dataset", "tty",
             "--rate", "10", "--follow"],
            env=env, stdin=follower, stdout=subprocess.DEVNULL, stderr=follower,
        )  # fmt: skip
        os.close(follower)
        screen = b""
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if select.select([leader], [], [], 0.5)[0]:
                try:
                    screen += os.read(leader, 65536)
                except OSError:
                    break
        proc.wait(30)
    finally:
        os.close(leader)
        site.shutdown()
        site.server_close()
    text = screen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "· running · fetched" in text and "pages/s" in text
    assert "host" in text and "pending" in text and "127.0.0.44" in text


def _waits(service: Service, job_id: str, needle: str) -> dict[str, Any]:
    with service.client() as api:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            job = api.get(f"/v1/jobs/{job_id}").json()
            if any(needle in w for w in job["progress"]["waiting"]):
                return job
            time.sleep(0.2)
    raise AssertionError(f"no {needle!r} in {job['progress']}")


class _Busy(BaseHTTPRequestHandler):
    """Answers every page 429 with Retry-After: 60 (robots.txt: none)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        status = 404 if self.path == "/robots.txt" else 429
        self.send_response(status)
        self.send_header("Retry-After", "60")
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_waiting_crawl_says_why(service: Service, tmp_path: Path) -> None:
    busy = start(ThreadingHTTPServer(("127.0.0.42", 0), _Busy))
    site = start(SiteServer("127.0.0.43", SiteState(pages=5, sitemap=False)))
    dead = f"http://127.0.0.45:{free_port('127.0.0.45')}"  # a proxy nobody answers for
    try:
        with service.client() as api:
            job = api.post("/v1/jobs", json={"dataset": "busy", "seeds": [
                f"http://127.0.0.42:{busy.server_address[1]}/"]}).json()  # fmt: skip
            waited = _waits(service, job["id"], "Retry-After after a 429 until ")
            assert waited["state"] == "running"
            (host,) = api.get(f"/v1/jobs/{job['id']}/hosts").json()
            assert host["waiting"].startswith("Retry-After after a 429 until ")
            assert host["pending"] == 1 and host["holder"]
            api.post(f"/v1/jobs/{job['id']}/cancel")

            assert api.put("/v1/proxy-pools/dead", json={"proxies": [dead]}).status_code == 200
        with subprocess.Popen(
            [HARVESTER, "jobs", "submit", "--seed", site.origin + "/", "--dataset", "proxied",
             "--follow", str(_spec(tmp_path, {"proxy_pool": "dead"}))],
            env={**os.environ, "HARVESTER_SERVER": service.url, "HARVESTER_API_KEY": ADMIN},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ) as follow:  # fmt: skip
            assert follow.stdout is not None and follow.stderr is not None
            job_id = follow.stdout.readline().strip()
            deadline = time.monotonic() + 60
            while "waiting:" not in (line := follow.stderr.readline()):
                assert line and time.monotonic() < deadline, "no waiting line"
            assert "127.0.0.43" in line and "proxies cooling down until " in line
            follow.kill()
        cancelled = _cli(service.url, "jobs", "cancel", job_id)
        assert cancelled.returncode == 0 and job_id in cancelled.stdout
    finally:
        for server in (busy, site):
            server.shutdown()
            server.server_close()


def _spec(tmp_path: Path, extra: dict[str, Any]) -> Path:
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"politeness": {"requests_per_second": 20}, **extra}))
    return path


def test_schedules_from_the_cli(service: Service, demo: str, tmp_path: Path) -> None:
    created = _cli(
        service.url, "schedules", "create", "0 3 * * *", str(_spec(tmp_path, {})),
        "--seed", demo, "--dataset", "nightly",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    schedule_id = created.stdout.strip()
    assert "never" in _cli(service.url, "schedules", "list").stdout
    assert _cli(service.url, "schedules", "pause", schedule_id).stdout.strip().endswith("paused")
    assert "yes" in _cli(service.url, "schedules", "list").stdout
    resumed = _cli(service.url, "schedules", "resume", schedule_id)
    assert "resumed, next run" in resumed.stdout
    run = _cli(service.url, "schedules", "trigger", schedule_id, "--follow")
    assert run.returncode == 0, run.stderr
    assert "nightly@v1: 24 documents" in run.stdout
    listed = _cli(service.url, "schedules", "list").stdout
    assert "never" not in listed  # last_run_at is the trigger's time
    with service.client() as api:
        (schedule,) = api.get("/v1/schedules").json()
    assert schedule["last_run_at"] is not None


def test_remote_errors_are_one_clear_line(service: Service, demo: str, tmp_path: Path) -> None:
    no_key = _cli(service.url, "jobs", "list", key=None)
    assert no_key.returncode == 1
    assert no_key.stderr.strip() == (
        "error: missing API key: send Authorization: Bearer <key> "
        "(set HARVESTER_API_KEY to a key `harvester serve` printed)"
    )
    closed = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    unreachable = _cli(closed, "jobs", "list")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith(f"error: cannot reach the API at {closed}: ")
    pool = _cli(service.url, "jobs", "submit", "--seed", demo, "--dataset", "d",
                str(_spec(tmp_path, {"proxy_pool": "nowhere"})))  # fmt: skip
    assert pool.returncode == 2
    assert pool.stderr.startswith("error: invalid request: body.proxy_pool: no proxy pool named")
    unknown = _cli(service.url, "jobs", "show", "nope")
    assert (unknown.returncode, unknown.stderr.strip()) == (2, "error: no job nope")
    bad = _cli(service.url, "jobs", "submit", "--seed", "not a url", "--dataset", "d")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")
    assert _cli(service.url, "--version").stdout.startswith("harvester ")
    assert "jobs" in _cli(service.url, "-h").stdout
