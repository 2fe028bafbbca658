"""API benchmark: the job and manifest routes under 100 concurrent clients while a crawl runs.

    python bench/api.py [--seconds 30] [--connections 100]

Starts `harvester serve` (API + worker + scheduler in one process, SQLite + local files) and
Debian's documentation on three loopback addresses (bench/pipeline.py's sites), builds a small
snapshot, then measures a full-speed crawl's pages/s over a window twice, in the same run:
once alone, once while `wrk` (Debian's, installed if missing) drives `GET /v1/jobs/{id}` and
`GET /v1/datasets/{name}/snapshots/latest` from `--connections` clients. Prints requests/s,
p50/p90/p99 latency, errors and the crawl's pages/s with and without the load.
wrk runs on the same two cores, so its own CPU use is part of the measured drop.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from crawl import free_port  # noqa: E402
from pipeline import DocSites  # noqa: E402

KEY = "hv_bench-admin-key"
WRK_SCRIPT = """
local paths = {"%s", "%s"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i %% 2) + 1], {["Authorization"] = "Bearer %s"})
end
"""


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
        path = shutil.which("wrk")
    assert path is not None
    return path


class Service:
    def __init__(self, work: Path) -> None:
        self.port = free_port("127.0.0.1")
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HARVESTER_DATABASE_URL": f"sqlite:///{work}/h.db",
            "HARVESTER_STORAGE_URL": str(work / "store"),
            "HARVESTER_ALLOW_PRIVATE_NETWORKS": "true",
            "HARVESTER_API_KEY": KEY,
        }
        self.proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("harvester")), "serve", "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        )
        for _ in range(300):
            try:
                self.http.get("/healthz")
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("harvester serve did not start")

    def submit(self, dataset: str, seeds: list[str], pages: int) -> str:
        spec = {
            "dataset": dataset,
            "seeds": seeds,
            "limits": {"max_pages": pages},
            "scope": {"max_depth": 1000},
            "politeness": {"requests_per_second": 1000, "concurrency_per_domain": 8},
        }
        answer = self.http.post("/v1/jobs", json=spec)
        answer.raise_for_status()
        job_id: str = answer.json()["id"]
        return job_id

    def job(self, job_id: str) -> dict[str, object]:
        job: dict[str, object] = self.http.get(f"/v1/jobs/{job_id}").json()
        return job

    def fetched(self, job_id: str) -> int:
        return int(self.job(job_id)["progress"]["fetched"])  # type: ignore[index]

    def wait(self, job_id: str, states: tuple[str, ...]) -> None:
        while self.job(job_id)["state"] not in states:
            time.sleep(0.5)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def crawl_rate(
    service: Service, job_id: str, seconds: float, during: list[str] | None
) -> tuple[float, str]:
    """Pages/s of a running job over `seconds`, optionally while `during` (wrk) runs."""
    while service.fetched(job_id) < 20:  # past start-up: pool warm, frontier filled
        time.sleep(0.2)
    load = subprocess.Popen(during, stdout=subprocess.PIPE, text=True) if during else None
    start, t0 = service.fetched(job_id), time.monotonic()
    time.sleep(seconds)
    end, t1 = service.fetched(job_id), time.monotonic()
    output = load.communicate()[0] if load else ""
    return (end - start) / (t1 - t0), output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--connections", type=int, default=100)
    args = parser.parse_args()
    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="harvester-api-"))
    sites = DocSites(work)
    service = Service(work)
    try:
        small = service.submit("small", sites.seeds, 40)
        service.wait(small, ("succeeded", "failed"))
        alone_job = service.submit("alone", sites.seeds, 5000)
        alone, _ = crawl_rate(service, alone_job, args.seconds, None)
        service.http.post(f"/v1/jobs/{alone_job}/cancel")
        service.wait(alone_job, ("cancelled", "succeeded", "failed"))

        loaded_job = service.submit("loaded", sites.seeds, 5000)
        script = work / "load.lua"
        script.write_text(
            WRK_SCRIPT % (f"/v1/jobs/{loaded_job}", "/v1/datasets/small/snapshots/latest", KEY)
        )
        command = [wrk, "-t", "2", "-c", str(args.connections), "-d", f"{args.seconds:.0f}s",
                   "--latency", "-s", str(script), service.url]  # fmt: skip
        loaded, report = crawl_rate(service, loaded_job, args.seconds, command)
        service.http.post(f"/v1/jobs/{loaded_job}/cancel")
    finally:
        service.close()
        sites.close()
        shutil.rmtree(work, ignore_errors=True)

    rps = re.search(r"Requests/sec:\s+([\d.]+)", report)
    latencies = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)", report, re.MULTILINE))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    sockets = re.search(r"Socket errors: (.*)", report)
    print(f"API under {args.connections} clients for {args.seconds:.0f}s while a crawl runs:")
    rate = float(rps.group(1)) if rps else 0.0
    print(
        f"  {rate:.0f} requests/s; latency p50 {latencies.get('50')}, "
        f"p90 {latencies.get('90')}, p99 {latencies.get('99')}; "
        f"non-2xx {errors.group(1) if errors else 0}; "
        f"socket errors {sockets.group(1) if sockets else 'none'}"
    )
    change = (loaded - alone) / alone
    print(f"crawl pages/s: alone {alone:.1f}, under API load {loaded:.1f} ({change:+.0%})")


if __name__ == "__main__":
    main()
