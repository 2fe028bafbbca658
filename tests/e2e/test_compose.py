"""The deployment for real: docker-compose.yml validates, names only real commands and
settings, and its stack (built from deploy/, with the stand-ins of deploy/compose.test.yml)
crawls, builds and serves a snapshot with two workers, one restarted mid-crawl."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
import yaml

from harvester.cli import app
from harvester.config import Settings
from tests.compose import API, API_KEY, HARVESTER, ROOT, Stack, build_images, unavailable
from tests.webtest import SiteServer, SiteState, start

# Building the images takes minutes the first time (the module's first test pays for it).
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

_REQUIRED = {"POSTGRES_PASSWORD": "p", "S3_ACCESS_KEY": "a", "S3_SECRET_KEY": "s",
             "HARVESTER_API_KEY": "k"}  # fmt: skip


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def _config(*files: str) -> dict[str, Any]:
    """The merged configuration docker-compose computes (it validates it first)."""
    if (reason := unavailable()) and "docker-compose" in reason:
        _skip_or_fail(reason)
    empty = ROOT / "var" / "empty.env"
    empty.parent.mkdir(exist_ok=True)
    empty.write_text("")
    command = ["docker-compose", "--env-file", str(empty)]
    for file in files:
        command += ["-f", str(ROOT / file)]
    done = subprocess.run(
        [*command, "config"], env={**os.environ, **_REQUIRED}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    config: dict[str, Any] = yaml.safe_load(done.stdout)
    return config


def test_the_compose_files_are_valid_and_name_real_commands_and_settings() -> None:
    config = _config("docker-compose.yml", "docker-compose.override.yml")
    assert config["services"]["api"]["ports"]  # the published API
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    known = {f"HARVESTER_{name.upper()}" for name in Settings.model_fields}
    roles = set()
    for name, service in config["services"].items():
        env = service.get("environment", {})
        unknown = {k for k in env if k.startswith("HARVESTER_")} - known - {"HARVESTER_BUCKET"}
        assert not unknown, f"{name} sets unknown settings {unknown}"
        if "build" in service and "entrypoint" not in service:  # the entry point: `harvester`
            assert service["command"][0] in commands, f"{name}: {service['command']}"
            roles.add(service["command"][0])
    assert roles == {"migrate", "api", "scheduler", "worker"}
    for name in ("migrate", "bucket"):  # one-shots the roles wait for
        assert config["services"][name]["restart"] == "no"
    for name in ("api", "scheduler", "worker"):
        waits = config["services"][name]["depends_on"]
        assert waits["migrate"]["condition"] == "service_completed_successfully"
    test = _config("docker-compose.yml", "deploy/compose.test.yml")
    assert "ports" not in test["services"]["api"]  # host networking takes no port mapping


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if reason := unavailable():
        _skip_or_fail(reason)
    work = tmp_path_factory.mktemp("compose")
    started = time.monotonic()
    steps = build_images(work)
    print(f"images built in {time.monotonic() - started:.0f} s: {steps}")
    stack = Stack(work)
    stack.down()  # what a killed earlier run left
    try:
        stack.compose("up", "-d", "--scale", "worker=2")
        _wait(lambda: httpx.get(f"{API}/healthz", timeout=2).status_code == 200, 90, stack)
        print(f"stack up after {time.monotonic() - started:.0f} s")
        yield stack
    finally:
        stack.down()


def _wait(ready: Any, seconds: float, stack: Stack) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready after {seconds} s\n{stack.logs()}")
        time.sleep(0.5)


def test_the_stack_crawls_builds_and_serves_a_snapshot_through_a_worker_restart(
    stack: Stack,
) -> None:
    pages = 120  # 40 s at 3 requests/s: the restarts happen mid-crawl
    site = start(SiteServer("127.0.6.71", SiteState(pages=pages, sitemap=False)))
    client = httpx.Client(base_url=API, headers={"Authorization": f"Bearer {API_KEY}"})
    try:
        assert httpx.get(f"{API}/v1/jobs").status_code == 401  # the key is required
        spec = {
            "dataset": "compose",
            "seeds": [f"{site.origin}/"] + [f"{site.origin}/page/{i}" for i in range(pages)],
            "scope": {"max_depth": 0, "sitemaps": False},
            "politeness": {"requests_per_second": 3, "concurrency_per_domain": 1},
        }
        submitted = client.post("/v1/jobs", json=spec)
        assert submitted.status_code == 201, submitted.text
        job = submitted.json()["id"]

        def fetched(at_least: int) -> bool:
            return int(client.get(f"/v1/jobs/{job}").json()["progress"]["fetched"]) >= at_least

        _wait(lambda: fetched(10), 60, stack)
        workers = stack.containers("worker")
        assert len(workers) == 2
        for worker in workers:  # whichever holds the host: restart both, one after the other
            subprocess.run(["docker", "restart", "-t", "5", worker], check=True)
        assert client.get(f"/v1/jobs/{job}").json()["state"] == "running", "ended too soon"
        _wait(lambda: client.get(f"/v1/jobs/{job}").json()["state"] == "succeeded", 240, stack)
        view = client.get(f"/v1/jobs/{job}").json()
        version = view["snapshot"]["version"]
        manifest = client.get(f"/v1/datasets/compose/snapshots/{version}").json()
        assert sum(split["rows"] for split in manifest["splits"].values()) == pages
        for entry in manifest["files"]:
            url = f"/v1/datasets/compose/snapshots/{version}/files/{entry['path']}"
            body = client.get(url)
            assert body.status_code == 200, (entry["path"], body.text[:200])
            assert hashlib.sha256(body.content).hexdigest() == entry["sha256"], entry["path"]
            part = client.get(url, headers={"Range": "bytes=100-1099"})  # from S3, by range
            assert part.status_code == 206 and part.content == body.content[100:1100]
        page_hits = [h.path for h in site.state.log if h.path.startswith("/page/")]
        assert set(page_hits) == {f"/page/{i}" for i in range(pages)}  # none lost
    finally:
        client.close()
        site.shutdown()
        site.server_close()


def test_the_image_runs_as_a_non_root_user_with_harvester_as_entry_point(stack: Stack) -> None:
    done = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "id", HARVESTER, "-u"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == "10001"
    shown = subprocess.run(
        ["docker", "run", "--rm", HARVESTER, "--help"], capture_output=True, text=True, check=True
    )
    assert "worker" in shown.stdout and "migrate" in shown.stdout
    info = subprocess.run(
        ["docker", "image", "inspect", "-f", "{{.Config.Healthcheck.Test}}", HARVESTER],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "/healthz" in info.stdout
    assert Path(ROOT / "deploy" / "constraints.txt").read_text().count("==") > 50
