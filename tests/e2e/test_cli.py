"""The `harvester` command as a user runs it: crawl, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from harvester.demo_site import make_demo_server
from tests.conftest import free_port
from tests.e2e.test_api import ADMIN, run_serve
from tests.webtest import SiteServer, SiteState, start

HARVESTER = str(Path(sys.executable).with_name("harvester"))


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HARVESTER_DATABASE_URL": f"sqlite:///{tmp_path}/h.db",
        "HARVESTER_STORAGE_URL": str(tmp_path / "store"),
    }


@pytest.fixture
def demo() -> Iterator[str]:
    server = start(make_demo_server("127.0.0.5", 0))
    yield f"http://127.0.0.5:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_crawl_of_the_demo_site(tmp_path: Path, demo: str) -> None:
    done = subprocess.run(
        [HARVESTER, "crawl", demo, "--dataset", "demo", "--allow-private", "--rate", "50"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "demo: job" in done.stdout and "fetched 34," in done.stdout
    staging = done.stdout.split("staging: ")[1].splitlines()[0].strip()
    table = pq.read_table(staging)
    assert table.num_rows == 34
    assert not any("/private/" in u for u in table.column("url").to_pylist())
    # the 24 articles: section pages dropped as too short, the two reprints as near duplicates
    assert "pipeline: kept 26 of 34 pages, dropped 8 (too_short 8); duplicates 2" in done.stdout
    assert "demo@v1: 24 documents" in done.stdout
    assert "duplicates removed: 0 exact, 2 near" in done.stdout
    # At 0.98/0.01/0.01 a split of 24 documents is often empty (which ones hangs on the
    # URLs, so on the port): the CLI says so.
    counts = re.search(r"\(train (\d+), validation (\d+), test (\d+)\)", done.stdout)
    assert counts is not None and sum(map(int, counts.groups())) == 24
    empty = [
        n for n, c in zip(("validation", "test"), counts.groups()[1:], strict=True) if c == "0"
    ]
    if empty:
        assert f"note: {' and '.join(empty)} " in done.stdout and "0.98/0.01/0.01" in done.stdout
    else:
        assert "note:" not in done.stdout

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [HARVESTER, "datasets", *args],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )

    listed = cli("list")
    assert listed.returncode == 0 and "demo" in listed.stdout and "v1" in listed.stdout
    shown = cli("show", "demo@v1")
    manifest = json.loads(shown.stdout)
    assert manifest["version"] == 1 and manifest["splits"]["train"]["rows"] > 0
    assert manifest["leakage"]["cross_split_urls"] == 0
    assert manifest["stats"]["fetch/outcome/fetched"] == 34
    downloaded = cli("download", "demo", str(tmp_path / "out"))
    assert downloaded.returncode == 0, downloaded.stderr
    local = tmp_path / "out" / "demo" / "v1"
    assert (local / "manifest.json").exists() and (local / "README.md").exists()
    table = pq.read_table(local / "data")
    assert table.num_rows == 24 and "<EMAIL>" in " ".join(table.column("text").to_pylist())
    missing = cli("show", "demo@v9")
    assert missing.returncode == 2 and "no version 9" in missing.stderr
    (tmp_path / "a-file").write_text("")
    unwritable = cli("download", "demo", str(tmp_path / "a-file" / "out"))
    assert unwritable.returncode == 1 and "Traceback" not in unwritable.stderr
    assert f"error: cannot write the snapshot under {tmp_path}/a-file/out: " in unwritable.stderr


def test_a_port_in_use_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [HARVESTER, "serve", "--port", str(port)],
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
        )
        demo = subprocess.run(
            [HARVESTER, "demo-site", "--port", str(port)],
            env=_env(tmp_path), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 2
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use\n" in done.stderr
    assert "Traceback" not in done.stderr
    assert demo.returncode == 2 and demo.stderr == (
        f"error: cannot serve the demo site on 127.0.0.1:{port}: Address already in use\n"
    )


def test_the_cli_says_where_it_looks(tmp_path: Path) -> None:
    listed = subprocess.run(
        [HARVESTER, "datasets", "list"], env=_env(tmp_path), capture_output=True, text=True
    )
    assert listed.returncode == 0
    assert listed.stderr == f"no datasets in {tmp_path / 'store'} (HARVESTER_STORAGE_URL)\n"
    helped = subprocess.run([HARVESTER, "-h"], capture_output=True, text=True)
    assert "HARVESTER_DATABASE_URL" in helped.stdout and "HARVESTER_STORAGE_URL" in helped.stdout


def test_without_allow_private_loopback_is_refused(tmp_path: Path, demo: str) -> None:
    done = subprocess.run(
        [HARVESTER, "crawl", demo, "--dataset", "demo"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "fetched 0," in done.stdout
    assert f"failed: no page could be fetched: 1 failed blocked/loopback ({demo})\n" in done.stderr


def test_a_seed_on_a_closed_port_fails_with_that_reason(tmp_path: Path) -> None:
    seed = f"http://127.0.0.64:{free_port('127.0.0.64')}/docs/%5Bdraft%5D"  # printed literally
    done = subprocess.run(
        [HARVESTER, "crawl", seed, "--dataset", "closed", "--allow-private"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    shown = seed.replace("%5B", "[").replace("%5D", "]")  # as canonicalised: rich kept "[draft]"
    line = f"failed: no page could be fetched: 1 failed connect/refused ({shown})\n"
    assert line in done.stderr, done.stderr


def test_invalid_spec_is_a_clear_error(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("dataset: demo\nseeds: [http://127.0.0.5/]\nlimits: {max_pages: -3}\n")
    done = subprocess.run(
        [HARVESTER, "crawl", "--spec", str(spec)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "limits.max_pages" in done.stderr and "Traceback" not in done.stderr


def _children(pid: int) -> list[int]:
    """Process ids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _outcomes(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(
                conn.execute("select count(*) from frontier where state = 'done'").fetchone()[0]
            )
    except sqlite3.OperationalError:
        return 0


def test_sigkilled_crawl_resumes_without_refetching(tmp_path: Path) -> None:
    rate, concurrency = 20, 2
    site = start(SiteServer("127.0.0.6", SiteState(pages=120, sitemap=False)))
    command = [
        HARVESTER,
        "crawl",
        site.origin + "/",
        "--dataset",
        "big",
        "--allow-private",
        "--rate",
        str(rate),
        "--concurrency-per-domain",
        str(concurrency),
    ]
    first = subprocess.Popen(
        command, env=_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while _outcomes(tmp_path / "h.db") < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = _children(first.pid)
    assert workers, "the crawl runs its pipeline in worker processes"
    first.send_signal(signal.SIGKILL)
    first.wait()
    # Orphaned pipeline workers notice their parent is gone and exit.
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "pipeline workers outlived a SIGKILLed crawl"
        time.sleep(0.1)
    fetched_before_kill = len(site.state.log)

    second = subprocess.run(
        command, env=_env(tmp_path), capture_output=True, text=True, timeout=120
    )
    assert second.returncode == 0, second.stderr
    assert "resuming job" in second.stderr

    with sqlite3.connect(tmp_path / "h.db") as conn:
        states = Counter(r[0] for r in conn.execute("select state from frontier"))
        n_fetched = conn.execute(
            "select count(*) from frontier where outcome = 'fetched'"
        ).fetchone()[0]
        parts = [r[0] for r in conn.execute("select path from staging_parts")]
        urls = [r[0] for r in conn.execute("select url from frontier")]
    assert set(states) == {"done"} and states["done"] > 60  # one outcome for every URL
    assert len(urls) == len(set(urls))
    staged = pq.read_table([str(tmp_path / "store" / p) for p in parts]).column("url")
    assert len(staged) == len(set(staged.to_pylist())) == n_fetched  # orphans dropped

    fetched = Counter(h.path for h in site.state.log if h.path.startswith("/page/"))
    twice = sum(n - 1 for n in fetched.values())
    # Only what was in flight or not yet committed (one flush interval at most) is fetched
    # again: bounded by rate x flush interval + the domain's concurrency.
    assert twice <= rate * 0.5 + concurrency + 1
    assert fetched_before_kill > 40
    site.shutdown()
    site.server_close()


def test_a_service_never_takes_a_cli_crawl_which_resumes_after_ctrl_c(tmp_path: Path) -> None:
    site = start(SiteServer("127.0.0.8", SiteState(pages=60, sitemap=False)))
    service = run_serve(tmp_path, f"sqlite:///{tmp_path}/h.db")  # the same catalog and store
    served = next(service)
    command = [HARVESTER, "crawl", site.origin + "/", "--dataset", "shared", "--allow-private",
               "--rate", "10", "--concurrency-per-domain", "1"]  # fmt: skip
    first = subprocess.Popen(command, env=_env(tmp_path), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while _outcomes(tmp_path / "h.db") < 10:
        assert time.monotonic() < deadline, "the crawl did not start"
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "run the same command again to resume" in err
    fetched = len(site.state.log)
    time.sleep(6)  # several ticks of the service's worker, which must leave the job alone
    assert len(site.state.log) == fetched
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {ADMIN}"}) as api:
        (job,) = api.get("/v1/jobs").json()["items"]
    assert job["local"] is True and job["state"] == "running", job

    second = subprocess.run(command, env=_env(tmp_path), capture_output=True, text=True,
                            timeout=120)  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert f"resuming job {job['id']}" in second.stderr
    with sqlite3.connect(tmp_path / "h.db") as conn:
        jobs = conn.execute("select count(*) from jobs").fetchone()[0]
        states = Counter(r[0] for r in conn.execute("select state from frontier"))
    assert jobs == 1 and set(states) == {"done"}
    pages = Counter(h.path for h in site.state.log if h.path.startswith("/page/"))
    assert len(pages) > 40 and max(pages.values()) <= 2  # each page once (in flight: twice)
    next(service, None)  # SIGTERM, and waits for it to exit
    site.shutdown()
    site.server_close()
