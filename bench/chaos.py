"""Chaos benchmark: one crawl into one dataset while workers, the catalog, the object store and
the pipeline pool fail for real.

    python bench/chaos.py [--hosts 20] [--pages-per-host 150] [--rate 1.5] [--seed 1]

Three `harvester worker` processes and one `harvester api` on PostgreSQL (a fresh schema) with
the blob store on S3 (moto's server on loopback) behind a fault proxy crawl a generated site
(`bench/scale.py`'s, one loopback address per host) submitted through the API. The same crawl
runs twice: once without faults (the reference time), then while a chaos loop, at even
intervals in a shuffled order:
 - SIGKILLs a random worker 10 times (restarting it a second later),
 - restarts PostgreSQL twice (`pg_ctlcluster restart`: every connection drops),
 - makes the object store answer 503 SlowDown for 30 s, twice,
 - SIGKILLs a random pipeline process of a random worker 5 times.
Then it reports, from the catalog, the snapshot and the site's own request log: the job's
state, URLs with exactly one outcome, documents lost (fetched and kept by the pipeline but
missing from the snapshot), duplicated documents, pages fetched more than once (against the
bound: what killed workers held in flight and uncommitted), and the time against the
reference. Needs root (it restarts the local PostgreSQL server).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from scale import HARVESTER, POSTGRES, address, children, schema_url, start_site  # noqa: E402

from harvester.crawl.recorder import MAX_BACKLOG  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402
from tests.s3server import S3_ENV, S3Server  # noqa: E402

WORKERS = 3
KEY = "hv_chaos_" + uuid.uuid4().hex
SLOW_DOWN_BODY = b"<Error><Code>SlowDown</Code><Message>Reduce your request rate.</Message></Error>"
SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    b"Content-Length: %d\r\n\r\n%s" % (len(SLOW_DOWN_BODY), SLOW_DOWN_BODY)
)
CONCURRENCY = 2


def free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Cluster:
    """Three workers and an API on one catalog schema and one S3 bucket (through the proxy)."""

    def __init__(self, s3: S3Server, work: Path) -> None:
        self.schema, self.database = schema_url()
        self.proxy = FaultProxy(s3.address)
        self.bucket = s3.bucket()
        self.work = work
        self.port = free_port("127.0.0.1")
        self.env = {
            **os.environ,
            **S3_ENV,
            "HARVESTER_DATABASE_URL": self.database,
            "HARVESTER_STORAGE_URL": f"s3://{self.bucket}/harvester",
            "HARVESTER_S3_ENDPOINT": f"http://127.0.0.1:{self.proxy.port}",
            "HARVESTER_S3_TIMEOUT_S": "5",
            "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
            "HARVESTER_HOST_LEASE_S": "5",
            "HARVESTER_API_KEY": KEY,
            "HARVESTER_LOG_FORMAT": "text",
        }
        self.starts = 0
        self.workers = [self._worker() for _ in range(WORKERS)]
        self.api = self._spawn(["api", "--port", str(self.port)], "api")
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=10,
        )

    def _spawn(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        log = (self.work / f"{name}.log").open("ab")
        return subprocess.Popen([HARVESTER, *args], env=self.env, stdout=log, stderr=log)

    def _worker(self) -> subprocess.Popen[bytes]:
        self.starts += 1
        return self._spawn(["worker"], f"worker-{self.starts}")

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """An API call, retried through outages (503, a restarting catalog)."""
        while True:
            try:
                answer = self.http.request(method, path, **kwargs)
                if answer.status_code != 503:
                    answer.raise_for_status()
                    return answer.json()
            except httpx.TransportError:
                pass
            time.sleep(0.5)

    def run(self, spec: dict[str, Any]) -> tuple[dict[str, Any], float]:
        """Submit the job and wait for it to finish; returns it and the seconds it took."""
        while True:
            try:
                if self.http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        started = time.monotonic()
        job = self.call("POST", "/v1/jobs", json=spec)
        while job["state"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(1)
            job = self.call("GET", f"/v1/jobs/{job['id']}")
        return job, time.monotonic() - started

    # ---- faults ----------------------------------------------------------------------

    def kill_worker(self, rng: random.Random) -> str:
        i = rng.randrange(len(self.workers))
        self.workers[i].send_signal(signal.SIGKILL)
        self.workers[i].wait()
        time.sleep(1)
        self.workers[i] = self._worker()
        return f"worker {i} killed and restarted"

    def kill_pool_process(self, rng: random.Random) -> str:
        pool = [
            (worker.pid, p)
            for worker in self.workers
            for p in children(worker.pid)
            if b"spawn_main" in _cmdline(p)
        ]
        if not pool:
            return "no pipeline process to kill"
        worker, victim = rng.choice(pool)
        os.kill(victim, signal.SIGKILL)
        return f"a pipeline process of worker pid {worker} killed"

    def storage_outage(self, seconds: float) -> str:
        self.proxy.answer(SLOW_DOWN)
        threading.Timer(seconds, self.proxy.heal).start()
        return f"object store answers 503 for {seconds:.0f} s"

    def close(self) -> None:
        for proc in [*self.workers, self.api]:
            proc.send_signal(signal.SIGTERM)
        for proc in [*self.workers, self.api]:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.proxy.close()
        self.http.close()
        with create_engine(POSTGRES).begin() as conn:
            conn.execute(text(f"DROP SCHEMA {self.schema} CASCADE"))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def restart_postgres() -> str:
    version = next(Path("/etc/postgresql").iterdir()).name
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],
        check=True,
        capture_output=True,
    )
    return "PostgreSQL restarted"


def measure(
    s3: S3Server,
    work: Path,
    label: str,
    job_spec: dict[str, Any],
    log: Path,
    faults: tuple[random.Random, float] | None,
) -> dict[str, Any]:
    """One crawl on a fresh cluster, with the chaos loop when `faults` (its random generator
    and the time to spread the faults over) is given."""
    (work / label).mkdir()
    cluster = Cluster(s3, work / label)
    try:
        start = log.stat().st_size
        events: list[str] = []
        firing = None
        if faults is not None:
            firing = threading.Thread(target=lambda: events.extend(chaos(cluster, *faults)))
            firing.start()
        job, seconds = cluster.run(job_spec)
        if firing is not None:
            firing.join()
            print("\nfaults (s after the start):\n  " + "\n  ".join(events), flush=True)
        return report(cluster, job, log, start) | {"seconds": seconds}
    finally:
        cluster.close()


def chaos(cluster: Cluster, rng: random.Random, spread_s: float) -> list[str]:
    """Fire the faults at even intervals over `spread_s` (in a shuffled order); returns what
    happened, with times."""
    faults: list[Callable[[], str]] = (
        [lambda: cluster.kill_worker(rng)] * 10
        + [restart_postgres] * 2
        + [lambda: cluster.storage_outage(30)] * 2
        + [lambda: cluster.kill_pool_process(rng)] * 5
    )
    rng.shuffle(faults)
    started = time.monotonic()
    events = []
    for i, fault in enumerate(faults):
        at = started + (i + 1) * spread_s / (len(faults) + 1)
        while time.monotonic() < at:
            time.sleep(0.1)
        events.append(f"{time.monotonic() - started:6.1f}  {fault()}")
    return events


def spec(hosts: int, port: int, rate: float) -> dict[str, Any]:
    return {
        "dataset": "chaos",
        "seeds": [f"http://{address(h)}:{port}/" for h in range(hosts)],
        "scope": {"max_depth": 10_000, "sitemaps": False},
        "politeness": {"requests_per_second": rate, "concurrency_per_domain": CONCURRENCY},
        # The generated pages are random words: the language and repetition rules would drop
        # them, and this measures what happens to the documents that are kept.
        "pipeline": {
            "quality": {
                "languages": [],
                "min_words": 10,
                "min_punctuated_line_ratio": 0,
                "max_top_ngram_ratio": 1,
                "max_duplicate_ngram_ratio": 1,
            }
        },
    }


def report(cluster: Cluster, job: dict[str, Any], log: Path, log_from: int) -> dict[str, Any]:
    """What the catalog, the snapshot and the site say about the finished job."""
    from harvester.store.blob import BlobStore
    from harvester.store.snapshots import Snapshots

    with create_engine(cluster.database).connect() as conn:
        rows = conn.execute(
            text("SELECT url, state, outcome, dropped FROM frontier WHERE job_id = :j"),
            {"j": job["id"]},
        ).all()
    one_outcome = sum(1 for r in rows if r.state == "done" and r.outcome)
    kept = {r.url for r in rows if r.outcome == "fetched" and not r.dropped}
    os.environ.update(S3_ENV)
    store = BlobStore.from_url(
        cluster.env["HARVESTER_STORAGE_URL"], cluster.env["HARVESTER_S3_ENDPOINT"]
    )
    snapshots = Snapshots(store)
    documents = {"urls": [], "ids": []}
    dedup = 0
    if job["state"] == "succeeded":
        manifest = snapshots.manifest("chaos")
        table = snapshots.documents(manifest, ["id", "url"])
        documents = {"urls": table.column("url").to_pylist(), "ids": table.column("id").to_pylist()}
        dedup = manifest.dedup.exact_duplicates + manifest.dedup.near_duplicates
    hits: Counter[str] = Counter()
    with log.open() as f:
        f.seek(log_from)
        for line in f:
            host, _, path = line.split()
            if path != "/robots.txt":
                hits[f"{host} {path}"] += 1
    return {
        "state": job["state"],
        "error": job.get("error"),
        "urls": len(rows),
        "one_outcome": one_outcome,
        "kept": len(kept),
        "in_snapshot": len(documents["ids"]),
        "lost": len(kept - set(documents["urls"])),
        "dedup_removed": dedup,
        "duplicated": len(documents["ids"]) - len(set(documents["ids"])),
        "refetched": sum(1 for n in hits.values() if n > 1),
        "requests": sum(hits.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--pages-per-host", type=int, default=150)
    parser.add_argument("--rate", type=float, default=1.5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    log = work / "hits.log"
    log.touch()
    port = free_port("127.0.10.1")
    site = start_site(args.hosts, args.pages_per_host, port, log)
    os.environ.update(S3_ENV)
    s3 = S3Server("127.0.0.30", free_port("127.0.0.30"))
    time.sleep(3)  # the site and moto are up
    job_spec = spec(args.hosts, port, args.rate)
    print(
        f"site: {args.hosts} hosts x {args.pages_per_host} pages, {args.rate} requests/s per "
        f"host; {WORKERS} workers + API, PostgreSQL, S3 (moto) behind a fault proxy; logs in "
        f"{work}",
        flush=True,
    )
    try:
        reference = measure(s3, work, "reference", job_spec, log, None)
        rng = random.Random(args.seed)
        results = {
            "reference": reference,
            "chaos": measure(s3, work, "chaos", job_spec, log, (rng, reference["seconds"])),
        }
    finally:
        site.terminate()
        s3.close()
    bound = 10 * (MAX_BACKLOG + args.hosts * CONCURRENCY)
    print(f"\n{'':28} {'reference':>10} {'chaos':>10}")
    rows = [
        ("job state", "state"),
        ("URLs in the frontier", "urls"),
        ("URLs with one outcome", "one_outcome"),
        ("fetched and kept", "kept"),
        ("documents in the snapshot", "in_snapshot"),
        ("removed as duplicates", "dedup_removed"),
        ("documents lost", "lost"),
        ("documents duplicated", "duplicated"),
        ("requests (robots apart)", "requests"),
        ("pages fetched twice or more", "refetched"),
        ("seconds", "seconds"),
    ]
    for name, key in rows:
        ref, got = results["reference"][key], results["chaos"][key]
        fmt = (lambda v: f"{v:>10.1f}") if key == "seconds" else (lambda v: f"{v!s:>10}")
        print(f"{name:28} {fmt(ref)} {fmt(got)}")
    print(
        f"\nrefetch bound (10 kills x (backlog {MAX_BACKLOG} + {args.hosts} hosts x "
        f"{CONCURRENCY} in flight)): {bound}"
    )
    ratio = results["chaos"]["seconds"] / reference["seconds"]
    print(f"time with faults / without: {ratio:.2f}")
    if results["chaos"]["error"]:
        print(f"chaos job error: {results['chaos']['error']}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
