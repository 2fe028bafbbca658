"""Run inside a network namespace holding only loopback (Ray binds to the machine's address
otherwise): start a two-node Ray cluster, build the same staging parts with the local and
the Ray executor, optionally kill one Ray worker mid-build, and print what to compare. With
`--s3`, the Ray build's store is an S3 bucket (moto's server, started here): its steps read
the staging parts from it and write the snapshot into it, as on a cluster with no shared disk.

    python -m tests.integration.ray_build WORKDIR [--kill] [--s3]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harvester.build.executor import LOCAL, RayCluster
from harvester.build.inputs import BuildInput
from harvester.build.process import build
from harvester.spec import parse_spec
from harvester.store.blob import BlobStore
from harvester.store.snapshots import Snapshots
from tests.s3server import S3_ENV, S3Server

PORT = 6390
S3_PORT = 6395
STEPS = ("ray::_file_grams", "ray::_file_shingles", "ray::_route", "ray::_finish")


def _ray(*args: str) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    done = subprocess.run([ray, *args], capture_output=True, text=True)
    if done.returncode:
        output = done.stdout[-2000:] + done.stderr[-2000:]
        raise RuntimeError(f"ray {' '.join(args)} failed:\n{output}")


def _kill_one_step(done: threading.Event, killed: list[str]) -> None:
    """SIGKILL the first Ray worker seen running a build step."""
    while not done.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
            except OSError:
                continue
            if title.startswith(STEPS):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(title)
                return
        time.sleep(0.005)


def _summary(store: BlobStore, dataset: str) -> dict[str, object]:
    snapshots = Snapshots(store)
    versions = snapshots.versions(dataset)
    manifest = snapshots.manifest(dataset, versions[-1])
    return {
        "versions": versions,
        "files": {f.path: [f.rows, f.sha256] for f in manifest.files},
        "splits": {k: v.rows for k, v in manifest.splits.items()},
        "dedup": manifest.dedup.model_dump(),
        "leakage": manifest.leakage.model_dump(),
        "stats": manifest.stats,
    }


def _s3_copy(server: S3Server, work: Path, parts: list[str]) -> BlobStore:
    """A bucket on the moto server, holding the staging parts."""
    for _ in range(200):
        with socket.socket() as probe:
            if probe.connect_ex(server.address) == 0:
                break
        time.sleep(0.05)
    store = BlobStore.from_url(f"s3://{server.bucket()}/data", server.endpoint)
    local = BlobStore.from_url(str(work / "store"))
    for part in parts:
        store.write_bytes(part, local.read_bytes(part))
    return store


def main() -> None:
    work, kill, s3 = Path(sys.argv[1]), "--kill" in sys.argv, "--s3" in sys.argv
    spec = parse_spec(json.loads((work / "spec.json").read_text()))
    parts = json.loads((work / "parts.json").read_text())
    os.environ.update(S3_ENV)  # the Ray nodes started below inherit the credentials
    server = S3Server("127.0.0.1", S3_PORT) if s3 else None
    temp = tempfile.mkdtemp(prefix="ray-")  # short: Ray's socket paths must fit 107 bytes
    common = ["--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp}"]
    _ray("start", "--head", f"--port={PORT}", "--include-dashboard=false", *common)
    try:
        _ray("start", f"--address=127.0.0.1:{PORT}", *common)
        out: dict[str, object] = {}
        for name, executor in (("local", LOCAL), ("ray", RayCluster(f"127.0.0.1:{PORT}"))):
            root = work / name
            shutil.copytree(work / "store", root)
            store = BlobStore.from_url(str(root))
            if server is not None and name == "ray":
                store = _s3_copy(server, work, parts)
            job = BuildInput(spec, ["job"], parts, frozenset(), {})
            done, killed = threading.Event(), []
            if kill and name == "ray":
                threading.Thread(target=_kill_one_step, args=(done, killed)).start()
            build(store, job, lambda: None, executor=executor)
            done.set()
            out[name] = _summary(store, spec.dataset) | {"killed": killed, "root": store.root}
        print(json.dumps(out))
    finally:
        _ray("stop", "--force")
        shutil.rmtree(temp, ignore_errors=True)
        if server is not None:
            server.close()


if __name__ == "__main__":
    main()
