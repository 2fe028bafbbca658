"""The build on a real two-node Ray cluster gives the same snapshot as the local build, and
a Ray worker killed mid-build costs a retry, not the commit.

The cluster runs in a network namespace holding only loopback: Ray binds to the machine's
own address otherwise, and tests never leave loopback."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from harvester.pipeline.document import document_id
from harvester.pipeline.minhash import signatures
from harvester.pipeline.text import content_hash
from harvester.staging import STAGING_SCHEMA
from harvester.store.blob import BlobStore

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "dataset": "onray",
    "seeds": ["http://ray.test/"],
    "splits": {"train": 0.6, "validation": 0.2, "test": 0.2},
    "shards": {"max_bytes": 256 * 1024, "row_group_bytes": 64 * 1024},
}
PARTS, FAMILIES_PER_PART = 12, 60


@pytest.fixture
def loopback_only() -> Iterator[list[str]]:
    """A network namespace with only `lo`, up; yields the command prefix that runs in it."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a loopback-only network namespace")
    name = f"harvester-ray-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield ["ip", "netns", "exec", name]
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def _variant(words: list[str], changes: int, rng: random.Random, vocab: list[str]) -> list[str]:
    out = list(words)
    for i in rng.sample(range(len(out)), changes):
        out[i] = rng.choice(vocab)
    return out


def _stage(work: Path) -> None:
    """Families of a page, two near copies and a loose rewrite, part by part."""
    rng = random.Random(17)
    vocab = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=7)) for _ in range(3000)]
    store = BlobStore.from_url(str(work / "store"))
    start, parts, number = datetime(2026, 1, 1, tzinfo=UTC), [], 0
    for part in range(PARTS):
        texts = []
        for _ in range(FAMILIES_PER_PART):
            base = rng.choices(vocab, k=300)
            texts += [base, _variant(base, 2, rng, vocab), _variant(base, 3, rng, vocab)]
            texts.append(_variant(base, 45, rng, vocab))
        joined = [" ".join(t) for t in texts]
        urls = [f"http://ray.test/doc/{number + i}" for i in range(len(joined))]
        columns = {
            "url": pa.array(urls),
            "id": pa.array([document_id(u) for u in urls]),
            "domain": pa.array(["ray.test"] * len(urls)),
            "text": pa.array(joined),
            "content_sha256": pa.array([content_hash(t) for t in joined]),
            "fetched_at": pa.array(
                [start + timedelta(seconds=number + i) for i in range(len(urls))]
            ),
            "minhash": pa.array(list(signatures(joined, 128, 5)), pa.list_(pa.uint32())),
        }
        table = pa.table(
            {f.name: columns.get(f.name, pa.nulls(len(urls), f.type)) for f in STAGING_SCHEMA},
            schema=STAGING_SCHEMA,
        )
        parts.append(f"staging/job/part-{part:03d}.parquet")
        store.write_parquet(parts[-1], table)
        number += len(urls)
    (work / "parts.json").write_text(json.dumps(parts))
    (work / "spec.json").write_text(json.dumps(SPEC))


def _run(prefix: list[str], work: Path, *flags: str) -> dict[str, dict[str, object]]:
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [*prefix, sys.executable, "-m", "tests.integration.ray_build", str(work), *flags],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, dict[str, object]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(480)
def test_ray_on_s3_and_local_on_files_build_the_same_snapshot(
    loopback_only: list[str], tmp_path: Path
) -> None:
    """The Ray steps read the staging parts from an S3 bucket and write the snapshot there
    (no disk shared with the build process); the result equals the local build's."""
    _stage(tmp_path)
    out = _run(loopback_only, tmp_path, "--s3")
    local, ray = out["local"], out["ray"]
    assert str(ray["root"]).endswith("/data") and not str(ray["root"]).startswith("/")
    assert local["versions"] == ray["versions"] == [1]
    assert local["dedup"]["near_duplicates"] > 0 and local["leakage"]["related_pairs"] > 0
    for key in ("files", "splits", "dedup", "leakage", "stats"):
        assert ray[key] == local[key], key


@pytest.mark.timeout(480)
def test_a_ray_worker_killed_mid_build_costs_a_retry_not_the_commit(
    loopback_only: list[str], tmp_path: Path
) -> None:
    _stage(tmp_path)
    out = _run(loopback_only, tmp_path, "--kill")
    local, ray = out["local"], out["ray"]
    assert ray["killed"], "no Ray worker was caught running a build step"
    assert ray["versions"] == [1]  # committed once
    assert ray["files"] == local["files"] and ray["stats"] == local["stats"]
